"""SIGINT and SIGTERM sent to each executable's real process, on both buses.

Every node process must end cleanly (exit code 0) soon after either signal; an Ask goal in
flight ends with an error result that says why, never silence. On the zenoh bus the processes
are ``mm-ros run EXEC`` against an in-process router; on rclpy (the ROS tier) they are the
executables colcon installed under ``lib/mm_ros``, as ``ros2 run`` and ``ros2 launch`` start them.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import wave
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

from mm_ros.bus.protocol import GoalStatus
from mm_ros.cli.executables import EXECUTABLES
from mm_ros.core.answers import GENERATING
from tests.bus.conftest import free_port, make_zenoh, router  # noqa: F401 - fixtures
from tests.nodes.test_replay_evaluator_node import record_world

if TYPE_CHECKING:
    from collections.abc import Callable

    from tests.conftest import RosTier

NODES = sorted(set(EXECUTABLES) - {"mm-ros"})
# A hang detector, not a timing figure (the 2 s budget is bench_shutdown's; the figures are
# printed with -s): under the suite's load on a clean clone sim_world once took 5.2 s on SIGTERM.
STOP_LIMIT_S = 10.0
START_S = 120.0  # 11 processes importing torch at once on 2 cores
RUNNING = "running (Ctrl-C or SIGTERM stops it)"


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return write_inputs(tmp_path_factory.mktemp("inputs"))


def write_inputs(root: Path) -> dict[str, Path]:
    """Files the sensor-driver nodes read instead of hardware: an image folder, a WAV, a bag."""
    frames = root / "frames"
    frames.mkdir()
    import cv2

    cv2.imwrite(str(frames / "0.png"), np.full((48, 64, 3), 128, np.uint8))
    wav = root / "tone.wav"
    with wave.open(str(wav), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16_000)
        t = np.arange(16_000) / 16_000
        out.writeframes((np.sin(2 * np.pi * 440 * t) * 8000).astype("<i2").tobytes())
    bag = record_world(root / "bag", seed=3, duration_s=1.0)
    return {"frames": frames, "wav": wav, "bag": bag, "out": root / "eval"}


def node_params(name: str, files: dict[str, Path]) -> list[str]:
    """Parameters that let ``name`` start without hardware and keep running until signalled."""
    params = {
        "camera": {"source": str(files["frames"]), "loop": "true", "fps": "5.0"},
        "microphone": {"source": "wav", "wav_path": str(files["wav"]), "wav_loop": "true"},
        "bag_player": {"bag": str(files["bag"]), "loop": "true"},
        "replay_evaluator": {
            "output_dir": str(files["out"]),
            "use_sim_time": "true",
            "idle_s": "600.0",  # the looping bag and sim_world's truth interleave: never idle
        },
        "model_service": {"runtimes": "torch"},
    }.get(name, {})
    return [arg for key, value in params.items() for arg in ("-p", f"{key}:={value}")]


class Proc:
    """One node process; its output is read on a thread so waits time out."""

    def __init__(self, name: str, command: list[str], env: dict[str, str]) -> None:
        self.name = name
        self.proc = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            start_new_session=True,  # a Ctrl-C in the test's terminal reaches only the test
        )
        self.lines: list[str] = []
        self.running = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip())
            if RUNNING in line:
                self.running.set()
        self.running.set()  # ended: waiters stop waiting (``up`` tells which)

    def up(self, timeout_s: float) -> bool:
        """Wait until the node runs; False when it ended (or never said so) instead."""
        return self.running.wait(timeout_s) and self.proc.poll() is None

    def output(self) -> str:
        return "\n".join(self.lines[-40:])

    def stop(self, signum: int) -> float:
        """Send ``signum``; return the seconds until the process had exited."""
        assert self.proc.poll() is None, f"{self.name} ended by itself:\n{self.output()}"
        sent = time.monotonic()
        self.proc.send_signal(signum)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"{self.name} ignored {signum!r}:\n{self.output()}") from None
        self._reader.join(timeout=5)
        return time.monotonic() - sent

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def signal_every_node(start: Callable[[str, list[str]], Proc], files: dict[str, Path]) -> None:
    """Start every node, then stop each: half with SIGINT, half with SIGTERM, then swapped."""
    sigs = (signal.SIGINT, signal.SIGTERM)
    seen: dict[str, list[str]] = {}
    for round_ in range(2):
        procs = [start(name, node_params(name, files)) for name in NODES]
        try:
            deadline = time.monotonic() + START_S
            for proc in procs:
                up = proc.up(max(0.0, deadline - time.monotonic()))
                assert up, f"{proc.name} did not start (exit {proc.proc.poll()}):\n{proc.output()}"
            for i, proc in enumerate(procs):
                signum = sigs[(i + round_) % 2]
                took = proc.stop(signum)
                print(f"{proc.name} {signum.name}: exit {proc.proc.returncode} in {took:.2f} s")
                assert proc.proc.returncode == 0, f"{proc.name} {signum.name}:\n{proc.output()}"
                assert took < STOP_LIMIT_S, f"{proc.name} took {took:.1f} s after {signum.name}"
                assert "Traceback" not in proc.output(), proc.output()
                seen.setdefault(proc.name, []).append(signum.name)
        finally:
            for proc in procs:
                proc.kill()
    assert all(sorted(s) == ["SIGINT", "SIGTERM"] for s in seen.values()), seen
    assert sorted(seen) == NODES


def test_every_node_on_zenoh_ends_cleanly_on_sigint_and_sigterm(
    router: str,  # noqa: F811 - the fixture
    inputs: dict[str, Path],
) -> None:
    env = dict(os.environ, MM_ROS_CONNECT=router, MM_ROS_BUS="zenoh")

    def start(name: str, params: list[str]) -> Proc:
        command = [sys.executable, "-m", "mm_ros.cli.main", "run", name, "--ros-args", *params]
        return Proc(name, command, env)

    signal_every_node(start, inputs)


@pytest.mark.ros_tier
def test_every_node_on_rclpy_ends_cleanly_on_sigint_and_sigterm(
    ros_tier: RosTier, inputs: dict[str, Path]
) -> None:
    lib = ros_tier.install / "mm_ros" / "lib" / "mm_ros"

    def start(name: str, params: list[str]) -> Proc:
        return Proc(name, ros_tier.command(str(lib / name), "--ros-args", *params), ros_tier.env)

    signal_every_node(start, inputs)


# -- a question in flight ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def slow_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The random default: it never writes an end token, so an answer runs to its limit."""
    from mm_ros.llm.tiny import build_random_default

    return build_random_default(tmp_path_factory.mktemp("model") / "tiny", seed=0)


def service_params(model: Path) -> list[str]:
    long = ["-p", "max_new_tokens:=100000", "-p", "max_new_tokens_limit:=100000"]
    return ["-p", f"model_dir:={model}", "-p", "runtimes:=torch", *long]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_zenoh_goal_in_flight_gets_an_error_result_on_shutdown(
    router: str,  # noqa: F811 - the fixture
    make_zenoh: Callable[..., Any],  # noqa: F811 - the fixture
    slow_model: Path,
    signum: signal.Signals,
) -> None:
    command = [sys.executable, "-m", "mm_ros.cli.main", "run", "model_service", "--ros-args"]
    env = dict(os.environ, MM_ROS_CONNECT=router, MM_ROS_BUS="zenoh")
    service = Proc("model_service", [*command, *service_params(slow_model)], env)
    try:
        assert service.up(START_S), service.output()
        client = make_zenoh("asker").create_action_client("/mm/ask", "mm_ros/action/Ask")
        assert client.wait_for_server(30)
        generating = threading.Event()

        def on_feedback(feedback: Any) -> None:
            if feedback.stage == GENERATING:
                generating.set()

        goal = client.send_goal({"question": "what is on my left?"}, feedback=on_feedback)
        assert goal.accepted
        ended: list[Any] = []  # asked for at once, as clients do: the server is gone after
        waiter = threading.Thread(target=lambda: ended.append(goal.result(60)), daemon=True)
        waiter.start()
        assert generating.wait(60), service.output()
        took = service.stop(signum)
        waiter.join(30)
        ((status, result),) = ended
    finally:
        service.kill()
    assert service.proc.returncode == 0, service.output()
    assert took < STOP_LIMIT_S
    assert status == GoalStatus.ABORTED
    assert "shut down while answering" in result.answer.error
    assert result.answer.generated_tokens == 0 or result.answer.text == ""


@pytest.mark.ros_tier
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_rclpy_goal_in_flight_gets_an_error_result_on_shutdown(
    ros_tier: RosTier, slow_model: Path, signum: signal.Signals
) -> None:
    if (ros_tier.root / "NO_TOOLS").is_file():
        pytest.skip((ros_tier.root / "NO_TOOLS").read_text().strip())
    lib = str(ros_tier.install / "mm_ros" / "lib" / "mm_ros" / "model_service")
    command = ros_tier.command(lib, "--ros-args", *service_params(slow_model))
    service = Proc("model_service", command, ros_tier.env)
    asker = None
    try:
        assert service.up(START_S), service.output()
        goal = "{question: 'what is on my left?'}"
        send = ("ros2", "action", "send_goal", "-f", "/mm/ask", "mm_ros/action/Ask", goal)
        asker = Proc("ros2 action send_goal", ros_tier.command(*send), ros_tier.env)
        deadline = time.monotonic() + 60
        while not any(f"stage: {GENERATING}" in line for line in asker.lines):
            assert time.monotonic() < deadline, asker.output()
            assert asker.proc.poll() is None, asker.output()
            time.sleep(0.05)
        took = service.stop(signum)
        asker.proc.wait(timeout=20)
        asker._reader.join(timeout=5)
    finally:
        service.kill()
        if asker is not None:
            asker.kill()
    assert service.proc.returncode == 0, service.output()
    assert took < STOP_LIMIT_S
    said = "\n".join(asker.lines)
    assert "Goal finished with status: ABORTED" in said, said
    assert "shut down while answering" in said, said
