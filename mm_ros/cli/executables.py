"""Executables installed under ``lib/mm_ros`` for ``ros2 run mm_ros EXEC``.

Keep in step with ``MM_ROS_EXECUTABLES`` in CMakeLists.txt (a test compares the two).
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
from typing import NoReturn

EXECUTABLES: dict[str, str] = {
    "mm-ros": "mm_ros.cli.main:main",
    "audio_adapter": "mm_ros.nodes.adapter_node:audio_main",
    "bag_player": "mm_ros.nodes.bag_player_node:main",
    "camera": "mm_ros.nodes.camera_node:main",
    "camera_adapter": "mm_ros.nodes.adapter_node:camera_main",
    "imu_adapter": "mm_ros.nodes.adapter_node:imu_main",
    "microphone": "mm_ros.nodes.microphone_node:main",
    "model_service": "mm_ros.nodes.model_service_node:main",
    "replay_evaluator": "mm_ros.nodes.replay_evaluator_node:main",
    "sensor_monitor": "mm_ros.nodes.sensor_monitor_node:main",
    "sim_world": "mm_ros.nodes.sim_world_node:main",
    "time_server": "mm_ros.nodes.time_server_node:main",
}


def run(name: str, argv: list[str]) -> int:
    """Run one executable by name with its arguments; return its exit code."""
    module, _, func = EXECUTABLES[name].partition(":")
    entry = getattr(importlib.import_module(module), func)
    return int(entry(argv))


def run_process(name: str, argv: list[str]) -> NoReturn:
    """Run ``name`` as the whole process (``ros2 run``, ``ros2 launch``, ``mm-ros run``); exit.

    A node has closed its bus, model and files when ``run`` returns, so the process ends there:
    output flushed, the interpreter's own teardown skipped. That teardown (garbage collection of
    torch, DDS and Zenoh objects, a second or more on a busy machine) would otherwise stretch the
    time from Ctrl-C to exit past ``ros2 launch``'s 5 s, after which it escalates to SIGTERM and
    reports the node as died. The ``mm-ros`` command itself exits the usual way.
    """
    code = run(name, argv)
    if name == "mm-ros":
        sys.exit(code)
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(code)
