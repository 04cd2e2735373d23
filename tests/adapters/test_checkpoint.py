"""Adapter folders: round trip, and every way a folder can be broken gives a specific error."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from mm_ros.adapters.build import build_adapter, example_input
from mm_ros.adapters.checkpoint import ADAPTER_JSON, WEIGHTS, load_adapter, sha256_file
from mm_ros.adapters.hf import adapter_from_hf_folder
from mm_ros.adapters.spec import (
    AdapterSpec,
    EncoderFamily,
    EncoderSpec,
    Modality,
    ReducerKind,
    spec_from_json,
    spec_to_json,
)
from mm_ros.adapters.tiny import make_tiny_adapter, tiny_hf_config, tiny_spec
from mm_ros.core.errors import AdapterInputError, CheckpointError, ConfigError
from mm_ros.engines.runtimes.base import check_batch


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return make_tiny_adapter(tmp_path / "img", tiny_spec(Modality.IMAGE, ReducerKind.CONCAT4))


@pytest.mark.parametrize("modality", list(Modality))
def test_spec_json_round_trip(modality: Modality) -> None:
    spec = tiny_spec(modality)
    data = json.loads(json.dumps(spec_to_json(spec)))
    assert spec_from_json(data) == spec


def test_image_spec_written_before_antialias_existed_keeps_sampling() -> None:
    spec = tiny_spec(Modality.IMAGE)
    data = json.loads(json.dumps(spec_to_json(spec)))
    data["image"].pop("antialias")  # an adapter.json from before the field
    loaded = spec_from_json(data)
    assert loaded.image is not None
    assert loaded.image.antialias is False  # served as it was trained
    assert loaded == spec
    data["image"]["antialias"] = True
    smooth = spec_from_json(data).image
    assert smooth is not None
    assert smooth.antialias is True


def test_saved_adapter_loads_with_the_same_outputs(folder: Path) -> None:
    loaded = load_adapter(folder)
    fresh = build_adapter(loaded.spec, seed=0)  # make_tiny_adapter's seed
    x = example_input(loaded.spec, 2)
    with torch.inference_mode():
        torch.testing.assert_close(loaded.module(x), fresh(x), rtol=0, atol=0)
    assert loaded.weights_sha256 == sha256_file(folder / WEIGHTS)
    assert sorted(p.name for p in folder.iterdir()) == [ADAPTER_JSON, WEIGHTS]


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d.pop("llm_width"), "missing field 'llm_width'"),
        (lambda d: d["encoder"].pop("family"), r"\.encoder: missing field 'family'"),
        (lambda d: d.update(modality="smell"), r"\.modality: expected one of .*found 'smell'"),
        (lambda d: d.update(token_count="4"), r"\.token_count: expected int, found '4'"),
        (lambda d: d.update(colour="red"), r"unknown field\(s\) \['colour'\]"),
        (
            lambda d: d.update(token_count=5),
            "token_count 5 in the spec, but the architecture produces 4",
        ),
        (lambda d: d.update(format_version=99), "format_version 99 is newer"),
        (lambda d: d.update(image=None), "needs its preprocessing section"),
    ],
)
def test_broken_adapter_json_names_the_field(folder: Path, edit, message: str) -> None:
    path = folder / ADAPTER_JSON
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))
    with pytest.raises(CheckpointError, match=message):
        load_adapter(folder)


def test_missing_adapter_json(folder: Path) -> None:
    (folder / ADAPTER_JSON).unlink()
    with pytest.raises(
        CheckpointError, match=r"adapter.json not found .*found \['model.safetensors'\]"
    ):
        load_adapter(folder)


def test_invalid_json(folder: Path) -> None:
    (folder / ADAPTER_JSON).write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_adapter(folder)


@pytest.mark.parametrize("keep", [0, 8, 200])
def test_truncated_safetensors(folder: Path, keep: int) -> None:
    weights = folder / WEIGHTS
    weights.write_bytes(weights.read_bytes()[:keep])
    with pytest.raises(
        CheckpointError, match=rf"\({keep} bytes\) is truncated or not a safetensors"
    ):
        load_adapter(folder)


def test_pickle_named_as_safetensors_is_refused(folder: Path) -> None:
    state = build_adapter(tiny_spec(Modality.IMAGE, ReducerKind.CONCAT4)).state_dict()
    torch.save(state, folder / WEIGHTS)
    with pytest.raises(
        CheckpointError, match=r"pickle / torch\.save archive, not safetensors; refusing"
    ):
        load_adapter(folder)


@pytest.mark.parametrize("name", ["pytorch_model.bin", "adapter.pt", "weights.pkl"])
def test_pickle_files_without_safetensors_are_refused(folder: Path, name: str) -> None:
    (folder / WEIGHTS).unlink()
    (folder / name).write_bytes(pickle.dumps({"w": [1.0]}))
    with pytest.raises(CheckpointError, match=rf"pickled weights \['{name}'\].*refusing"):
        load_adapter(folder)


def test_weights_of_another_architecture(folder: Path, tmp_path: Path) -> None:
    other = make_tiny_adapter(tmp_path / "imu", tiny_spec(Modality.IMU))
    (folder / WEIGHTS).write_bytes((other / WEIGHTS).read_bytes())
    with pytest.raises(CheckpointError, match=r"does not match 'tiny-image-vit-concat4'.*missing"):
        load_adapter(folder)


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        load_adapter(tmp_path / "nowhere")


@pytest.mark.parametrize(
    ("batch", "message"),
    [
        (
            np.zeros((1, 3, 16, 16), dtype=np.float32),
            r"expected float32 \(B, 3, 32, 32\), found shape \(1, 3, 16, 16\)",
        ),
        (np.zeros((1, 3, 32, 32), dtype=np.uint8), "found dtype uint8"),
        (np.zeros((3, 32, 32), dtype=np.float32), r"found shape \(3, 32, 32\)"),
        (np.full((1, 3, 32, 32), np.nan, dtype=np.float32), "3072 NaN/Inf"),
        ([[0.0]], "found list"),
    ],
)
def test_runtime_input_check_names_expected_and_found(batch: object, message: str) -> None:
    with pytest.raises(AdapterInputError, match=message):
        check_batch(batch, (3, 32, 32), "tiny-image")


@pytest.mark.parametrize(
    ("family", "modality"),
    [
        (EncoderFamily.CLIP, Modality.IMAGE),
        (EncoderFamily.SIGLIP, Modality.IMAGE),
        (EncoderFamily.WHISPER, Modality.AUDIO),
        (EncoderFamily.CLAP, Modality.AUDIO),
    ],
)
def test_hf_encoder_from_a_local_folder(
    tmp_path: Path, family: EncoderFamily, modality: Modality
) -> None:
    from transformers import (
        ClapAudioConfig,
        ClapAudioModel,
        CLIPVisionConfig,
        CLIPVisionModel,
        SiglipVisionConfig,
        SiglipVisionModel,
        WhisperConfig,
        WhisperModel,
    )

    classes = {
        EncoderFamily.CLIP: (CLIPVisionConfig, CLIPVisionModel),
        EncoderFamily.SIGLIP: (SiglipVisionConfig, SiglipVisionModel),
        EncoderFamily.WHISPER: (WhisperConfig, WhisperModel),
        EncoderFamily.CLAP: (ClapAudioConfig, ClapAudioModel),
    }
    config_cls, model_cls = classes[family]
    torch.manual_seed(1)
    model_cls(config_cls(**tiny_hf_config(family))).save_pretrained(tmp_path / "hf")
    base = tiny_spec(modality, family=family)
    spec, module = adapter_from_hf_folder(
        AdapterSpec(**{**base.__dict__, "encoder": EncoderSpec(family, width=8)}), tmp_path / "hf"
    )
    assert spec.encoder.width == base.encoder.width
    pretrained = model_cls.from_pretrained(str(tmp_path / "hf"), local_files_only=True)
    source = pretrained.encoder if family is EncoderFamily.WHISPER else pretrained
    for key, value in source.state_dict().items():
        torch.testing.assert_close(module.encoder.model.state_dict()[key], value)


def test_hf_folder_missing(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="cannot load a clip model"):
        adapter_from_hf_folder(tiny_spec(Modality.IMAGE, family=EncoderFamily.CLIP), tmp_path)


def test_imu_adapter_rejects_an_image_encoder() -> None:
    spec = tiny_spec(Modality.IMU)
    bad = AdapterSpec(**{**spec.__dict__, "encoder": EncoderSpec(EncoderFamily.VIT, width=16)})
    with pytest.raises(ConfigError, match="expected encoder family imu_conv, found vit"):
        build_adapter(bad)
