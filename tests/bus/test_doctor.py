"""``mm-ros doctor``: every section, the bus found or a fix, exit codes."""

from __future__ import annotations

import subprocess
import sys

from mm_ros.bus import SENSOR_DATA
from tests.bus.conftest import free_port

SECTIONS = ["[python]", "[packages]", "[gpu]", "[engines]", "[ros2]", "[bus]", "[audio]"]


def doctor(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mm_ros.cli.main", "doctor", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_every_section_and_the_graph(router: str, make_zenoh) -> None:
    make_zenoh("camera").create_publisher("/camera/image_raw", "sensor_msgs/msg/Image", SENSOR_DATA)
    out = doctor("--connect", router)
    assert out.returncode == 0, out.stderr
    positions = [out.stdout.index(s) for s in SECTIONS]
    assert positions == sorted(positions)
    assert f"ok   router: router at {router}" in out.stdout
    assert "/camera/image_raw" in out.stdout
    assert "ok   rosbags:" in out.stdout


def test_no_router_is_a_warning_with_a_fix_and_strict_fails() -> None:
    endpoint = f"tcp/127.0.0.1:{free_port()}"
    out = doctor("--connect", endpoint)
    assert out.returncode == 0
    assert f"WARN router: no Zenoh router at {endpoint}" in out.stdout
    assert "fix: start one: `mm-ros router`" in out.stdout
    assert doctor("--connect", endpoint, "--strict").returncode == 1
