"""Vision parts split off HF VLMs: same tokens as the VLM itself, loadable and exportable."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
import torch

from mm_ros.adapters.checkpoint import load_adapter
from mm_ros.adapters.spec import EncoderFamily
from mm_ros.adapters.vlm import split_hf_vlm, vlm_family
from mm_ros.core.errors import CheckpointError, ConfigError
from mm_ros.core.preprocessing import ResizeMode
from mm_ros.engines.export import export_onnx, parity_report
from mm_ros.engines.runtimes.onnxruntime import CPU_EP
from mm_ros.engines.runtimes.torch_eager import TorchRuntime
from tests.adapters.test_contract import check_contract
from tests.tiny_vlm import (
    MEAN,
    QWEN_FRAMES,
    QWEN_MERGE,
    QWEN_PATCH,
    QWEN_PX,
    STD,
    hf_patchify,
    make_tiny_llava,
    make_tiny_qwen2_vl,
)

if TYPE_CHECKING:
    from pathlib import Path

    from mm_ros.adapters.checkpoint import LoadedAdapter

FAMILIES = ["llava", "qwen2_vl"]


@pytest.fixture(scope="module")
def split(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Any, LoadedAdapter]]:
    root = tmp_path_factory.mktemp("vlm")
    llava = make_tiny_llava(root / "llava")
    qwen = make_tiny_qwen2_vl(root / "qwen")
    return {
        "llava": (llava, load_adapter(split_hf_vlm(root / "llava", root / "llava-vision"))),
        "qwen2_vl": (
            qwen,
            load_adapter(split_hf_vlm(root / "qwen", root / "qwen-vision", image_px=QWEN_PX)),
        ),
    }


def test_llava_tokens_equal_the_vlms_image_features(split: dict[str, Any]) -> None:
    model, adapter = split["llava"]
    pixels = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        ours = adapter.module(pixels)
        theirs = torch.stack(model.get_image_features(pixel_values=pixels).pooler_output)
    assert adapter.spec.token_count == 16  # 4x4 patches, class token dropped ("default")
    assert ours.shape == (3, 16, 32)
    torch.testing.assert_close(ours, theirs, atol=1e-6, rtol=0)


@pytest.mark.parametrize(
    ("layer", "strategy", "count"), [([-2, 0], "default", 16), (-1, "full", 17)]
)
def test_llava_feature_layers_and_strategy_follow_the_config(
    tmp_path: Path, layer: int | list[int], strategy: str, count: int
) -> None:
    model = make_tiny_llava(
        tmp_path / "llava", vision_feature_layer=layer, vision_feature_select_strategy=strategy
    )
    adapter = load_adapter(split_hf_vlm(tmp_path / "llava", tmp_path / "vision"))
    pixels = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    with torch.inference_mode():
        ours = adapter.module(pixels)
        theirs = torch.stack(model.get_image_features(pixel_values=pixels).pooler_output)
    assert adapter.spec.token_count == count
    torch.testing.assert_close(ours, theirs, atol=1e-6, rtol=0)


def test_qwen2_vl_tokens_equal_the_vlms_image_features(split: dict[str, Any]) -> None:
    model, adapter = split["qwen2_vl"]
    pixels = torch.randn(2, 3, QWEN_PX, QWEN_PX, generator=torch.Generator().manual_seed(2))
    # the HF processor's flattened layout, built independently in numpy
    flat = np.concatenate(
        [hf_patchify(p.numpy(), QWEN_PATCH, QWEN_MERGE, QWEN_FRAMES) for p in pixels]
    )
    grid = QWEN_PX // QWEN_PATCH
    with torch.inference_mode():
        theirs = model.get_image_features(
            pixel_values=torch.from_numpy(flat), image_grid_thw=torch.tensor([[1, grid, grid]] * 2)
        ).pooler_output
        ours = adapter.module(pixels)
    assert adapter.spec.token_count == 4  # 4x4 patches merged 2x2
    assert ours.shape == (2, 4, 32)
    torch.testing.assert_close(ours, torch.stack(theirs), atol=1e-6, rtol=0)


@pytest.mark.parametrize("family", FAMILIES)
def test_split_spec_carries_the_vlms_preprocessing(split: dict[str, Any], family: str) -> None:
    _, adapter = split[family]
    spec = adapter.spec
    assert spec.image is not None
    assert spec.image.mean == pytest.approx(MEAN)
    assert spec.image.std == pytest.approx(STD)
    expected = {
        "llava": (EncoderFamily.LLAVA_VISION, 32, ResizeMode.CENTRE_CROP),
        "qwen2_vl": (EncoderFamily.QWEN2_VL_VISION, QWEN_PX, ResizeMode.LETTERBOX),
    }[family]
    assert (spec.encoder.family, spec.image.size_px, spec.image.resize_mode) == expected
    assert spec.image.antialias  # the HF processors resize with PIL, which antialiases
    assert spec.llm_width == 32


@pytest.mark.parametrize("family", FAMILIES)
def test_split_adapter_meets_the_contract(split: dict[str, Any], family: str) -> None:
    _, adapter = split[family]
    check_contract(TorchRuntime(adapter.module, adapter.spec.input_shape()), adapter.spec)


@pytest.mark.parametrize("exporter", ["dynamo", "legacy"])
@pytest.mark.parametrize("family", FAMILIES)
def test_split_adapter_exports_with_onnxruntime_parity(
    split: dict[str, Any], family: str, exporter: str, tmp_path: Path
) -> None:
    _, adapter = split[family]
    path = export_onnx(
        adapter.module, adapter.spec.input_shape(), tmp_path / "m.onnx", dynamo=exporter == "dynamo"
    )
    parity = parity_report(adapter.module, adapter.spec.input_shape(), path, batch=3)
    assert parity.providers == (CPU_EP,)
    assert parity.max_abs_error <= 1e-4, parity
    assert parity.cosine > 0.99999, parity


def test_qwen2_vl_size_must_fit_the_patch_grid(tmp_path: Path) -> None:
    folder = tmp_path / "qwen"
    make_tiny_qwen2_vl(folder)
    with pytest.raises(ConfigError, match="18 px is not a multiple of patch_size x spatial"):
        split_hf_vlm(folder, tmp_path / "out", image_px=18)


def test_unsupported_model_type_is_named(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text('{"model_type": "blip-2"}', encoding="utf-8")
    with pytest.raises(CheckpointError, match="model_type 'blip-2' is not a supported VLM"):
        vlm_family(tmp_path)
