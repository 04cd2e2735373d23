"""Both audio_common_msgs layouts, every sample format, mono, resampling accuracy, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from mm_ros.core.audio import (
    PaFormat,
    SampleFormat,
    decode_audio_mgonzs13,
    decode_audio_ros_drivers,
    decode_pcm,
    encode_audio_mgonzs13,
    encode_audio_ros_drivers,
    output_length,
    resample,
)
from mm_ros.core.errors import (
    DecodeError,
    InvalidValueError,
    SizeMismatchError,
    UnsupportedEncodingError,
)
from mm_ros.core.sensors import AudioChunk

RNG = np.random.default_rng(1)
# quantisation step of each format, the tolerance of a float -> wire -> float round trip
STEP = {"U8": 1 / 128, "S8": 1 / 128, "S16LE": 2**-15, "S16BE": 2**-15, "S24LE": 2**-23,
        "S32LE": 2**-31, "S32BE": 2**-31, "F32LE": 1e-7, "F32BE": 1e-7}  # fmt: skip


def chunk(channels: int = 2, frames: int = 160, rate: int = 16_000) -> AudioChunk:
    samples = RNG.uniform(-0.9, 0.9, (frames, channels)).astype(np.float32)
    return AudioChunk(stamp_ns=123, rate_hz=rate, samples=samples)


@pytest.mark.parametrize("channels", [1, 2, 3])
@pytest.mark.parametrize("fmt", list(SampleFormat))
def test_ros_drivers_round_trip(fmt: SampleFormat, channels: int) -> None:
    original = chunk(channels)
    fields = encode_audio_ros_drivers(original, fmt)
    assert len(fields.data) == original.frames * channels * fmt.bytes_per_sample
    decoded = decode_audio_ros_drivers(
        fields.data, fields.channels, fields.sample_rate, fields.sample_format,
        fields.coding_format, stamp_ns=7,
    )  # fmt: skip
    assert decoded.samples.shape == original.samples.shape
    assert decoded.samples.dtype == np.float32
    assert (decoded.stamp_ns, decoded.rate_hz) == (7, 16_000)
    np.testing.assert_allclose(decoded.samples, original.samples, atol=STEP[fmt.value])


@pytest.mark.parametrize("fmt", [PaFormat.FLOAT32, PaFormat.INT32, PaFormat.INT16,
                                 PaFormat.INT8, PaFormat.UINT8])  # fmt: skip
@pytest.mark.parametrize("channels", [1, 2])
def test_mgonzs13_round_trip(fmt: PaFormat, channels: int) -> None:
    original = chunk(channels)
    fields = encode_audio_mgonzs13(original, fmt)
    arrays = fields._asdict()
    filled = [k for k in arrays if k.endswith("_data") and len(arrays[k])]
    assert len(filled) == 1
    assert fields.chunk == original.frames
    decoded = decode_audio_mgonzs13(
        fields.format, fields.channels, fields.rate,
        **{k: v for k, v in arrays.items() if k.endswith("_data")},
    )  # fmt: skip
    tolerance = {PaFormat.INT8: 1 / 128, PaFormat.UINT8: 1 / 128}.get(fmt, 2**-15)
    np.testing.assert_allclose(decoded.samples, original.samples, atol=tolerance)


def test_known_pcm_values() -> None:
    s16 = np.array([0, 16384, -32768, 32767], dtype="<i2").tobytes()
    np.testing.assert_allclose(decode_pcm(s16, SampleFormat.S16LE, 1)[:, 0],
                               [0, 0.5, -1.0, 32767 / 32768])  # fmt: skip
    u8 = bytes([128, 192, 0, 255])
    np.testing.assert_allclose(decode_pcm(u8, SampleFormat.U8, 2), [[0, 0.5], [-1, 127 / 128]])
    s24 = bytes([0, 0, 0x40, 0xFF, 0xFF, 0xFF])  # +0.5, -1 LSB
    np.testing.assert_allclose(decode_pcm(s24, SampleFormat.S24LE, 1)[:, 0], [0.5, -(2**-23)])


def test_interleaved_to_mono() -> None:
    stereo = np.array([[0.5, -0.5], [1.0, 0.0]], dtype=np.float32)
    audio = AudioChunk(0, 8000, stereo)
    np.testing.assert_allclose(audio.mono(), [0.0, 0.5])
    assert audio.duration_ns == 250_000
    assert audio.end_ns == 250_000


def test_mgonzs13_accepts_bytes_for_uint8() -> None:
    decoded = decode_audio_mgonzs13(32, 1, 8000, uint8_data=bytes([128, 255]))
    np.testing.assert_allclose(decoded.samples[:, 0], [0.0, 127 / 128])


@pytest.mark.parametrize(
    ("call", "error", "field"),
    [
        (lambda: decode_audio_ros_drivers(b"\0\0", 0, 16000, "S16LE"), InvalidValueError,
         "channels"),
        (lambda: decode_audio_ros_drivers(b"\0\0", 1, 0, "S16LE"), InvalidValueError, "rate"),
        (lambda: decode_audio_ros_drivers(b"\0\0", 1, 10**7, "S16LE"), InvalidValueError,
         "rate"),
        (lambda: decode_audio_ros_drivers(b"\0\0\0", 1, 16000, "S16LE"), SizeMismatchError,
         "data"),
        (lambda: decode_audio_ros_drivers(b"\0\0", 2, 16000, "S16LE"), SizeMismatchError,
         "data"),
        (lambda: decode_audio_ros_drivers(b"", 1, 16000, "S16LE"), SizeMismatchError, "data"),
        (lambda: decode_audio_ros_drivers(b"\0\0", 1, 16000, "S12LE"),
         UnsupportedEncodingError, "sample_format"),
        (lambda: decode_audio_ros_drivers(b"\0\0", 1, 16000, "S16LE", "mp3"),
         UnsupportedEncodingError, "coding_format"),
        (lambda: decode_audio_ros_drivers(np.float32([np.nan]).tobytes(), 1, 16000, "F32LE"),
         InvalidValueError, "data"),
        (lambda: decode_audio_mgonzs13(4, 1, 16000), UnsupportedEncodingError, "format"),
        (lambda: decode_audio_mgonzs13(8, 1, 16000, float32_data=[0.1]), SizeMismatchError,
         "int16_data"),
        (lambda: decode_audio_mgonzs13(8, 0, 16000, int16_data=[1]), InvalidValueError,
         "channels"),
        (lambda: decode_audio_mgonzs13(8, 2, 16000, int16_data=[1, 2, 3]), SizeMismatchError,
         "int16_data"),
        (lambda: decode_audio_mgonzs13(8, 1, 16000, int16_data=np.float32([0.5])), DecodeError,
         "int16_data"),
    ],
)  # fmt: skip
def test_malformed_audio(call, error, field) -> None:
    with pytest.raises(error) as info:
        call()
    assert info.value.field == field
    assert str(info.value)


@pytest.mark.parametrize(
    ("source", "target", "freq"),
    [(48_000, 16_000, 1000.0), (44_100, 16_000, 6400.0), (16_000, 48_000, 3000.0),
     (22_050, 16_000, 440.0), (8_000, 16_000, 3200.0), (16_001, 16_000, 1000.0)],
)  # fmt: skip
def test_resample_accuracy(source: int, target: int, freq: float) -> None:
    """A sine up to 0.8x the lower Nyquist comes back within 1e-3 away from the edges."""
    x = np.sin(2 * np.pi * freq * np.arange(source) / source).astype(np.float32)
    y = resample(x, source, target)
    assert y.size == output_length(source, source, target) == target
    ref = np.sin(2 * np.pi * freq * np.arange(y.size) / target)
    inner = slice(target // 20, -target // 20)
    assert np.abs(y[inner] - ref[inner]).max() < 1e-3


def test_resample_removes_what_the_target_cannot_hold() -> None:
    x = np.sin(2 * np.pi * 7000 * np.arange(48_000) / 48_000).astype(np.float32)  # > 4 kHz
    y = resample(x, 48_000, 8_000)
    assert np.sqrt(np.mean(y[800:-800] ** 2)) < 1e-3  # -57 dB below the input's 0.707 RMS


def test_resample_identity_and_errors() -> None:
    x = RNG.normal(size=100).astype(np.float32)
    np.testing.assert_array_equal(resample(x, 16_000, 16_000), x)
    with pytest.raises(InvalidValueError):
        resample(x, 0, 16_000)


def test_rclpy_array_fields_decode() -> None:
    """rclpy hands uint8[] / int16[] fields over as array.array."""
    import array

    pcm = array.array("B", np.array([0, 16384], dtype="<i2").tobytes())
    chunk = decode_audio_ros_drivers(pcm, 1, 16000, "S16LE")
    np.testing.assert_allclose(chunk.samples[:, 0], [0.0, 0.5])
    typed = decode_audio_mgonzs13(8, 1, 16000, int16_data=array.array("h", [0, -16384]))
    np.testing.assert_allclose(typed.samples[:, 0], [0.0, -0.5])
    raw = decode_audio_mgonzs13(32, 1, 16000, uint8_data=array.array("B", [128, 192]))
    np.testing.assert_allclose(raw.samples[:, 0], [0.0, 0.5])
