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


def ros_args(params: dict[str, object]) -> list[str]:
    """``--ros-args -p name:=value ...`` for ``params`` (booleans written as ROS does)."""
    args = ["--ros-args"]
    for name, value in params.items():
        args += ["-p", f"{name}:={str(value).lower() if isinstance(value, bool) else value}"]
    return args
