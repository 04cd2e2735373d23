"""``mm-ros launch FILE [name:=value ...]``: run a ROS 2 YAML launch file without ROS 2.

A Zenoh router is started on the configured endpoint unless one already listens there (under
ROS 2, ``rmw_zenohd`` does that job and ``ros2 launch mm_ros FILE`` runs the same file).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path
from typing import Any

from mm_ros.core.errors import ConfigError

EXIT_OK = 0


def register(subparsers: Any) -> None:
    """Add ``launch``."""
    launch = subparsers.add_parser("launch", help="run a ROS 2 YAML launch file without ROS 2")
    launch.add_argument("file", help="a path, or a file name in mm_ros's launch/ folder")
    launch.add_argument("arguments", nargs="*", metavar="name:=value", help="launch arguments")
    launch.add_argument(
        "--print",
        action="store_true",
        dest="dry_run",
        help="print the processes it would start, then exit",
    )
    launch.add_argument("--no-router", action="store_true", help="do not start a Zenoh router")
    launch.add_argument(
        "--connect", help="router endpoint (default $MM_ROS_CONNECT or tcp/127.0.0.1:7447)"
    )
    launch.set_defaults(handler=_launch)


def resolve_file(name: str) -> Path:
    """Return a launch file given by path, or by name in the package's launch/ folder."""
    from mm_ros.launching.context import package_share

    path = Path(name)
    if path.is_file():
        return path
    shared = package_share() / "launch" / name
    if shared.is_file():
        return shared
    raise ConfigError(f"launch file {name!r} not found (as a path or in {shared.parent})")


def _launch(args: argparse.Namespace) -> int:
    from mm_ros.bus.protocol import DEFAULT_CONNECT, BusUnavailableError
    from mm_ros.bus.ros_args import assignment
    from mm_ros.bus.zenoh_session import Router
    from mm_ros.cli.executables import EXECUTABLES
    from mm_ros.launching.context import expand
    from mm_ros.launching.supervisor import Supervisor

    values = dict(assignment(item, "a launch argument") for item in args.arguments)
    path = resolve_file(args.file)
    specs = expand(path, values, executables=set(EXECUTABLES))
    if args.dry_run:
        for spec in specs:
            flags = " (respawn)" if spec.respawn else ""
            print(f"{spec.label}{flags}: {' '.join(spec.command[3:])}")
        return EXIT_OK
    endpoint = args.connect or os.environ.get("MM_ROS_CONNECT", DEFAULT_CONNECT).split(",")[0]
    env = dict(os.environ, MM_ROS_CONNECT=endpoint)
    router = None
    if not args.no_router:
        try:
            router = Router((endpoint,)).start()
            print(f"[launch] Zenoh router {router.zid} on {endpoint}", flush=True)
        except BusUnavailableError:
            print(f"[launch] using the router already listening on {endpoint}", flush=True)
    supervisor = Supervisor(specs, env=env)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: supervisor.stop())
    try:
        return supervisor.run()
    finally:
        if router is not None:
            router.stop()
        sys.stdout.flush()
