"""``mm-ros demo`` end to end: router, sim_world as a process, observer, picture, bag."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from mm_ros.interfaces.bags import BagReader


def test_demo_runs_the_graph_and_leaves_a_picture_and_a_bag(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "mm_ros.cli.main", "demo", "--seconds", "1", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "node /sim_world" in proc.stdout
    assert "/imu/data" in proc.stdout
    png = tmp_path / "frame_with_ground_truth.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    (bag,) = tmp_path.glob("bag_*")
    topics = {name: info.count for name, info in BagReader(bag).topics.items()}
    assert set(topics) == {
        "/camera/image_raw",
        "/camera/camera_info",
        "/imu/data",
        "/audio/audio_stamped",
        "/sim_world/ground_truth",
    }
    assert topics["/imu/data"] > 200  # 2 s at 200 Hz, less start-up
