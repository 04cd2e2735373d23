"""Real processes for fuzz and fault tests: ``mm-ros router`` and nodes, each its own process.

Also a steady stream of valid sensor data (a constant scene, so the same question gets the same
answer before and after a fault) and helpers to ask, read RSS and wait for a port.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import TYPE_CHECKING, Any

from mm_ros.bus.naming import LATCHED, SENSOR_DATA, SENSOR_STREAM
from mm_ros.bus.protocol import BusConfig, BusError, GoalStatus
from mm_ros.bus.zenoh_bus import ZenohBus
from mm_ros.nodes.convert import answer_value
from tests.reliability.fuzz import valid

if TYPE_CHECKING:
    from pathlib import Path

    from mm_ros.core.answers import AnswerValue

ASK = "mm_ros/action/Ask"
QUESTION = "what is on my left?"
SERVICE_PARAMS = ("runtimes:=torch", "max_new_tokens:=6", "device:=cpu")
READY_S = 120.0  # model loading on a busy 2-core machine


def free_endpoint() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"tcp/127.0.0.1:{sock.getsockname()[1]}"


def port_open(endpoint: str) -> bool:
    host, port = endpoint.removeprefix("tcp/").rsplit(":", 1)
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, int(port))) == 0


def rss_mib(pid: int) -> float:
    """Resident set size of a process (Linux /proc), MiB."""
    with open(f"/proc/{pid}/status", encoding="ascii") as status:  # noqa: PTH123
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


class Graph:
    """A router and nodes as processes, in ``folder`` (logs; the nodes' working directory)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.cwd = folder / "cwd"
        self.cwd.mkdir(parents=True, exist_ok=True)
        self.endpoint = free_endpoint()
        self.env = dict(
            os.environ,
            MM_ROS_CONNECT=self.endpoint,
            MM_ROS_BUS="zenoh",
            MM_ROS_CACHE=str(folder / "cache"),  # anything a node writes shows up in folder
            HOME=str(folder / "home"),
        )
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def _spawn(self, name: str, command: list[str]) -> subprocess.Popen[bytes]:
        with (self.folder / f"{name}.log").open("ab") as log:
            proc = subprocess.Popen(
                command, env=self.env, cwd=self.cwd, stdout=log, stderr=subprocess.STDOUT
            )
        self.processes[name] = proc
        return proc

    def start_router(self) -> subprocess.Popen[bytes]:
        """``mm-ros router`` on this graph's endpoint; returns once it accepts connections."""
        proc = self._spawn(
            "router",
            [sys.executable, "-m", "mm_ros.cli.main", "router", "--listen", self.endpoint],
        )
        deadline = time.monotonic() + 30
        while not port_open(self.endpoint):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"router did not start:\n{self.log('router')}")
            time.sleep(0.05)
        return proc

    def start_node(
        self, exe: str, *params: str, name: str | None = None
    ) -> subprocess.Popen[bytes]:
        """``mm-ros run EXE --ros-args -p PARAM ...``."""
        args = [a for p in params for a in ("-p", p)]
        command = [sys.executable, "-m", "mm_ros.cli.main", "run", exe, "--ros-args", *args]
        return self._spawn(name or exe, command)

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        proc = self.processes[name]
        proc.send_signal(sig)
        proc.wait(timeout=30)

    def log(self, name: str) -> str:
        path = self.folder / f"{name}.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def log_full(self, name: str) -> str:
        path = self.folder / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        for proc in self.processes.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        for proc in self.processes.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def client(self, name: str = "fuzz_client") -> ZenohBus:
        return ZenohBus(name, config=BusConfig(connect=(self.endpoint,), connect_timeout_s=10.0))


class SensorStream:
    """Publishes a constant scene at sensor rates, stamped now: image 10 Hz, IMU 200 Hz, audio."""

    def __init__(self, bus: ZenohBus, image_hz: float = 10.0) -> None:
        self.bus = bus
        self._period_s = 1.0 / image_hz
        self._image = bus.create_publisher(
            "/camera/image_raw", "sensor_msgs/msg/Image", SENSOR_DATA
        )
        self._imu = bus.create_publisher("/imu/data", "sensor_msgs/msg/Imu", SENSOR_STREAM)
        self._audio = bus.create_publisher(
            "/audio/audio_stamped", "audio_common_msgs/msg/AudioDataStamped", SENSOR_STREAM
        )
        info = bus.create_publisher("/audio/audio_info", "audio_common_msgs/msg/AudioInfo", LATCHED)
        info.publish(valid("audio_common_msgs/msg/AudioInfo", 0))
        self._stop = threading.Event()
        self.paused = threading.Event()  # set: nothing is published ("the world stopped")
        self._thread = threading.Thread(target=self._run, name="sensor-stream", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        imu_step = self._period_s / 20
        while not self._stop.wait(self._period_s):
            if self.paused.is_set():
                continue
            now = self.bus.now_ns()
            try:
                self._image.publish(valid("sensor_msgs/msg/Image", now))
                audio = valid("audio_common_msgs/msg/AudioDataStamped", now)
                audio["audio"]["data"] = bytes(int(16000 * self._period_s) * 2)
                self._audio.publish(audio)
                for i in range(20):
                    stamp = now - int((19 - i) * imu_step * 1e9)
                    self._imu.publish(valid("sensor_msgs/msg/Imu", stamp))
            except BusError:
                return  # the bus closed under us

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def ask(
    bus: ZenohBus, goal: dict[str, Any], timeout_s: float = 60.0
) -> tuple[GoalStatus, AnswerValue]:
    """Send one Ask goal to /mm/ask and wait for its result."""
    action = bus.create_action_client("/mm/ask", ASK)
    sent = action.send_goal(goal, timeout_s=timeout_s)
    if not sent.accepted:
        raise AssertionError(f"goal {goal} was not accepted")
    status, result = sent.result(timeout_s)
    return status, answer_value(result.answer)
