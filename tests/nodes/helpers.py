"""Run a node executable as its own process, the way a user starts it."""

from __future__ import annotations

import os
import subprocess
import sys


def run_executable(name: str, router: str, *params: str) -> subprocess.CompletedProcess[str]:
    """``mm-ros run NAME --ros-args -p P ...`` against ``router``; returns when it exits."""
    args = [a for p in params for a in ("-p", p)]
    return subprocess.run(
        [sys.executable, "-m", "mm_ros.cli.main", "run", name, "--ros-args", *args],
        env=dict(os.environ, MM_ROS_CONNECT=router),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
