"""The real ROS 2 command line drives mm_ros: ``ros2 launch``, ``action``, ``topic``, ``param``,
``lifecycle``, ``node``, and Ctrl-C (SIGINT) to ``ros2 launch``.

The tools are the unchanged Jazzy sources (ros2cli 0.32.2, launch 3.4.3, launch_ros 0.26.6)
that tools/ros_tier.py installs into the tier; the nodes run on rclpy + Fast DDS as colcon
installed them. Each launch gets a DDS domain of its own and its own ``ros2`` daemon.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.conftest import worker_index
from tests.nodes.test_replay_evaluator_node import record_world

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from tests.conftest import RosTier

pytestmark = pytest.mark.ros_tier

UP_S = 20.0  # every node of a launch must stay up this long (the field-test check)
START_S = 120.0  # the model service imports torch and loads mm-tiny on a loaded 2-core machine
STARTED = re.compile(r"\[INFO\] \[([\w.-]+)-\d+\]: process started with pid \[(\d+)\]")
ASK = "mm_ros/action/Ask"
# ros2 launch only reacts to SIGINT through Python's own handler, which Python leaves out when
# SIGINT is ignored at start (as in a background job of a non-interactive shell): reset first.
DEFAULT_SIGINT = (
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
    "os.execvp(sys.argv[1], sys.argv[1:])"
)
# DDS domains of their own: 8 per pytest worker from 200 (Fast DDS takes up to 232)
_domains = iter(range(200 + 8 * worker_index(), 208 + 8 * worker_index()))


class Ros2:
    """The real ``ros2`` command in the tier, on one DDS domain."""

    def __init__(self, tier: RosTier, domain: int) -> None:
        self.tier = tier
        self.env = dict(tier.env, ROS_DOMAIN_ID=str(domain))

    def run(self, *args: str, timeout: float = 60, check: bool = True) -> str:
        """``ros2 ARGS``; return stdout (stderr appended), fail naming both when it fails."""
        proc = subprocess.run(
            self.tier.command("ros2", *args),
            capture_output=True,
            text=True,
            timeout=timeout,
            env=self.env,
            check=False,
        )
        said = proc.stdout + proc.stderr
        if check and proc.returncode:
            raise AssertionError(f"ros2 {' '.join(args)} exited {proc.returncode}:\n{said}")
        return said

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            self.tier.command("python", "-c", DEFAULT_SIGINT, "ros2", *args),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=self.env,
            start_new_session=True,  # signals reach it only from the test
        )

    def wait_for_nodes(self, names: set[str], timeout_s: float = START_S) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            listed = set(self.run("node", "list", check=False).split())
            if names <= listed:
                return
            assert time.monotonic() < deadline, f"nodes {sorted(names - listed)} not up"
            time.sleep(1.0)

    def wait_for_active(self, node: str, timeout_s: float = START_S) -> None:
        """Wait until a managed node reports ``active`` (the model is loaded)."""
        deadline = time.monotonic() + timeout_s
        while "active [3]" not in self.run("lifecycle", "get", node, check=False):
            assert time.monotonic() < deadline, f"{node} not active"
            time.sleep(1.0)

    def wait_for_subscribers(self, topic: str, count: int, timeout_s: float = 30) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            found = re.search(r"Subscription count: (\d+)", self.run("topic", "info", topic))
            if found and int(found.group(1)) >= count:
                return
            assert time.monotonic() < deadline, f"{topic}: {count} subscriber(s) not seen"
            time.sleep(0.5)

    def ask(self, question: str, *extra: str) -> str:
        goal = "{question: " + json.dumps(question) + "".join(extra) + "}"
        return self.run("action", "send_goal", "-f", "/mm/ask", ASK, goal, timeout=120)

    def stop_daemon(self) -> None:
        self.run("daemon", "stop", check=False)


class Launch:
    """``ros2 launch mm_ros FILE ARGS`` as a field engineer runs it; output read on a thread."""

    def __init__(self, ros2: Ros2, *args: str) -> None:
        self.proc = ros2.popen("launch", "mm_ros", *args)
        self.lines: list[str] = []
        self.pids: dict[str, int] = {}  # process label -> pid
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip())
            if found := STARTED.search(line):
                self.pids[found.group(1)] = int(found.group(2))

    def text(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, what: str, timeout_s: float = START_S) -> None:
        deadline = time.monotonic() + timeout_s
        while not any(what in line for line in self.lines):
            assert self.proc.poll() is None, f"launch ended:\n{self.text()[-4000:]}"
            assert time.monotonic() < deadline, f"no {what!r}:\n{self.text()[-4000:]}"
            time.sleep(0.2)

    def assert_up(self, since: float, labels: set[str]) -> None:
        """Every node process has run ``UP_S`` since ``since``, none died or restarted."""
        time.sleep(max(0.0, since + UP_S - time.monotonic()))
        assert labels <= set(self.pids), (labels, self.pids)
        dead = [label for label in labels if not _alive(self.pids[label])]
        assert not dead, f"{dead} gone:\n{self.text()[-4000:]}"
        assert "process has died" not in self.text(), self.text()[-4000:]
        assert len(re.findall(r"process started with pid", self.text())) == len(self.pids)

    def interrupt(self, timeout_s: float = 30, *, terminal: bool = False) -> str:
        """SIGINT to ``ros2 launch`` (which passes it on to each node), or with ``terminal``
        to its whole process group, as Ctrl-C in a terminal does; return the output."""
        if self.proc.poll() is None:
            if terminal:
                os.killpg(self.proc.pid, signal.SIGINT)
            else:
                self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=timeout_s)
        finally:
            self.kill()
        self._reader.join(timeout=5)
        return self.text()

    def kill(self) -> None:
        """Leave nothing behind, whatever happened (the test has failed if this finds any)."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for pid in self.pids.values():
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie whose parent has not reaped it counts as ended)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def assert_clean_stop(launch: Launch, output: str, labels: set[str]) -> None:
    """After Ctrl-C: launch exited 0, each node exited 0, no process is left."""
    assert launch.proc.returncode == 0, output[-4000:]
    for label in labels:
        said = [line for line in output.splitlines() if re.match(rf"\[\w+\] \[{label}-\d+\]", line)]
        assert any("process has finished cleanly" in line for line in said), "\n".join(said)
    assert "process has died" not in output, output[-4000:]
    left = [label for label, pid in launch.pids.items() if _alive(pid)]
    assert not left, f"orphans after Ctrl-C: {left}"


@pytest.fixture
def ros2(ros_tier: RosTier) -> Iterator[Ros2]:
    no_tools = ros_tier.root / "NO_TOOLS"
    if no_tools.is_file():
        pytest.skip(no_tools.read_text().strip())
    tools = Ros2(ros_tier, next(_domains))
    yield tools
    tools.stop_daemon()


@pytest.fixture
def launched(ros2: Ros2) -> Iterator[Callable[..., Launch]]:
    """Start launches; whatever a failed test left running is killed."""
    started: list[Launch] = []

    def start(*args: str) -> Launch:
        launch = Launch(ros2, *args)
        started.append(launch)
        return launch

    yield start
    for launch in started:
        launch.kill()


# -- the demo graph, driven by every tool an operator uses ---------------------------------------


def test_demo_launch_with_the_ros2_command_line(
    ros2: Ros2, launched: Callable[..., Launch]
) -> None:
    labels = {"sim_world", "sensor_monitor", "model_service"}
    launch = launched("demo.launch.yaml")
    ros2.wait_for_nodes({"/mm", "/sim_world", "/sensor_monitor"})
    ros2.wait_for_active("/mm")
    up_since = time.monotonic()

    pkg = ros2.run("pkg", "executables", "mm_ros")
    assert "mm_ros model_service" in pkg
    assert "ask" in ros2.run("interface", "show", ASK)
    topics = ros2.run("topic", "list", "-t")
    for topic in ("/mm/answer [mm_ros/msg/Answer]", "/camera/image_raw [sensor_msgs/msg/Image]",
                  "/mm/detections [vision_msgs/msg/Detection2DArray]"):  # fmt: skip
        assert topic in topics, topics
    assert "/mm/ask [mm_ros/action/Ask]" in ros2.run("action", "list", "-t")

    asked = ros2.ask("what is on my left?")
    assert "Goal accepted" in asked
    assert "Feedback:" in asked, asked
    assert "partial_text:" in asked, asked
    assert "Goal finished with status: SUCCEEDED" in asked, asked
    assert "error: ''" in asked
    assert "model_id: mm-tiny@" in asked

    # the plain topic pair: a String in, one Answer out
    echo = subprocess.Popen(
        ros2.tier.command("ros2", "topic", "echo", "--once", "/mm/answer", "mm_ros/msg/Answer"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=ros2.env,
    )
    try:
        ros2.wait_for_subscribers("/mm/answer", 1)  # the echo listens before the question
        for _attempt in range(3):  # the echo's reader may match the service's writer late
            ros2.run("topic", "pub", "--once", "-w", "1", "/mm/question", "std_msgs/msg/String",
                     "{data: 'what is in front of me?'}")  # fmt: skip
            try:
                answer, _ = echo.communicate(timeout=30)
                break
            except subprocess.TimeoutExpired:
                continue
        else:
            pytest.fail("no answer on /mm/answer after three questions on /mm/question")
    finally:
        if echo.poll() is None:
            echo.kill()
    assert "question: what is in front of me?" in answer, answer
    assert "error: ''" in answer

    # parameters: read, set live, refused with the reason
    assert "Double value is: 1.0" in ros2.run("param", "get", "/sensor_monitor", "period_s")
    assert "Set parameter successful" in ros2.run("param", "set", "/mm", "max_new_tokens", "3")
    assert "Integer value is: 3" in ros2.run("param", "get", "/mm", "max_new_tokens")
    asked = ros2.ask("what is on my left?")
    assert re.search(r"generated_tokens: [1-3]\n", asked), asked
    refused = ros2.run("param", "set", "/mm", "model_dir", "/elsewhere")
    assert "Setting parameter failed" in refused, refused
    assert "read-only" in refused, refused
    refused = ros2.run("param", "set", "/mm", "max_new_tokens", "0")
    assert "max_new_tokens >= 1" in refused, refused

    # lifecycle: inactive means a clear error, active answers again
    assert "active [3]" in ros2.run("lifecycle", "get", "/mm")
    assert "Transitioning successful" in ros2.run("lifecycle", "set", "/mm", "deactivate")
    refused = ros2.ask("what is on my left?")
    assert "SUCCEEDED" not in refused, refused
    assert "inactive" in refused, refused
    assert "Transitioning successful" in ros2.run("lifecycle", "set", "/mm", "activate")
    assert "Goal finished with status: SUCCEEDED" in ros2.ask("what is on my left?")

    node = ros2.run("node", "info", "/mm")
    assert "/mm/ask: mm_ros/action/Ask" in node, node
    launch.assert_up(up_since, labels)
    output = launch.interrupt(terminal=True)
    assert_clean_stop(launch, output, labels)


# -- the other launch files ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "nodes", "labels"),
    [
        (
            ["mm_ros.launch.yaml", "runtimes:=torch"],
            {"/mm", "/sensor_monitor"},
            {"model_service", "sensor_monitor"},
        ),
        (
            ["headset.launch.yaml", "headset:=glasses"],
            {"/time_server", "/headset_monitor"},
            {"time_server", "sensor_monitor"},
        ),
    ],
    ids=["mm_ros", "headset"],
)
def test_launch_file_runs_until_ctrl_c(
    ros2: Ros2,
    launched: Callable[..., Launch],
    args: list[str],
    nodes: set[str],
    labels: set[str],
) -> None:
    launch = launched(*args)
    ros2.wait_for_nodes(nodes)
    up_since = time.monotonic()
    if "/mm" in nodes:
        ros2.wait_for_active("/mm")
        asked = ros2.ask("what is on my left?")  # no sensors here: answered from none
        assert "Goal finished with status: SUCCEEDED" in asked, asked
    if "/headset_monitor" in nodes:
        params = ros2.run("param", "get", "/headset_monitor", "imu_topic")
        assert "String value is: /glasses/imu/data" in params, params
    launch.assert_up(up_since, labels)
    assert_clean_stop(launch, launch.interrupt(), labels)


def test_distributed_launch_both_roles(ros2: Ros2, launched: Callable[..., Launch]) -> None:
    """Sensor half and model half as two launches (two machines), sim_world as the robot."""
    sensors = launched("distributed.launch.yaml", "role:=sensors", "runtimes:=torch")
    model = launched("distributed.launch.yaml", "role:=model", "runtimes:=torch")
    world = ros2.popen("run", "mm_ros", "sim_world")
    try:
        adapters = {"camera_adapter", "audio_adapter", "imu_adapter"}
        ros2.wait_for_nodes({"/mm", "/sensor_monitor", "/sim_world"} | {f"/{a}" for a in adapters})
        up_since = time.monotonic()
        ros2.wait_for_active("/mm")
        for adapter in adapters:
            ros2.wait_for_active(f"/{adapter}")
        asked = ros2.ask("what is on my left?")
        assert "Goal finished with status: SUCCEEDED" in asked, asked
        used = asked.rsplit("modalities:", 1)[1].split("window_start:")[0]  # the result's
        assert {"image", "audio", "imu"} <= set(re.findall(r"- (\w+)", used)), asked
        sensors.assert_up(up_since, adapters | {"sensor_monitor"})
        model.assert_up(up_since, {"model_service"})
        for launch, labels in ((sensors, adapters | {"sensor_monitor"}),
                               (model, {"model_service"})):  # fmt: skip
            assert_clean_stop(launch, launch.interrupt(), labels)
    finally:
        os.killpg(world.pid, signal.SIGINT)  # Ctrl-C: `ros2 run` waits for its node to end
        try:
            world.wait(timeout=15)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(world.pid, signal.SIGKILL)  # whatever is left of the group


def test_replay_launch_evaluates_a_bag(
    ros2: Ros2, launched: Callable[..., Launch], tmp_path: Path
) -> None:
    """bag_player + model service + evaluator on bag time; the player and evaluator end with the
    bag (cleanly), the model service runs until Ctrl-C."""
    bag = record_world(tmp_path / "bag", seed=3, duration_s=5.0)
    out = tmp_path / "eval"
    launch = launched("replay.launch.yaml", f"bag:={bag}", "rate:=0.25", f"output_dir:={out}")
    ros2.wait_for_nodes({"/mm", "/bag_player", "/replay_evaluator"})
    up_since = time.monotonic()
    labels = {"bag_player", "model_service", "replay_evaluator"}
    launch.assert_up(up_since, labels)  # 20 s: the 5 s bag plays at a quarter of its speed
    launch.wait_for("replay evaluation:", timeout_s=180)
    report = json.loads((out / "evaluation.json").read_text())
    # every moment after the warm-up, each asked its questions and answered without error
    assert report["moments"] >= 2, report["moments"]
    assert report["questions"] >= 4 * report["moments"], report["questions"]
    assert report["errors"] == 0, report["rows"]
    assert all(row["answer"] for row in report["rows"]), report["rows"]
    assert_clean_stop(launch, launch.interrupt(), labels)
