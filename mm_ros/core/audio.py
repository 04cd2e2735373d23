"""Audio samples: both ``audio_common_msgs`` layouts to and from `AudioChunk`, mono, resampling.

Two packages share the name ``audio_common_msgs`` (REFERENCE.md section 3): ros-drivers sends raw
interleaved PCM bytes (``uint8[] data``) and names the sample format in a separate ``AudioInfo``
(GStreamer names such as ``S16LE``); mgonzs13 sends typed arrays with a PortAudio format code.
Which one is on the wire is a setting; each has its own decoder and encoder here.
"""

from __future__ import annotations

import enum
import math
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from mm_ros.core.errors import (
    DecodeError,
    InvalidValueError,
    SizeMismatchError,
    UnsupportedEncodingError,
    require_in_range,
)
from mm_ros.core.images import as_uint8
from mm_ros.core.sensors import AudioChunk

if TYPE_CHECKING:
    from collections.abc import Sequence

    from numpy.typing import NDArray

    from mm_ros.core.images import BytesLike


class AudioLayout(enum.Enum):
    """Which ``audio_common_msgs`` is on the wire (a setting, never guessed; REFERENCE.md 3).

    The values are the ``audio_layout`` names of `mm_ros.interfaces.get_store`.
    """

    ROS_DRIVERS = "ros-drivers"  # AudioDataStamped (uint8[] PCM) + AudioInfo on its own topic
    MGONZS13 = "mgonzs13"  # AudioStamped with typed arrays and a PortAudio format code


MAX_RATE_HZ = 768_000  # the fastest audio interfaces; anything above is a corrupted header
MAX_CHANNELS = 64


class SampleFormat(enum.Enum):
    """PCM sample formats, named as GStreamer (and so ros-drivers' ``AudioInfo``) names them."""

    U8 = "U8"
    S8 = "S8"
    S16LE = "S16LE"
    S16BE = "S16BE"
    S24LE = "S24LE"  # packed 3 bytes (WAV files); no array type in the mgonzs13 layout
    S32LE = "S32LE"
    S32BE = "S32BE"
    F32LE = "F32LE"
    F32BE = "F32BE"

    @property
    def bytes_per_sample(self) -> int:
        """Bytes of one sample of one channel."""
        return {"U8": 1, "S8": 1, "S24LE": 3}.get(self.value, 2 if "16" in self.value else 4)

    @property
    def dtype(self) -> np.dtype[Any]:
        """Numpy dtype of one sample (S24LE is unpacked by hand)."""
        order = ">" if self.value.endswith("BE") else "<"
        kind = {"U": "u", "S": "i", "F": "f"}[self.value[0]]
        size = 4 if self is SampleFormat.S24LE else self.bytes_per_sample
        return np.dtype(f"{order}{kind}{size}")

    @classmethod
    def parse(cls, name: str) -> SampleFormat:
        """Return the format called ``name`` (case-insensitive) or raise naming the known ones."""
        try:
            return cls(name.upper())
        except ValueError:
            known = [f.value for f in cls]
            raise UnsupportedEncodingError(
                f"AudioInfo sample_format {name!r} is not one of {', '.join(known)}",
                field="sample_format",
                expected=known,
                found=name,
            ) from None


def pcm_to_float(samples: NDArray[Any]) -> NDArray[np.float32]:
    """Scale integer or float PCM samples of any dtype to float32 in [-1, 1)."""
    kind = samples.dtype.kind
    if kind == "f":
        out = samples.astype(np.float32)
        if not np.isfinite(out).all():
            raise InvalidValueError(
                "audio samples contain NaN or inf",
                field="data",
                expected="finite samples",
                found="NaN/inf",
            )
        return out
    bits = samples.dtype.itemsize * 8
    full = np.float32(2.0 ** (bits - 1))
    scaled: NDArray[np.float32] = samples.astype(np.float32)
    if kind == "u":
        scaled -= full
    scaled /= full
    return scaled


def float_to_pcm(samples: NDArray[np.float32], dtype: np.dtype[Any]) -> NDArray[Any]:
    """Quantise float samples in [-1, 1] to ``dtype`` (clipping, rounding to nearest)."""
    if dtype.kind == "f":
        return samples.astype(dtype)
    bits = dtype.itemsize * 8
    full = 2.0 ** (bits - 1)
    scaled = np.clip(np.rint(samples.astype(np.float64) * full), -full, full - 1)
    if dtype.kind == "u":
        scaled += full
    return scaled.astype(dtype)


def _check_stream(channels: int, rate_hz: int) -> None:
    require_in_range("audio", "channels", channels, MAX_CHANNELS)
    require_in_range("audio", "rate", rate_hz, MAX_RATE_HZ, " Hz")


def _deinterleave(flat: NDArray[np.float32], channels: int, field: str) -> NDArray[np.float32]:
    if flat.size == 0 or flat.size % channels:
        raise SizeMismatchError(
            f"audio {field} has {flat.size} samples, not a positive multiple of "
            f"{channels} channels",
            field=field,
            expected=f"positive multiple of {channels}",
            found=flat.size,
        )
    return flat.reshape(-1, channels)  # (N, C)


def decode_pcm(
    data: BytesLike | NDArray[Any], sample_format: SampleFormat, channels: int
) -> NDArray[np.float32]:
    """Decode interleaved PCM bytes into (N, C) float32 in [-1, 1)."""
    flat = as_uint8(data)
    width = sample_format.bytes_per_sample
    if flat.size % (width * channels):
        raise SizeMismatchError(
            f"audio data is {flat.size} bytes, not a multiple of {width} bytes x {channels} "
            f"channels for {sample_format.value}",
            field="data",
            expected=f"multiple of {width * channels}",
            found=flat.size,
        )
    if sample_format is SampleFormat.S24LE:
        triples = flat.reshape(-1, 3).astype(np.int32)
        ints = (triples[:, 0] | (triples[:, 1] << 8) | (triples[:, 2] << 16)) << 8  # sign in bit 31
        values = (ints.astype(np.float32) / np.float32(2.0**31)).astype(np.float32)
    else:
        values = pcm_to_float(flat.view(sample_format.dtype))
    return _deinterleave(values, channels, "data")


def decode_audio_ros_drivers(
    data: BytesLike | NDArray[Any],
    channels: int,
    sample_rate: int,
    sample_format: str,
    coding_format: str = "wave",
    *,
    stamp_ns: int = 0,
) -> AudioChunk:
    """Decode ``AudioDataStamped.audio.data`` with the stream's ``AudioInfo`` fields."""
    fmt = check_audio_info(channels, sample_rate, sample_format, coding_format)
    samples = decode_pcm(data, fmt, channels)
    return AudioChunk(stamp_ns=stamp_ns, rate_hz=sample_rate, samples=samples)


def check_audio_info(
    channels: int, sample_rate: int, sample_format: str, coding_format: str = "wave"
) -> SampleFormat:
    """Check ``AudioInfo`` fields (ros-drivers layout); return the sample format."""
    _check_stream(channels, sample_rate)
    if coding_format.lower() not in ("wave", "wav", "pcm", "raw", ""):
        raise UnsupportedEncodingError(
            f"AudioInfo coding_format {coding_format!r} is not raw PCM (wave)",
            field="coding_format",
            expected="wave",
            found=coding_format,
        )
    return SampleFormat.parse(sample_format)


class PaFormat(enum.IntEnum):
    """PortAudio / PyAudio sample format codes used by the mgonzs13 ``AudioInfo.format``."""

    FLOAT32 = 1
    INT32 = 2
    INT24 = 4
    INT16 = 8
    INT8 = 16
    UINT8 = 32


_PA_FIELDS = {
    PaFormat.FLOAT32: ("float32_data", np.float32),
    PaFormat.INT32: ("int32_data", np.int32),
    PaFormat.INT16: ("int16_data", np.int16),
    PaFormat.INT8: ("int8_data", np.int8),
    PaFormat.UINT8: ("uint8_data", np.uint8),
}


def decode_audio_mgonzs13(
    format: int,
    channels: int,
    rate: int,
    *,
    float32_data: Sequence[float] | NDArray[Any] = (),
    int32_data: Sequence[int] | NDArray[Any] = (),
    int16_data: Sequence[int] | NDArray[Any] = (),
    int8_data: Sequence[int] | NDArray[Any] = (),
    uint8_data: BytesLike | Sequence[int] | NDArray[Any] = (),
    stamp_ns: int = 0,
) -> AudioChunk:
    """Decode an mgonzs13 ``AudioStamped``: the array named by ``format`` holds the samples."""
    _check_stream(channels, rate)
    codes = {int(f): f.name for f in _PA_FIELDS}
    if format not in codes:
        raise UnsupportedEncodingError(
            f"AudioInfo format {format} is not one of {codes} (PortAudio codes)",
            field="format",
            expected=codes,
            found=format,
        )
    arrays = {
        "float32_data": float32_data,
        "int32_data": int32_data,
        "int16_data": int16_data,
        "int8_data": int8_data,
        "uint8_data": uint8_data,
    }
    field, dtype = _PA_FIELDS[PaFormat(format)]
    chosen = arrays[field]
    raw = (
        np.frombuffer(chosen, dtype=np.uint8)
        if isinstance(chosen, bytes | bytearray | memoryview)
        else np.asarray(chosen)
    )
    if raw.size == 0:
        filled = [name for name, values in arrays.items() if len(values)]
        raise SizeMismatchError(
            f"AudioData.{field} is empty for format {PaFormat(format).name}"
            + (f" (filled instead: {', '.join(filled)})" if filled else ""),
            field=field,
            expected="samples",
            found=filled or "no samples",
        )
    if raw.dtype != dtype:
        if raw.dtype.kind == "f" and np.dtype(dtype).kind != "f":
            raise DecodeError(
                f"AudioData.{field} holds {raw.dtype} values",
                field=field,
                expected=np.dtype(dtype).name,
                found=raw.dtype.name,
            )
        raw = raw.astype(dtype)
    samples = _deinterleave(pcm_to_float(raw.reshape(-1)), channels, field)
    return AudioChunk(stamp_ns=stamp_ns, rate_hz=rate, samples=samples)


class RosDriversAudio(NamedTuple):
    """Field values of ros-drivers ``AudioData`` (``data``) and its ``AudioInfo``."""

    data: bytes
    channels: int
    sample_rate: int
    sample_format: str
    bitrate: int
    coding_format: str


def encode_audio_ros_drivers(
    chunk: AudioChunk, sample_format: SampleFormat = SampleFormat.S16LE
) -> RosDriversAudio:
    """Return ros-drivers message fields for ``chunk`` as interleaved PCM."""
    if sample_format is SampleFormat.S24LE:
        ints = float_to_pcm(chunk.samples.reshape(-1), np.dtype("<i4")) >> 8
        data = ints.astype("<i4").view(np.uint8).reshape(-1, 4)[:, :3].tobytes()
    else:
        data = float_to_pcm(chunk.samples.reshape(-1), sample_format.dtype).tobytes()
    return RosDriversAudio(
        data=data,
        channels=chunk.channels,
        sample_rate=chunk.rate_hz,
        sample_format=sample_format.value,
        bitrate=chunk.rate_hz * chunk.channels * sample_format.bytes_per_sample * 8,
        coding_format="wave",
    )


class Mgonzs13Audio(NamedTuple):
    """Field values of an mgonzs13 ``Audio`` (exactly one array is non-empty)."""

    float32_data: NDArray[Any]
    int32_data: NDArray[Any]
    int16_data: NDArray[Any]
    int8_data: NDArray[Any]
    uint8_data: NDArray[Any]
    format: int
    channels: int
    rate: int
    chunk: int


def encode_audio_mgonzs13(chunk: AudioChunk, format: PaFormat = PaFormat.INT16) -> Mgonzs13Audio:
    """Return mgonzs13 message fields for ``chunk`` with samples in the array ``format`` names."""
    if format not in _PA_FIELDS:
        raise UnsupportedEncodingError(
            f"PortAudio format {format!r} has no array in the mgonzs13 layout",
            field="format",
            expected=[f.name for f in _PA_FIELDS],
            found=format,
        )
    field, dtype = _PA_FIELDS[format]
    arrays = {name: np.zeros(0, dtype=dt) for name, dt in _PA_FIELDS.values()}
    arrays[field] = float_to_pcm(chunk.samples.reshape(-1), np.dtype(dtype))
    return Mgonzs13Audio(
        **arrays,
        format=int(format),
        channels=chunk.channels,
        rate=chunk.rate_hz,
        chunk=chunk.frames,
    )


# Resampling: windowed-sinc interpolation with a Kaiser window, evaluated polyphase for the
# rational ratio to/from. With 16 zero crossings each side and beta 8.6 the stopband is below
# about -80 dB; a sine at up to 0.8x the lower Nyquist comes back within 1e-3 (tested).
RESAMPLE_ZERO_CROSSINGS = 16
RESAMPLE_KAISER_BETA = 8.6
_MAX_PHASE_TABLE = 4096  # beyond this many phases the weights are computed per output sample


def _kernel(distance: NDArray[np.float64], cutoff: float, half_width: float) -> NDArray[np.float64]:
    """Windowed sinc at ``distance`` input samples; ``cutoff`` as a fraction of input Nyquist."""
    x = np.clip(distance / half_width, -1.0, 1.0)
    window = np.i0(RESAMPLE_KAISER_BETA * np.sqrt(1.0 - x * x)) / np.i0(RESAMPLE_KAISER_BETA)
    weights: NDArray[np.float64] = cutoff * np.sinc(cutoff * distance) * window
    weights[np.abs(distance) >= half_width] = 0.0
    return weights


def output_length(frames: int, from_hz: int, to_hz: int) -> int:
    """Return the number of output samples `resample` returns for ``frames`` input samples."""
    return frames * to_hz // from_hz


def resample(samples: NDArray[np.float32], from_hz: int, to_hz: int) -> NDArray[np.float32]:
    """Resample (N,) float32 from ``from_hz`` to ``to_hz``; output sample m is at m/to_hz s.

    Output length is ``N * to_hz // from_hz``; the signal outside the input counts as silence.
    """
    _check_stream(1, from_hz)
    _check_stream(1, to_hz)
    x: NDArray[np.float32] = np.asarray(samples, dtype=np.float32).reshape(-1)
    if from_hz == to_hz or x.size == 0:
        return np.array(x, dtype=np.float32)
    g = math.gcd(from_hz, to_hz)
    up, down = to_hz // g, from_hz // g
    cutoff = min(1.0, up / down)  # anti-aliasing: the lower of the two Nyquist frequencies
    half = RESAMPLE_ZERO_CROSSINGS / cutoff  # in input samples
    taps = np.arange(-math.ceil(half) + 1, math.ceil(half) + 1)  # offsets from floor(t)
    m_count = output_length(x.size, from_hz, to_hz)
    positions = np.arange(m_count, dtype=np.int64) * down  # t_m * up
    base = positions // up
    phase = positions % up
    table = None
    if up <= _MAX_PHASE_TABLE:  # (up, T) weights, each phase normalised to unit DC gain
        table = _kernel(taps[None, :] - (np.arange(up)[:, None] / up), cutoff, half)
        table /= table.sum(axis=1, keepdims=True)
    pad = taps.size
    padded = np.concatenate([np.zeros(pad, np.float32), x, np.zeros(pad, np.float32)])
    out = np.zeros(m_count, dtype=np.float64)  # (M,)
    gain = np.zeros(m_count, dtype=np.float64)  # (M,) sum of weights, for the no-table path
    for j, offset in enumerate(taps):  # one pass per tap keeps memory at O(M), not O(M*T)
        w = table[phase, j] if table is not None else _kernel(offset - phase / up, cutoff, half)
        out += padded[base + offset + pad] * w
        gain += w
    if table is None:
        out /= gain
    return out.astype(np.float32)
