"""Camera source playback of a folder: paced at the requested rate, no burst after a stall."""

from __future__ import annotations

import itertools
import time
from typing import TYPE_CHECKING

import cv2
import numpy as np

from mm_ros.drivers.camera_source import CameraSource, CameraSourceConfig

if TYPE_CHECKING:
    from pathlib import Path

    from mm_ros.core.sensors import Frame

FPS = 20.0
PERIOD_NS = round(1e9 / FPS)


def write_folder(folder: Path, count: int) -> None:
    for i in range(count):
        cv2.imwrite(str(folder / f"{i:03d}.png"), np.full((8, 8, 3), i, np.uint8))


def play(folder: Path, on_frame_extra_s: float) -> list[Frame]:
    """Play ``folder`` at FPS; the consumer stalls ``on_frame_extra_s`` on the second frame."""
    frames: list[Frame] = []

    def on_frame(frame: Frame) -> None:
        frames.append(frame)
        if len(frames) == 2:
            time.sleep(on_frame_extra_s)

    source = CameraSource(CameraSourceConfig(source=str(folder), fps=FPS))
    source.start(on_frame)
    assert source.finished.wait(10), "the folder did not finish playing"
    source.stop()
    return frames


def test_folder_plays_in_order_at_the_rate(tmp_path: Path) -> None:
    write_folder(tmp_path, 6)
    frames = play(tmp_path, 0.0)
    assert [int(f.pixels[0, 0, 0]) for f in frames] == list(range(6))
    gaps = np.diff([f.stamp_ns for f in frames])
    assert np.median(gaps) > 0.6 * PERIOD_NS


def test_a_stalled_consumer_does_not_make_the_next_frames_burst(tmp_path: Path) -> None:
    write_folder(tmp_path, 8)
    frames = play(tmp_path, 8 * PERIOD_NS / 1e9)  # behind by 8 periods after frame 2
    stamps = [f.stamp_ns for f in frames]
    assert len(stamps) == 8
    assert all(b > a for a, b in itertools.pairwise(stamps))
    after = np.diff(stamps[1:])  # gaps from the stalled frame on
    # a late frame resets the schedule: the frames after it keep about one period apart. A
    # burst would put them ~0 ms apart; one late wake-up under load and the next frame on time
    # (83 then 20 ms, seen on a clean-clone run) is jitter, not a burst
    assert after.min() > 0.2 * PERIOD_NS, after
    assert np.median(after) > 0.8 * PERIOD_NS, after
