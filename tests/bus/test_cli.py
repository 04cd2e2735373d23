"""The field CLI as a user runs it: separate processes against a router."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from mm_ros.bus import RELIABLE
from mm_ros.bus.select import choose_backend
from mm_ros.core.errors import ConfigError

CLI = [sys.executable, "-m", "mm_ros.cli.main"]


def cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*CLI, *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def test_echo_and_pub_in_parallel(router: str) -> None:
    echo = subprocess.Popen(
        [
            *CLI,
            "topic",
            "echo",
            "/chatter",
            "--count",
            "5",
            "--type",
            "std_msgs/msg/String",
            "--connect",
            router,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    pub = cli(
        "topic",
        "pub",
        "/chatter",
        "std_msgs/msg/String",
        "{data: hi}",
        "--rate",
        "10",
        "--count",
        "30",
        "--connect",
        router,
    )
    out, err = echo.communicate(timeout=60)
    assert pub.returncode == 0, pub.stderr
    assert echo.returncode == 0, err
    assert out.count("data: hi\n---\n") == 5


def test_node_list_shows_the_cli_itself_and_others(router: str, make_zenoh) -> None:
    make_zenoh("camera_driver", ["--ros-args", "-r", "__ns:=/robot"])
    out = cli("node", "list", "--connect", router)
    assert out.returncode == 0, out.stderr
    names = out.stdout.split()
    assert "/robot/camera_driver" in names
    assert any(n.startswith("/mm_ros_cli_") for n in names)


def test_topic_list_service_call_and_action_send(router: str, make_zenoh) -> None:
    node = make_zenoh("server")
    node.create_publisher("/status", "std_msgs/msg/String", RELIABLE)
    node.create_service("/add", "example_interfaces/srv/AddTwoInts", lambda r: {"sum": r.a + r.b})

    def execute(goal):
        for i in range(3):
            goal.publish_feedback({"sequence": list(range(i + 1))})
            time.sleep(0.05)
        time.sleep(0.3)  # the last feedback arrives before the result (a client drops later ones)
        return {"sequence": [0, 1, 1, 2]}

    node.create_action_server("/fib", "example_interfaces/action/Fibonacci", execute)
    listing = cli("topic", "list", "-t", "--connect", router)
    assert "/status [std_msgs/msg/String]" in listing.stdout
    call = cli(
        "service",
        "call",
        "/add",
        "example_interfaces/srv/AddTwoInts",
        "{a: 2, b: 3}",
        "--connect",
        router,
    )
    assert call.returncode == 0, call.stderr
    assert "sum: 5" in call.stdout
    send = cli(
        "action",
        "send",
        "/fib",
        "example_interfaces/action/Fibonacci",
        "{order: 3}",
        "--feedback",
        "--connect",
        router,
    )
    assert send.returncode == 0, send.stderr
    assert "Goal accepted" in send.stdout
    assert send.stdout.count("feedback:") == 3
    assert "status: SUCCEEDED" in send.stdout


def test_bag_record_info_play_round_trip(router: str, make_zenoh, tmp_path: Path) -> None:
    talker = make_zenoh("talker")
    pub = talker.create_publisher("/count", "std_msgs/msg/String", RELIABLE)
    bag = tmp_path / "bag"
    rec = subprocess.Popen(
        [*CLI, "bag", "record", "-o", str(bag), "/count", "--duration", "3", "--connect", router],
        stdout=subprocess.PIPE,
        text=True,
    )
    stop = threading.Event()

    def publish() -> None:
        i = 0
        while not stop.wait(0.05):
            pub.publish({"data": str(i)})
            i += 1

    thread = threading.Thread(target=publish)
    thread.start()
    rec.communicate(timeout=60)
    stop.set()
    thread.join()
    assert rec.returncode == 0
    info = cli("bag", "info", str(bag))
    assert info.returncode == 0
    assert "/count | std_msgs/msg/String" in info.stdout
    line = next(x for x in info.stdout.splitlines() if "/count" in x)
    assert 20 <= int(line.split("|")[2].split()[0]) <= 70  # ~20 Hz over ~3 s


@pytest.mark.parametrize(
    ("argv", "code", "text"),
    [
        (
            ["topic", "echo", "/nothing", "--timeout", "1", "--connect", "tcp/127.0.0.1:1"],
            1,
            "no Zenoh router reachable",
        ),
        (
            ["topic", "pub", "/x", "std_msgs/msg/String", "{data: [unclosed", "--count", "1"],
            2,
            "not valid YAML",
        ),
        (["topic", "pub", "/x", "std_msgs/msg/Strin", "{}", "--count", "1"], 2, "closest known"),
        (["run", "no_such_node"], 2, "unknown executable"),
        (["bag", "info", "/nonexistent/bag"], 1, "does not exist"),
    ],
)
def test_bad_usage_and_input(argv: list[str], code: int, text: str) -> None:
    out = cli(*argv)
    assert out.returncode == code, out.stderr
    assert text in out.stderr


def test_backend_selection(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AMENT_PREFIX_PATH", raising=False)
    assert choose_backend("auto") == (
        "zenoh",
        "no sourced ROS 2 environment (AMENT_PREFIX_PATH unset)",
    )
    assert choose_backend("rclpy")[0] == "rclpy"
    monkeypatch.setenv("MM_ROS_BUS", "zenoh")
    assert choose_backend()[0] == "zenoh"
    with pytest.raises(ConfigError, match="MM_ROS_BUS must be"):
        choose_backend("dds")
    assert os.environ["MM_ROS_BUS"] == "zenoh"
