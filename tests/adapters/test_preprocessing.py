"""numpy preprocessing: image transforms map back to source pixels, audio/IMU windows, log-mel."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mm_ros.adapters.audio import LogMel
from mm_ros.adapters.tiny import TINY_AUDIO
from mm_ros.core.errors import AdapterInputError
from mm_ros.core.preprocessing import (
    ResizeMode,
    log_mel_reference,
    prepare_audio,
    preprocess_image,
    resample_imu,
    resize_bilinear,
)

MEAN = (0.5, 0.5, 0.5)
STD = (0.25, 0.25, 0.25)


def marker_image(height: int, width: int, box: tuple[int, int, int, int]) -> np.ndarray:
    image = np.zeros((height, width, 3), dtype=np.uint8)
    x1, y1, x2, y2 = box
    image[y1:y2, x1:x2] = 255
    return image


def bright_box(chw: np.ndarray) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(chw[0] > 0.5 * (1.0 - MEAN[0]) / STD[0])
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


@pytest.mark.parametrize("mode", list(ResizeMode))
@pytest.mark.parametrize(("height", "width"), [(120, 200), (200, 120), (64, 64)])
def test_transform_maps_input_boxes_back_to_source_pixels(
    mode: ResizeMode, height: int, width: int
) -> None:
    box = (width // 2 - 20, height // 2 - 16, width // 2 + 20, height // 2 + 16)  # central
    pixels, transform = preprocess_image(marker_image(height, width, box), 64, mode, MEAN, STD)
    assert pixels.shape == (3, 64, 64)
    assert pixels.dtype == np.float32
    mapped = transform.box_to_source(tuple(float(v) for v in bright_box(pixels)))
    scale = max(transform.a, transform.b)  # one input pixel in source pixels
    np.testing.assert_allclose(mapped, box, atol=1.5 * scale)
    assert (transform.source_width, transform.source_height) == (width, height)


def test_letterbox_pads_with_the_mean_and_squash_fills_the_square() -> None:
    image = np.full((50, 100, 3), 200, dtype=np.uint8)
    letter, lt = preprocess_image(image, 40, ResizeMode.LETTERBOX, MEAN, STD)
    assert np.all(letter[:, :10] == 0.0)  # top pad: (mean - mean) / std
    assert np.all(letter[:, 30:] == 0.0)
    assert lt.to_source(0.0, 10.0) == pytest.approx((0.0, 0.0))
    squash, st = preprocess_image(image, 40, ResizeMode.SQUASH, MEAN, STD)
    assert np.all(squash != 0.0)
    assert st.to_source(40.0, 40.0) == pytest.approx((100.0, 50.0))


@pytest.mark.parametrize("antialias", [True, False])
@pytest.mark.parametrize(
    ("source", "target"),
    [((480, 640), (96, 96)), ((480, 640), (192, 256)), ((24, 32), (96, 96)), ((100, 37), (13, 200)),
     ((5, 5), (5, 5)), ((1, 7), (3, 2))],
)  # fmt: skip
def test_resize_equals_torch_bilinear(
    source: tuple[int, int], target: tuple[int, int], antialias: bool
) -> None:
    """Shrinking, enlarging and mixed, with and without antialiasing (PIL's is torch's True)."""
    image = np.random.default_rng(0).random((*source, 3), dtype=np.float32)
    ours = resize_bilinear(image, *target, antialias=antialias)
    chw = torch.from_numpy(image).permute(2, 0, 1)[None]
    theirs = torch.nn.functional.interpolate(
        chw, size=target, mode="bilinear", antialias=antialias, align_corners=False
    )
    np.testing.assert_allclose(ours, theirs[0].permute(1, 2, 0).numpy(), atol=1e-4)


def test_antialiased_shrinking_averages_every_source_pixel() -> None:
    """A 1 px grid shrunk 8x is its mean grey with antialiasing; sampling sees lines or none."""
    grid = np.zeros((480, 640, 3), dtype=np.float32)
    grid[::8] = 1.0  # one bright row in eight
    image = (grid * 255).astype(np.uint8)
    smooth, _ = preprocess_image(image, 60, ResizeMode.SQUASH, (0, 0, 0), (1, 1, 1), antialias=True)
    np.testing.assert_allclose(smooth[:, 1:-1], 1.0 / 8.0, atol=0.02)
    sampled, _ = preprocess_image(image, 60, ResizeMode.SQUASH, (0, 0, 0), (1, 1, 1))
    assert np.abs(sampled[:, 1:-1] - 1.0 / 8.0).max() > 0.1  # the default: as before


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (np.zeros((32, 32, 3), dtype=np.float32), "expected dtype uint8.*found float32"),
        (np.zeros((32, 32), dtype=np.uint8), r"expected shape \(H, W, 3\).*found \(32, 32\)"),
        (np.zeros((32, 32, 4), dtype=np.uint8), r"found \(32, 32, 4\)"),
        (np.zeros((0, 32, 3), dtype=np.uint8), "non-empty"),
    ],
)
def test_bad_images_are_rejected_naming_expected_and_found(image: np.ndarray, message: str) -> None:
    with pytest.raises(AdapterInputError, match=message):
        preprocess_image(image, 32, ResizeMode.SQUASH, MEAN, STD)


def test_audio_clip_is_newest_samples_zero_padded_left() -> None:
    samples = np.arange(1, 6, dtype=np.int16) * 3276
    clip = prepare_audio(samples, 16000, 16000, 8)
    np.testing.assert_allclose(clip[:3], 0.0)
    np.testing.assert_allclose(clip[3:], samples / 32768.0, rtol=1e-6)
    long = prepare_audio(np.linspace(-1, 1, 20, dtype=np.float32), 16000, 16000, 8)
    np.testing.assert_allclose(long, np.linspace(-1, 1, 20, dtype=np.float32)[-8:])


@pytest.mark.parametrize(
    ("samples", "rate", "message"),
    [
        (np.array([0.1, np.nan, 0.2], dtype=np.float32), 16000, "1 NaN/Inf"),
        (np.array([0.1, np.inf], dtype=np.float32), 16000, "finite"),
        (np.zeros(0, dtype=np.float32), 16000, "empty"),
        (np.zeros((4, 2), dtype=np.float32), 16000, "mono"),
        (np.zeros(4, dtype=np.float32), 48000, "expected 16000 Hz, found 48000 Hz"),
        (np.zeros(4, dtype=np.uint8), 16000, "int16 or float"),
    ],
)
def test_bad_audio_is_rejected(samples: np.ndarray, rate: int, message: str) -> None:
    with pytest.raises(AdapterInputError, match=message):
        prepare_audio(samples, rate, 16000, 16)


def test_imu_resampling_is_linear_and_holds_the_edges() -> None:
    stamps = np.array([0, 10_000_000, 30_000_000], dtype=np.int64)  # 0, 10, 30 ms
    values = np.array([[0.0] * 6, [1.0] * 6, [3.0] * 6])
    out = resample_imu(stamps, values, rate_hz=200.0, window_s=0.04)  # 8 rows every 5 ms
    assert out.shape == (8, 6)
    assert out.dtype == np.float32
    # rows at -5, 0, 5, ..., 30 ms: held 0 before the first sample, then linear
    np.testing.assert_allclose(out[:, 0], [0.0, 0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0])


@pytest.mark.parametrize(
    ("stamps", "values", "message"),
    [
        (np.zeros(0, dtype=np.int64), np.zeros((0, 6)), "empty window"),
        (np.array([0, 0], dtype=np.int64), np.zeros((2, 6)), "strictly increasing"),
        (np.array([0, 1], dtype=np.int64), np.array([[np.nan] * 6, [0.0] * 6]), "6 NaN/Inf"),
        (np.array([0, 1, 2], dtype=np.int64), np.zeros((2, 6)), "expected 2 stamps"),
        (np.array([0], dtype=np.int64), np.zeros(6), r"\(N, axes\)"),
    ],
)
def test_bad_imu_windows_are_rejected(stamps: np.ndarray, values: np.ndarray, message: str) -> None:
    with pytest.raises(AdapterInputError, match=message):
        resample_imu(stamps, values, rate_hz=100.0, window_s=1.0)


def test_log_mel_front_end_matches_the_numpy_fft_reference() -> None:
    rng = np.random.default_rng(0)
    t = np.arange(TINY_AUDIO.clip_samples) / TINY_AUDIO.sample_rate_hz
    wave = (0.5 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(t.size)).astype(
        np.float32
    )
    reference = log_mel_reference(
        wave, TINY_AUDIO.sample_rate_hz, TINY_AUDIO.n_fft, TINY_AUDIO.hop, TINY_AUDIO.n_mels
    )
    with torch.inference_mode():
        front = LogMel(TINY_AUDIO)(torch.from_numpy(wave)[None])[0].numpy()
    assert front.shape == reference.shape == (TINY_AUDIO.n_mels, TINY_AUDIO.frames)
    np.testing.assert_allclose(front, reference, atol=1e-3, rtol=0)  # float32 DFT vs float64 FFT
