"""Sensor data → tokens through preprocessing and a runtime: shapes, dtype, transform, errors."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pytest

from mm_ros.adapters.spec import Modality, ReducerKind
from mm_ros.adapters.tiny import TINY_AUDIO, tiny_spec
from mm_ros.core.errors import AdapterInputError, ConfigError
from mm_ros.engines.runtimes.torch_eager import TorchRuntime
from mm_ros.engines.session import AdapterSession

if TYPE_CHECKING:
    from mm_ros.adapters.spec import AdapterSpec
    from tests.adapters.conftest import TinyAdapters


def session(tiny: TinyAdapters, spec: AdapterSpec, dtype: str = "float32") -> AdapterSession:
    return AdapterSession(spec, TorchRuntime(tiny.adapter(spec).module, spec.input_shape()), dtype)


RGB = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_image_tokens_are_n_by_d_in_the_llm_dtype(tiny: TinyAdapters, dtype: str) -> None:
    spec = tiny_spec(Modality.IMAGE, ReducerKind.CONCAT4)
    encoded = session(tiny, spec, dtype).encode_image(RGB)
    assert encoded.tokens.shape == (spec.token_count, spec.llm_width)
    assert encoded.tokens.dtype == np.dtype(dtype)
    (transform,) = encoded.transforms
    assert (transform.source_width, transform.source_height) == (64, 48)
    assert encoded.adapter_id == spec.name
    assert "torch" in encoded.runtime


def test_video_audio_imu_sessions(tiny: TinyAdapters) -> None:
    video = tiny_spec(Modality.VIDEO, ReducerKind.CONCAT4)
    encoded = session(tiny, video).encode_video([RGB, RGB[:, ::-1].copy()])
    assert encoded.tokens.shape == (video.token_count, video.llm_width)
    assert len(encoded.transforms) == 2

    audio = tiny_spec(Modality.AUDIO)
    wave = np.zeros(TINY_AUDIO.clip_samples // 2, dtype=np.int16)
    assert session(tiny, audio).encode_audio(wave, 16000).tokens.shape == (8, audio.llm_width)

    imu = tiny_spec(Modality.IMU)
    stamps = np.arange(0, 2_000_000_000, 10_000_000, dtype=np.int64)
    values = np.zeros((stamps.size, 6))
    assert session(tiny, imu).encode_imu(stamps, values).tokens.shape == (8, imu.llm_width)


@pytest.mark.parametrize(
    ("spec", "call", "message"),
    [
        (
            tiny_spec(Modality.IMAGE),
            lambda s: s.encode_image(RGB.astype(np.float32)),
            "expected dtype uint8",
        ),
        (
            tiny_spec(Modality.IMAGE),
            lambda s: s.encode_image(RGB[:, :, :2]),
            r"found \(48, 64, 2\)",
        ),
        (
            tiny_spec(Modality.IMAGE),
            lambda s: s.encode_audio(np.zeros(8), 16000),
            "encodes image, not audio",
        ),
        (
            tiny_spec(Modality.AUDIO),
            lambda s: s.encode_audio(np.array([0.0, np.nan], dtype=np.float32), 16000),
            "NaN",
        ),
        (
            tiny_spec(Modality.IMU),
            lambda s: s.encode_imu(np.zeros(0, dtype=np.int64), np.zeros((0, 6))),
            "empty window",
        ),
        (
            tiny_spec(Modality.IMU),
            lambda s: s.encode_imu(np.array([0, 1], dtype=np.int64), np.zeros((2, 3))),
            "expected 6 axes, found 3",
        ),
        (
            tiny_spec(Modality.VIDEO, ReducerKind.CONCAT4),
            lambda s: s.encode_video([RGB]),
            "expected 2 frames, found 1",
        ),
    ],
)
def test_bad_sensor_data_is_rejected(
    tiny: TinyAdapters, spec: AdapterSpec, call, message: str
) -> None:
    with pytest.raises(AdapterInputError, match=message):
        call(session(tiny, spec))


def test_unknown_output_dtype(tiny: TinyAdapters) -> None:
    with pytest.raises(ConfigError, match="expected one of"):
        session(tiny, tiny_spec(Modality.IMU), "int8")
