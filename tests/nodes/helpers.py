"""Node-test helpers: run an executable as a user does, ROS arguments, late sensor delivery."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from typing import TYPE_CHECKING, Any

from mm_ros.nodes.sensor_inputs import SensorInputs

if TYPE_CHECKING:
    import pytest


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


def deliver_late(monkeypatch: pytest.MonkeyPatch, callback: str, delay_s: float) -> None:
    """Make the model service take the messages of ``SensorInputs.<callback>`` ``delay_s`` late
    (as on a loaded machine), each on its own timer so the bus thread is never held up."""
    on_message = getattr(SensorInputs, callback)

    def late(inputs: SensorInputs, message: Any) -> None:
        threading.Timer(delay_s, on_message, (inputs, message)).start()

    monkeypatch.setattr(SensorInputs, callback, late)
