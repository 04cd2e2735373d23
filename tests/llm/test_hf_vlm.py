"""hf-vlm backend: tiny random LLaVA and Qwen2-VL folders split, loaded and run like the VLM."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
import torch

from mm_ros.adapters.spec import EncoderFamily
from mm_ros.core.boxes import BoxFormat, BoxScale
from mm_ros.core.errors import BackendError
from mm_ros.llm.backends.base import BackendConfig, LoadedBackend, load_backend
from mm_ros.llm.backends.hf_vlm import ROPE_DELTA
from tests.tiny_vlm import (
    QWEN_FRAMES,
    QWEN_MERGE,
    QWEN_PATCH,
    hf_patchify,
    make_tiny_llava,
    make_tiny_qwen2_vl,
)

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

QWEN_PX = 32  # 8x8 patches → 4x4 merged tokens: M-RoPE gives them 4 positions, not 16
ATOL = 1e-5


@dataclass
class Tiny:
    """A saved tiny VLM, its in-memory HF original and the backend loaded from the folder."""

    folder: Path
    hf: Any
    backend: LoadedBackend


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MM_ROS_CACHE", str(root))
        yield root


@pytest.fixture(scope="module")
def llava(cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Tiny:
    folder = tmp_path_factory.mktemp("llava")
    hf = make_tiny_llava(folder)
    return Tiny(folder, hf, load_backend(BackendConfig(kind="hf-vlm", model_dir=str(folder))))


@pytest.fixture(scope="module")
def qwen(cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Tiny:
    folder = tmp_path_factory.mktemp("qwen")
    hf = make_tiny_qwen2_vl(folder, image_px=QWEN_PX)
    return Tiny(folder, hf, load_backend(BackendConfig(kind="hf-vlm", model_dir=str(folder))))


def _ids(tiny: Tiny, text: str) -> list[int]:
    return [int(i) for i in tiny.backend.tokenizer(text, add_special_tokens=False)["input_ids"]]


def _pixels(size: int, seed: int) -> torch.Tensor:
    return torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(seed))


def _embeds(tiny: Tiny, ids: list[int], image_id: int, tokens: np.ndarray[Any, Any]) -> Any:
    """Text rows from the backend's table, adapter tokens where the VLM has image tokens."""
    ids_t = torch.tensor([ids])
    embeds = tiny.backend.embed_text(ids_t).clone()
    embeds[ids_t == image_id] = torch.from_numpy(tokens[0])
    return embeds


def test_llava_backend_settings(llava: Tiny) -> None:
    backend = llava.backend
    assert backend.model_id.startswith(f"{llava.folder.name}@")
    assert backend.markers == {"image": ("", "\n")}
    assert (backend.box_format, backend.box_scale) == (BoxFormat.SHIKRA, BoxScale.UNIT)
    assert backend.chat_template is False
    assert (backend.prompt.user_open, backend.prompt.user_close) == ("USER:", "ASSISTANT:")
    session = backend.sessions["image"]
    assert session.spec.encoder.family is EncoderFamily.LLAVA_VISION
    assert backend.identities["image"].adapter_id == session.spec.name
    assert set(backend.sessions) == set(backend.identities) == set(backend.selections) == {"image"}
    # the vision weights live in the adapter only
    ours = sum(p.numel() for p in backend.model.parameters())
    assert ours == sum(p.numel() for p in llava.hf.model.language_model.parameters()) + sum(
        p.numel() for p in llava.hf.lm_head.parameters()
    )


def test_qwen2_vl_backend_settings(qwen: Tiny) -> None:
    backend = qwen.backend
    assert backend.markers == {"image": ("<|vision_start|>", "<|vision_end|>")}
    assert (backend.box_format, backend.box_scale) == (BoxFormat.QWEN2_VL, BoxScale.PERMILLE)
    assert backend.chat_template is True
    spec = backend.sessions["image"].spec
    assert spec.encoder.family is EncoderFamily.QWEN2_VL_VISION
    assert spec.image is not None
    assert (spec.image.size_px, spec.token_count) == (QWEN_PX, 16)


def test_llava_logits_equal_the_vlms(llava: Tiny) -> None:
    image_id = int(llava.hf.config.image_token_id)
    ids = [2, *_ids(llava, "user :"), *[image_id] * 16, *_ids(llava, "what is in the image")]
    pixels = _pixels(32, 3)
    tokens = llava.backend.sessions["image"].runtime.run(pixels.numpy())  # (1, 16, 32)
    with torch.inference_mode():
        theirs = llava.hf(input_ids=torch.tensor([ids]), pixel_values=pixels).logits
        ours = llava.backend.model(inputs_embeds=_embeds(llava, ids, image_id, tokens)).logits
    torch.testing.assert_close(ours, theirs, atol=ATOL, rtol=0)


def _qwen_prompt(qwen: Tiny) -> tuple[list[int], int]:
    config = qwen.hf.config
    image = [
        config.vision_start_token_id,
        *[config.image_token_id] * 16,
        config.vision_end_token_id,
    ]
    ids = [*_ids(qwen, "<|im_start|> user"), *image, *_ids(qwen, "what is left of the cube")]
    return ids, int(config.image_token_id)


def _qwen_hf_logits(qwen: Tiny, ids: list[int], pixels: torch.Tensor) -> torch.Tensor:
    flat = hf_patchify(pixels[0].numpy(), QWEN_PATCH, QWEN_MERGE, QWEN_FRAMES)
    grid = QWEN_PX // QWEN_PATCH
    input_ids = torch.tensor([ids])
    qwen.hf.model.rope_deltas = None  # HF keeps positions state between calls
    with torch.inference_mode():
        out = qwen.hf(
            input_ids=input_ids,
            pixel_values=torch.from_numpy(np.ascontiguousarray(flat)),
            image_grid_thw=torch.tensor([[1, grid, grid]]),
            mm_token_type_ids=(input_ids == qwen.hf.config.image_token_id).int(),
        )
    logits: torch.Tensor = out.logits
    return logits


def test_qwen2_vl_logits_equal_the_vlms_with_mrope_positions(qwen: Tiny) -> None:
    ids, image_id = _qwen_prompt(qwen)
    pixels = _pixels(QWEN_PX, 4)
    tokens = qwen.backend.sessions["image"].runtime.run(pixels.numpy())
    embeds = _embeds(qwen, ids, image_id, tokens)
    theirs = _qwen_hf_logits(qwen, ids, pixels)
    with torch.inference_mode():
        ours = qwen.backend.model(inputs_embeds=embeds).logits
        plain = qwen.backend.model.vlm(inputs_embeds=embeds).logits  # 1D positions only
    torch.testing.assert_close(ours, theirs, atol=ATOL, rtol=0)
    # with 1D positions the text after the image comes out different at the same tolerance
    assert not torch.allclose(plain[0, -1], theirs[0, -1], atol=ATOL, rtol=0)


def test_qwen2_vl_prefix_cache_then_question_then_decode(qwen: Tiny) -> None:
    ids, image_id = _qwen_prompt(qwen)
    pixels = _pixels(QWEN_PX, 5)
    tokens = qwen.backend.sessions["image"].runtime.run(pixels.numpy())
    embeds = _embeds(qwen, ids, image_id, tokens)
    split = ids.index(qwen.hf.config.vision_end_token_id) + 1  # prefix: up to the close marker
    model = qwen.backend.model
    with torch.inference_mode():
        prefix = model(inputs_embeds=embeds[:, :split], use_cache=True)
        assert getattr(prefix.past_key_values, ROPE_DELTA).tolist() == [4 - 16]
        question = model(
            inputs_embeds=embeds[:, split:],
            attention_mask=torch.ones(1, len(ids), dtype=torch.long),
            past_key_values=prefix.past_key_values,
            use_cache=True,
        )
        following = int(question.logits[0, -1].argmax())
        step = model(
            inputs_embeds=qwen.backend.embed_text(torch.tensor([[following]])),
            past_key_values=question.past_key_values,
            use_cache=True,
        )
    theirs = _qwen_hf_logits(qwen, [*ids, following], pixels)
    torch.testing.assert_close(question.logits[0, -1], theirs[0, len(ids) - 1], atol=ATOL, rtol=0)
    torch.testing.assert_close(step.logits[0, -1], theirs[0, -1], atol=ATOL, rtol=0)


def test_split_adapter_is_cached_by_weights_and_settings(llava: Tiny, cache: Path) -> None:
    folders = sorted((cache / "hf-vlm").glob(f"{llava.folder.name}-*"))
    assert len(folders) == 1
    stamp = (folders[0] / "model.safetensors").stat().st_mtime_ns
    again = load_backend(BackendConfig(kind="hf-vlm", model_dir=str(llava.folder)))
    assert again.identities == llava.backend.identities
    assert (folders[0] / "model.safetensors").stat().st_mtime_ns == stamp  # not rewritten
    assert again.selections["image"].runtime.kind.value == "torch"  # no ONNX exported yet


def test_settings_file_and_config_override_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MM_ROS_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "qwen"
    make_tiny_qwen2_vl(folder, image_px=24)
    settings = {"image_px": 24, "resize_mode": "squash", "box_format": "qwen-json"}
    (folder / "mm_vlm.json").write_text(json.dumps(settings), encoding="utf-8")
    backend = load_backend(
        BackendConfig(kind="hf-vlm", model_dir=str(folder), box_scale="permille")
    )
    spec = backend.sessions["image"].spec
    assert spec.image is not None
    assert (spec.image.size_px, spec.image.resize_mode.value, spec.token_count) == (24, "squash", 9)
    assert (backend.box_format, backend.box_scale) == (BoxFormat.QWEN_JSON, BoxScale.PERMILLE)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"image_px": 24, "size": 3}, "expected an object with fields"),
        ({"box_format": "yolo"}, "box_format: expected one of"),
        ({"resize_mode": "stretch"}, "'stretch' is not a valid ResizeMode"),
    ],
)
def test_bad_settings_file_is_named(tmp_path: Path, settings: object, message: str) -> None:
    (tmp_path / "config.json").write_text('{"model_type": "llava"}', encoding="utf-8")
    (tmp_path / "mm_vlm.json").write_text(json.dumps(settings), encoding="utf-8")
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(BackendError, match=message):
        load_backend(BackendConfig(kind="hf-vlm", model_dir=str(tmp_path)))


def test_model_dir_is_required() -> None:
    with pytest.raises(BackendError, match="hf-vlm needs model_dir"):
        load_backend(BackendConfig(kind="hf-vlm"))


def test_pixels_given_to_the_language_side_are_refused(llava: Tiny) -> None:
    image_id = int(llava.hf.config.image_token_id)
    with pytest.raises(BackendError, match=r"runs as an mm_ros adapter \(backend.sessions"):
        llava.backend.model.vlm(
            input_ids=torch.tensor([[image_id] * 16]), pixel_values=_pixels(32, 0)
        )


# --- end to end: session → assembly → generation, against the VLM's own greedy decode --------


def _reference_tokens(
    tiny: Tiny, ids: list[int], pixels: np.ndarray[Any, Any], n: int
) -> list[int]:
    """Greedy tokens of the HF VLM fed input ids + pixel values (full forward per token)."""
    config = tiny.hf.config
    image_id = int(config.image_token_id)
    extra: dict[str, Any] = {"pixel_values": torch.from_numpy(pixels[None])}
    if config.model_type == "qwen2_vl":
        grid = pixels.shape[-1] // QWEN_PATCH
        flat = hf_patchify(pixels, QWEN_PATCH, QWEN_MERGE, QWEN_FRAMES)
        extra = {
            "pixel_values": torch.from_numpy(np.ascontiguousarray(flat)),
            "image_grid_thw": torch.tensor([[1, grid, grid]]),
        }
    out: list[int] = []
    with torch.inference_mode():
        for _ in range(n):
            input_ids = torch.tensor([ids + out])
            if config.model_type == "qwen2_vl":
                tiny.hf.model.rope_deltas = None
                extra["mm_token_type_ids"] = (input_ids == image_id).int()
            out.append(int(tiny.hf(input_ids=input_ids, **extra).logits[0, -1].argmax()))
    return out


@pytest.mark.parametrize("family", ["llava", "qwen"])
def test_generation_end_to_end_equals_the_vlms_greedy_decode(
    family: str, request: pytest.FixtureRequest
) -> None:
    from mm_ros.core.preprocessing import preprocess_image
    from mm_ros.core.prompt import Task
    from mm_ros.llm.assembly import ADAPTER_TOKEN, assemble
    from mm_ros.llm.generation import GenerationConfig, Generator
    from mm_ros.llm.prefix_cache import PrefixCache

    tiny: Tiny = request.getfixturevalue(family)
    backend = tiny.backend
    rgb = np.random.default_rng(6).integers(0, 256, (40, 56, 3), dtype=np.uint8)
    encoded = backend.sessions["image"].encode_image(rgb)
    assembled = assemble(backend, Task.VQA, "what is in the image", {"image": encoded.tokens})
    generator = Generator(backend, PrefixCache())
    config = GenerationConfig(max_new_tokens=6)
    first = generator.generate(assembled, config, prefix_key="snapshot")
    again = generator.generate(assembled, config, prefix_key="snapshot")  # prefix from the cache

    spec = backend.sessions["image"].spec
    assert spec.image is not None
    pixels, _ = preprocess_image(
        rgb, spec.image.size_px, spec.image.resize_mode, spec.image.mean, spec.image.std
    )
    ids = assembled.token_ids[0].tolist()
    ids = [int(tiny.hf.config.image_token_id) if i == ADAPTER_TOKEN else i for i in ids]
    expected = _reference_tokens(tiny, ids, pixels, len(first.token_ids) + 1)
    n = len(first.token_ids)
    assert list(first.token_ids) == expected[:n]
    if first.stop_reason == "eos":
        assert expected[n] in generator.eos_ids
    assert (again.token_ids, again.prefix_cache_hit) == (first.token_ids, True)
    assert first.text == backend.tokenizer.decode(list(first.token_ids), skip_special_tokens=False)


def test_cli_export_then_backend_runs_the_vision_part_on_onnxruntime(
    qwen: Tiny, cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from mm_ros.cli.main import main
    from mm_ros.engines.runtimes.base import RuntimeKind
    from mm_ros.engines.runtimes.onnxruntime import CPU_EP
    from mm_ros.engines.selection import EngineConfig

    (folder,) = (cache / "hf-vlm").glob(f"{qwen.folder.name}-*")
    assert main(["engines", "export", str(folder), "--exporter", "legacy"]) == 0
    assert "— ok" in capsys.readouterr().out
    engine = EngineConfig(
        preference=(RuntimeKind.ONNXRUNTIME, RuntimeKind.TORCH), ort_providers=(CPU_EP,)
    )
    config = BackendConfig(kind="hf-vlm", model_dir=str(qwen.folder), engine=engine)
    onnx = load_backend(config)
    assert onnx.selections["image"].runtime.kind is RuntimeKind.ONNXRUNTIME
    rgb = np.random.default_rng(7).integers(0, 256, (30, 20, 3), dtype=np.uint8)
    ours = onnx.sessions["image"].encode_image(rgb).tokens
    reference = qwen.backend.sessions["image"].encode_image(rgb).tokens  # torch eager
    np.testing.assert_allclose(ours, reference, atol=1e-5, rtol=0)
    onnx.close()
