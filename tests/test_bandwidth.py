"""The bandwidth controller over a simulated 10 s stream of real JPEG frames, audio and IMU."""

from __future__ import annotations

import numpy as np
import pytest

from mm_ros.core.bandwidth import BandwidthConfig, BandwidthController
from mm_ros.core.images import encode_compressed_image
from mm_ros.core.sensors import Frame, PixelFormat

S = 1_000_000_000
AUDIO_BYTES, IMU_BYTES = 640 + 48, 352  # 20 ms of 16 kHz S16LE; one sensor_msgs/Imu


def textured(h: int, w: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (h // 8, w // 8, 3), dtype=np.uint8)
    return np.kron(base, np.ones((8, 8, 1), dtype=np.uint8))  # blocky: JPEG sizes vary with q


def simulate(budget_mbps: float, seconds: float = 10.0, fps: float = 30.0):
    """Offer 30 fps 320x240 frames, 50 Hz audio, 200 Hz IMU; return (sent log, controller)."""
    ctrl = BandwidthController(BandwidthConfig(budget_mbps, max_fps=fps, quality=90), 0)
    frames = [textured(240, 320, i) for i in range(8)]
    sent: list[tuple[int, str, int]] = []  # (t_ns, kind, bytes)
    for tick in range(int(seconds * 600)):  # 600 Hz clock: lcm of 200, 50 and 30
        now = tick * S // 600
        if tick % 3 == 0:
            ctrl.charge_small(IMU_BYTES, now)
            sent.append((now, "imu", IMU_BYTES))
        if tick % 12 == 0:
            ctrl.charge_small(AUDIO_BYTES, now)
            sent.append((now, "audio", AUDIO_BYTES))
        if tick % 20 == 0 and ctrl.want_frame(now):
            frame = Frame(now, "cam", frames[tick // 20 % 8], PixelFormat.RGB8)
            size = len(encode_compressed_image(frame, "jpeg", ctrl.quality)) + 96
            if ctrl.offer_frame(size, now):
                sent.append((now, "image", size))
    return sent, ctrl


# At 1 Mbit/s audio + IMU take 0.84 Mbit/s: frames at the quality floor, and few of them.
@pytest.mark.parametrize(("budget_mbps", "min_frames"), [(1.0, 25), (2.0, 200), (4.0, 250)])
def test_ten_second_stream_stays_under_budget_and_keeps_audio_and_imu(
    budget_mbps: float, min_frames: int
) -> None:
    sent, ctrl = simulate(budget_mbps)
    total_bits = 8 * sum(size for _, _, size in sent)
    assert total_bits / 10.0 <= budget_mbps * 1e6  # measured over the whole 10 s
    for start in range(0, 10, 2):  # and over every 2 s window, bucket depth allowed
        window = sum(s for t, _, s in sent if start * S <= t < (start + 2) * S)
        assert 8 * window <= budget_mbps * 1e6 * (2 + ctrl.config.burst_s)
    kinds = [k for _, k, _ in sent]
    assert kinds.count("imu") == 2000
    assert kinds.count("audio") == 500
    assert kinds.count("image") >= min_frames
    assert 8 * sum(s for _, _, s in sent) / 10 > 0.5 * budget_mbps * 1e6  # the budget is used


def test_tight_budget_lowers_quality_before_frame_rate() -> None:
    _, tight = simulate(2.0)
    _, loose = simulate(8.0)
    assert tight.quality < loose.quality
    assert tight.frames_sent <= loose.frames_sent


def test_no_budget_sends_every_frame_at_the_configured_quality() -> None:
    sent, ctrl = simulate(0.0, seconds=2.0)
    assert [k for _, k, _ in sent].count("image") == 60
    assert ctrl.quality == 90
    assert ctrl.frames_dropped == 0


def test_max_fps_drops_frames_offered_too_fast() -> None:
    ctrl = BandwidthController(BandwidthConfig(max_fps=10), 0)
    accepted = 0
    for i in range(30):  # 30 fps offered for 1 s
        now = i * S // 30
        if ctrl.want_frame(now) and ctrl.offer_frame(1000, now):
            accepted += 1
    assert accepted == 10
    assert ctrl.frames_dropped == 20


@pytest.mark.parametrize(
    "kwargs", [{"budget_mbps": -1}, {"max_fps": 0}, {"min_quality": 50, "quality": 40}]
)
def test_config_is_validated(kwargs: dict) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - the message names the field
        BandwidthConfig(**kwargs)
