"""``mm-ros demo`` end to end: router, sim_world, adapters and model_service as processes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_demo_asks_questions_through_the_whole_graph(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "mm_ros.cli.main",
            "demo",
            "--questions",
            "2",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    out = proc.stdout
    for node in ("/sim_world", "/mm", "/camera_adapter", "/audio_adapter", "/imu_adapter"):
        assert f"'{node}'" in out
    assert "== Q1: what is on my left?" in out
    assert "== Q2: [grounding] where is the " in out
    assert "== Q3" not in out  # --questions 2
    assert out.count("latency: queue") == 2
    assert "truth: on the left:" in out
    assert "0 questions failed" in out
    for name in ("q1_spatial.png", "q2_grounding.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    logs = {p.name for p in (tmp_path / "logs").iterdir()}
    assert {"sim_world.log", "model_service.log", "camera_adapter.log"} <= logs


def test_demo_no_images_writes_no_pictures(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "mm_ros.cli.main",
            "demo",
            "--questions",
            "1",
            "--no-images",
            "--in-process-adapters",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "/camera_adapter" not in proc.stdout  # adapters inside model_service
    assert not list(tmp_path.glob("*.png"))
