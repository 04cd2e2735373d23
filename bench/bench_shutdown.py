"""Ctrl-C to exit: how long each node process takes to end after SIGINT and after SIGTERM.

Each executable runs alone next to ``sim_world`` (so the sensor and adapter nodes are busy
encoding when the signal comes), on the zenoh bus and, where the ROS 2 tier is built, on
rclpy; a run starts the node, waits for its "running" line, waits one more second, signals it
and times the exit. Baseline in the same run: a Python process that has imported what
``model_service`` imports (torch, transformers, the bus) and exits the ordinary way on
KeyboardInterrupt, i.e. with the interpreter's own teardown, which the nodes skip once they
have closed (``mm_ros.cli.executables.run_process``).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
TIER = REPO / ".ros"
LIMIT_S = 2.0  # the figure: every node ends within 2 s of SIGINT or SIGTERM
RUNNING = "running (Ctrl-C or SIGTERM stops it)"
BASELINE = (
    "import sys, time, torch, transformers, mm_ros.bus.{bus}_bus\n"
    "print('" + RUNNING + "', flush=True)\n"
    "time.sleep(3600)\n"
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def inputs(root: Path) -> dict[str, list[str]]:
    """Parameters that let each node run without hardware (the shutdown tests' own)."""
    from mm_ros.cli.executables import EXECUTABLES
    from tests.test_shutdown import node_params, write_inputs

    files = write_inputs(root)
    return {name: node_params(name, files) for name in EXECUTABLES}


def time_exit(
    command: list[str], env: dict[str, str], signum: int, *, codes: tuple[int, ...] = (0,)
) -> float | None:
    """Start, wait until running (+1 s), signal; return seconds to exit (None: failed)."""
    proc = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + 120
    for line in proc.stdout:
        if RUNNING in line or time.monotonic() > deadline:
            break
    time.sleep(1.0)
    sent = time.monotonic()
    proc.send_signal(signum)
    try:
        proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        return None
    took = time.monotonic() - sent
    return took if proc.returncode in codes else None


def measure(bus: str, start: Callable, params: dict[str, list[str]]) -> dict:
    from mm_ros.cli.executables import EXECUTABLES

    figures: dict[str, dict[str, float | None]] = {}
    command, env = start("sim_world", [])  # the world the nodes under test listen to
    feeder = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        for name in sorted(set(EXECUTABLES) - {"mm-ros", "sim_world"}):
            figures[name] = {
                sig.name: time_exit(*start(name, params.get(name, [])), sig)
                for sig in (signal.SIGINT, signal.SIGTERM)
            }
        figures["sim_world"] = {
            sig.name: time_exit(*start("sim_world", []), sig)
            for sig in (signal.SIGINT, signal.SIGTERM)
        }
        baseline = [sys.executable, "-c", BASELINE.format(bus=bus)]
        figures["baseline: python + torch + transformers, ordinary exit"] = {
            "SIGINT": time_exit(baseline, dict(os.environ), signal.SIGINT, codes=(-2, 1, 130))
        }
    finally:
        feeder.send_signal(signal.SIGINT)
        feeder.wait(timeout=30)
    return figures


def run() -> dict:
    from mm_ros.bus.zenoh_session import Router

    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        params = inputs(Path(tmp))
        endpoint = f"tcp/127.0.0.1:{free_port()}"
        env = dict(os.environ, MM_ROS_CONNECT=endpoint, MM_ROS_BUS="zenoh")

        def zenoh_start(name: str, args: list[str]) -> tuple[list[str], dict[str, str]]:
            cmd = [sys.executable, "-m", "mm_ros.cli.main", "run", name, "--ros-args", *args]
            return cmd, env

        with Router((endpoint,)):
            results["zenoh"] = measure("zenoh", zenoh_start, params)
        if (TIER / "env.sh").is_file() and not (TIER / "SKIP").is_file():
            ros_env = dict(os.environ, ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
                           ROS_DOMAIN_ID="231")  # fmt: skip
            lib = TIER / "install" / "mm_ros" / "lib" / "mm_ros"

            def ros_start(name: str, args: list[str]) -> tuple[list[str], dict[str, str]]:
                script = f". '{TIER / 'env.sh'}' && exec \"$@\""
                return ["bash", "-c", script, "x", str(lib / name), "--ros-args", *args], ros_env

            results["rclpy"] = measure("rclpy", ros_start, params)
    rows, budgets = [], []
    for bus, figures in results.items():
        for name, times in figures.items():
            rows.append(
                [bus, name, *(times.get(s, "-") or "failed" for s in ("SIGINT", "SIGTERM"))]
            )
        nodes = [
            t for n, ts in figures.items() if not n.startswith("baseline") for t in ts.values()
        ]
        worst = max((t for t in nodes if t is not None), default=float("nan"))
        failed = sum(t is None for t in nodes)
        budgets.append({"what": f"{bus}: slowest node exit after SIGINT/SIGTERM (s)",
                        "value": round(worst, 3), "limit": LIMIT_S,
                        "met": worst <= LIMIT_S and failed == 0})  # fmt: skip
    summary = (
        "Seconds from SIGINT / SIGTERM to the node process's exit (exit code 0), each node alone "
        "next to a running sim_world. The baseline row is a Python process with torch and "
        "transformers imported exiting the ordinary way: the interpreter teardown the nodes "
        "skip once closed."
    )
    return {"title": "Shutdown: signal to exit per node", "summary": summary,
            "columns": ["bus", "executable", "SIGINT s", "SIGTERM s"], "rows": rows,
            "budgets": budgets, "figures": results}  # fmt: skip
