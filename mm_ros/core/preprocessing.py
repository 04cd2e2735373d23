"""Sensor data → model input in numpy: image resize/normalise, audio clips, IMU resampling.

Everything here is numpy only, so a headset running ONNX Runtime without torch prepares inputs
exactly as the training/export path does. Each image function also returns the geometric
transform from model-input pixels back to source pixels, so boxes a model writes can be drawn
on the source image.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING

import numpy as np

from mm_ros.core.errors import AdapterInputError, ConfigError

if TYPE_CHECKING:
    from numpy.typing import NDArray


class ResizeMode(str, Enum):
    """How a source image becomes the square model input."""

    SQUASH = "squash"  # scale each axis independently; aspect ratio not kept
    LETTERBOX = "letterbox"  # scale the long side to fit, pad the short side with the mean
    CENTRE_CROP = "centre_crop"  # scale the short side to fit, crop the long side's centre


@dataclass(frozen=True)
class ImageTransform:
    """Model-input pixel → source pixel: ``x_src = a*x_in + c``, ``y_src = b*y_in + d``.

    Pixel coordinates are continuous with the origin at the top-left corner of the top-left
    pixel (so the input square ``[0, size]`` maps onto the source extent). Same layout as
    ``mm_ros/msg/TokenEmbeddings.input_to_source``.
    """

    a: float
    b: float
    c: float
    d: float
    source_width: int
    source_height: int
    input_size: int

    def to_source(self, x_in: float, y_in: float) -> tuple[float, float]:
        """Map one model-input point to source pixels (not clamped)."""
        return self.a * x_in + self.c, self.b * y_in + self.d

    def box_to_source(self, box: tuple[float, float, float, float]) -> tuple[float, ...]:
        """Map an (x1, y1, x2, y2) input-pixel box to source pixels, clamped to the image."""
        x1, y1 = self.to_source(box[0], box[1])
        x2, y2 = self.to_source(box[2], box[3])
        w, h = float(self.source_width), float(self.source_height)
        return (
            min(max(x1, 0.0), w),
            min(max(y1, 0.0), h),
            min(max(x2, 0.0), w),
            min(max(y2, 0.0), h),
        )

    def as_tuple(self) -> tuple[float, float, float, float]:
        """Return ``(a, b, c, d)`` as carried by ``TokenEmbeddings.input_to_source``."""
        return (self.a, self.b, self.c, self.d)


def check_rgb8(image: NDArray[np.generic], what: str = "image") -> NDArray[np.uint8]:
    """Return ``image`` as (H, W, 3) uint8 or raise naming the expected and found layout."""
    if not isinstance(image, np.ndarray):
        raise AdapterInputError(f"{what}: expected a numpy array, found {type(image).__name__}")
    if image.dtype != np.uint8:
        raise AdapterInputError(
            f"{what}: expected dtype uint8 (rgb8), found {image.dtype} with shape {image.shape}"
        )
    if image.ndim != 3 or image.shape[2] != 3:  # noqa: PLR2004 - rgb has 3 channels
        raise AdapterInputError(f"{what}: expected shape (H, W, 3) rgb8, found {image.shape}")
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise AdapterInputError(f"{what}: expected a non-empty image, found {image.shape}")
    return image.astype(np.uint8, copy=False)


def _axis_taps(
    n_in: int, n_out: int, antialias: bool
) -> tuple[NDArray[np.intp], NDArray[np.float32]]:
    """Source indices and weights (n_out, taps) of a triangle filter along one axis.

    Half-pixel centres (align_corners=False). The triangle is one source pixel wide each way:
    bilinear interpolation between the two nearest pixels. With ``antialias`` and shrinking it
    widens to the scale, so every source pixel counts (PIL's bilinear resize, torch's
    ``interpolate(..., antialias=True)``). Taps outside the image get no weight and the rest are
    renormalised, which holds the edges.
    """
    scale = n_in / n_out
    support = max(scale, 1.0) if antialias else 1.0  # half-width, in source pixels
    centres = (np.arange(n_out, dtype=np.float64) + 0.5) * scale
    first = np.floor(centres - support).astype(np.intp)
    index = first[:, None] + np.arange(2 * math.ceil(support) + 1)[None, :]
    weight = np.maximum(0.0, 1.0 - np.abs(index + 0.5 - centres[:, None]) / support)
    weight[(index < 0) | (index >= n_in)] = 0.0
    weight /= weight.sum(axis=1, keepdims=True)
    return np.clip(index, 0, n_in - 1), weight.astype(np.float32)


def resize_bilinear(
    image: NDArray[np.float32], height: int, width: int, *, antialias: bool = False
) -> NDArray[np.float32]:
    """Resize (H, W, C) float32 to (height, width, C) with a separable bilinear filter.

    Without ``antialias`` a 640 px frame shrunk to 96 px is sampled at 2 of every 7 source
    pixels (small objects alias); with it every pixel is averaged in, as the PIL-based HF image
    processors resize for their encoders. Which one a model gets is in its adapter spec
    (``ImagePreprocessing.antialias``).
    """
    rows_i, rows_w = _axis_taps(image.shape[0], height, antialias)
    cols_i, cols_w = _axis_taps(image.shape[1], width, antialias)
    rows = np.einsum("ht,htwc->hwc", rows_w, image[rows_i])  # (height, W, C)
    out: NDArray[np.float32] = np.einsum("wt,hwtc->hwc", cols_w, rows[:, cols_i])
    return out.astype(np.float32, copy=False)


def preprocess_image(
    image: NDArray[np.generic],
    size_px: int,
    mode: ResizeMode,
    mean: tuple[float, float, float],
    std: tuple[float, float, float],
    *,
    antialias: bool = False,
) -> tuple[NDArray[np.float32], ImageTransform]:
    """Turn an (H, W, 3) rgb8 image into a (3, size, size) normalised input and its transform.

    ``antialias``: see `resize_bilinear`.
    """
    if size_px < 1:
        raise ConfigError(f"image size must be >= 1 px, found {size_px}")
    rgb = check_rgb8(image)
    h, w = rgb.shape[:2]
    pixels = rgb.astype(np.float32) / 255.0  # (H, W, 3) in [0, 1]
    mean_a = np.asarray(mean, dtype=np.float32)
    std_a = np.asarray(std, dtype=np.float32)
    if mode is ResizeMode.SQUASH:
        out = resize_bilinear(pixels, size_px, size_px, antialias=antialias)
        transform = ImageTransform(w / size_px, h / size_px, 0.0, 0.0, w, h, size_px)
    elif mode is ResizeMode.LETTERBOX:
        scale = size_px / max(h, w)
        nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
        top, left = (size_px - nh) // 2, (size_px - nw) // 2
        out = np.empty((size_px, size_px, 3), dtype=np.float32)
        out[:] = mean_a  # the pad normalises to exactly 0
        out[top : top + nh, left : left + nw] = resize_bilinear(pixels, nh, nw, antialias=antialias)
        a, b = w / nw, h / nh
        transform = ImageTransform(a, b, -left * a, -top * b, w, h, size_px)
    elif mode is ResizeMode.CENTRE_CROP:
        scale = size_px / min(h, w)
        nh, nw = max(size_px, round(h * scale)), max(size_px, round(w * scale))
        top, left = (nh - size_px) // 2, (nw - size_px) // 2
        out = resize_bilinear(pixels, nh, nw, antialias=antialias)[
            top : top + size_px, left : left + size_px
        ]
        a, b = w / nw, h / nh
        transform = ImageTransform(a, b, left * a, top * b, w, h, size_px)
    else:  # pragma: no cover - closed enum
        raise ConfigError(f"unknown resize mode {mode!r}")
    normalised = (out - mean_a) / std_a  # (size, size, 3)
    return np.ascontiguousarray(normalised.transpose(2, 0, 1), dtype=np.float32), transform


def prepare_audio(
    samples: NDArray[np.generic], sample_rate_hz: int, expected_rate_hz: int, clip_samples: int
) -> NDArray[np.float32]:
    """Return the newest ``clip_samples`` of mono audio as float32 in [-1, 1], zero-padded left.

    int16 input is scaled by 1/32768; float input is taken as already in [-1, 1].
    """
    if sample_rate_hz != expected_rate_hz:
        raise AdapterInputError(
            f"audio: expected {expected_rate_hz} Hz, found {sample_rate_hz} Hz (resample first)"
        )
    if samples.ndim != 1:
        raise AdapterInputError(f"audio: expected mono (S,) samples, found shape {samples.shape}")
    if samples.size == 0:
        raise AdapterInputError("audio: expected at least one sample, found an empty window")
    if samples.dtype == np.int16:
        wave = samples.astype(np.float32) / 32768.0
    elif np.issubdtype(samples.dtype, np.floating):
        wave = samples.astype(np.float32)
    else:
        raise AdapterInputError(f"audio: expected int16 or float samples, found {samples.dtype}")
    bad = int(np.count_nonzero(~np.isfinite(wave)))
    if bad:
        raise AdapterInputError(f"audio: expected finite samples, found {bad} NaN/Inf values")
    out = np.zeros(clip_samples, dtype=np.float32)
    tail = wave[-clip_samples:]
    out[clip_samples - tail.size :] = tail
    return out


def resample_imu(
    stamps_ns: NDArray[np.int64],
    values: NDArray[np.generic],
    rate_hz: float,
    window_s: float,
    end_ns: int | None = None,
) -> NDArray[np.float32]:
    """Linearly resample an IMU window to ``round(rate*window)`` rows ending at ``end_ns``.

    ``values`` is (N, axes), e.g. (ax, ay, az, gx, gy, gz). Times before the first sample hold
    the first value (the window is older than the data); times after the last hold the last.
    """
    if values.ndim != 2:  # noqa: PLR2004 - (N, axes)
        raise AdapterInputError(f"imu: expected (N, axes) values, found shape {values.shape}")
    if values.shape[0] == 0 or stamps_ns.size == 0:
        raise AdapterInputError("imu: expected at least one sample, found an empty window")
    if stamps_ns.shape != (values.shape[0],):
        raise AdapterInputError(
            f"imu: expected {values.shape[0]} stamps (one per row), found shape {stamps_ns.shape}"
        )
    if np.any(np.diff(stamps_ns) <= 0):
        raise AdapterInputError(
            "imu: expected strictly increasing stamps, found a repeat or step back"
        )
    data = values.astype(np.float64)
    bad = int(np.count_nonzero(~np.isfinite(data)))
    if bad:
        raise AdapterInputError(f"imu: expected finite values, found {bad} NaN/Inf values")
    rows = round(rate_hz * window_s)
    if rows < 1:
        raise ConfigError(f"imu window {window_s} s at {rate_hz} Hz has no samples")
    end = int(stamps_ns[-1]) if end_ns is None else end_ns
    period_ns = 1e9 / rate_hz
    times = end - (rows - 1 - np.arange(rows)) * period_ns  # (rows,) ns, oldest first
    t = (stamps_ns - stamps_ns[0]).astype(np.float64)
    query = times - float(stamps_ns[0])
    out = np.stack([np.interp(query, t, data[:, k]) for k in range(data.shape[1])], axis=1)
    return out.astype(np.float32)  # (rows, axes)


def hz_to_mel(hz: NDArray[np.float64]) -> NDArray[np.float64]:
    """HTK mel scale."""
    return 2595.0 * np.log10(1.0 + hz / 700.0)


def mel_to_hz(mel: NDArray[np.float64]) -> NDArray[np.float64]:
    """Inverse of :func:`hz_to_mel`."""
    return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)


def mel_filterbank(
    sample_rate_hz: int,
    n_fft: int,
    n_mels: int,
    f_min_hz: float = 0.0,
    f_max_hz: float | None = None,
) -> NDArray[np.float32]:
    """Triangular HTK mel filters, (n_mels, n_fft // 2 + 1), each peaking at 1."""
    f_max = sample_rate_hz / 2 if f_max_hz is None else f_max_hz
    bins = np.linspace(0.0, sample_rate_hz / 2, n_fft // 2 + 1)  # (F,) Hz
    edges = mel_to_hz(
        np.linspace(hz_to_mel(np.array(f_min_hz)), hz_to_mel(np.array(f_max)), n_mels + 2)
    )
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (bins[None, :] - lower) / np.maximum(centre - lower, 1e-9)
    falling = (upper - bins[None, :]) / np.maximum(upper - centre, 1e-9)
    return np.clip(np.minimum(rising, falling), 0.0, None).astype(np.float32)


LOG_FLOOR = 1e-6  # power floor before log: silence maps to log(1e-6) instead of -inf


def log_mel_reference(
    wave: NDArray[np.float32], sample_rate_hz: int, n_fft: int, hop: int, n_mels: int
) -> NDArray[np.float32]:
    """Return the log-mel of a (S,) clip with numpy's FFT: (n_mels, frames).

    The adapter's exported front end computes the same (Hann window, no centring, power).
    """
    frames = 1 + (wave.shape[0] - n_fft) // hop
    if frames < 1:
        raise AdapterInputError(f"audio: expected >= {n_fft} samples, found {wave.shape[0]}")
    window = hann_window(n_fft)
    idx = np.arange(n_fft)[None, :] + hop * np.arange(frames)[:, None]  # (frames, n_fft)
    spectrum = np.fft.rfft(wave.astype(np.float64)[idx] * window, axis=1)
    power = np.abs(spectrum) ** 2  # (frames, F)
    mel = power @ mel_filterbank(sample_rate_hz, n_fft, n_mels).T.astype(np.float64)
    log_mel: NDArray[np.float32] = np.log(np.maximum(mel, LOG_FLOOR)).T.astype(np.float32)
    return log_mel


def hann_window(n: int) -> NDArray[np.float64]:
    """Periodic Hann window, as torch.hann_window(periodic=True)."""
    return 0.5 - 0.5 * np.cos(2.0 * math.pi * np.arange(n) / n)
