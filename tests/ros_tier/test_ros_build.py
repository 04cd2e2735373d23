"""The colcon build against ROS 2 Jazzy from PyPI, used for real (REFERENCE.md section 8)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from mm_ros.cli.executables import EXECUTABLES
from mm_ros.interfaces import InterfaceStore, get_store
from mm_ros.interfaces.values import from_dict, to_dict
from tests.cdr_layout import assert_same_cdr
from tests.test_cdr import EDGE_VALUES

pytestmark = pytest.mark.ros_tier
RCLPY_SIDE = str(Path(__file__).with_name("rclpy_side.py"))
# Standard packages whose types mm_ros puts on the wire; the wheels ship their official JSON.
STANDARD_PACKAGES = [
    "builtin_interfaces",
    "std_msgs",
    "sensor_msgs",
    "geometry_msgs",
    "diagnostic_msgs",
    "action_msgs",
    "unique_identifier_msgs",
    "lifecycle_msgs",
    "service_msgs",
]


def test_generated_interfaces_and_our_package_import_from_one_install(ros_tier) -> None:
    where = json.loads(ros_tier.run("python", RCLPY_SIDE, "whereami").stdout)
    prefix = str(ros_tier.install / "mm_ros")
    for key in ("package", "msg", "action", "definitions"):
        assert where[key].startswith(prefix), (key, where[key])
    assert where["package"].endswith("mm_ros/__init__.py")
    assert where["version"] == __import__("mm_ros").__version__
    assert where["ask_hash"] == get_store().hash("mm_ros/action/Ask")


def test_ask_goal_between_two_processes(ros_tier) -> None:
    server = ros_tier.popen(
        "python",
        RCLPY_SIDE,
        "ask-server",
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        assert server.stdout.readline().strip() == "ready"
        client = ros_tier.run("python", RCLPY_SIDE, "ask-client", "what is on my left?", timeout=90)
        out = json.loads(client.stdout)
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:  # rclpy rarely misses SIGTERM mid-spin
            server.kill()
            server.wait(timeout=15)
    assert out["accepted"] is True
    assert out["status"] == 4  # SUCCEEDED
    assert out["feedback"] == [
        "what",
        "what is",
        "what is on",
        "what is on my",
        "what is on my left?",
    ]
    answer = out["answer"]
    assert answer["text"] == "echo: what is on my left?"
    assert answer["modalities"] == ["image", "imu"]
    assert answer["detections"]["detections"][0]["bbox"]["center"]["position"]["x"] == 320.0
    assert answer["generated_tokens"] == 5


def test_every_executable_is_installed_and_runs_help(ros_tier) -> None:
    lib = ros_tier.install / "mm_ros" / "lib" / "mm_ros"
    installed = sorted(p.name for p in lib.iterdir())
    assert installed == sorted(EXECUTABLES)
    for name in installed:
        proc = ros_tier.run(str(lib / name), "--help")
        assert "usage:" in proc.stdout, name


def _official_hashes(ros_tier) -> dict[str, str]:
    roots = [ros_tier.install, ros_tier.root / "overlay" / "install"]
    files = [f for root in roots for f in root.glob("*/share/*/*/*.json")]
    files += [
        f
        for pkg in STANDARD_PACKAGES
        for f in (ros_tier.root / "venv" / "share" / pkg).glob("*/*.json")
    ]
    hashes: dict[str, str] = {}
    for f in files:
        for entry in json.loads(f.read_text()).get("type_hashes", []):
            hashes[entry["type_name"]] = entry["hash_string"]
    return hashes


def test_official_generator_hashes_equal_ours(ros_tier) -> None:
    official = _official_hashes(ros_tier)
    store = get_store("jazzy")
    ours = {name for name in official if name.split("/")[0] == "mm_ros"}
    ask_helpers = {
        f"mm_ros/action/Ask_{s}"
        for s in (
            "Goal",
            "Result",
            "Feedback",
            "FeedbackMessage",
            "SendGoal",
            "SendGoal_Request",
            "SendGoal_Response",
            "SendGoal_Event",
            "GetResult",
            "GetResult_Request",
            "GetResult_Response",
            "GetResult_Event",
        )
    }
    assert ask_helpers | {"mm_ros/action/Ask", "mm_ros/msg/Answer"} <= ours
    known = set(store.names())
    # every message of the packages we use, and every service we carry
    must_know = {
        n
        for n in official
        if "/msg/" in n or n.split("/")[0] in ("mm_ros", "action_msgs", "lifecycle_msgs")
    }
    missing = sorted(must_know - known)
    assert not missing, f"types the official build knows and we do not: {missing}"
    wrong = {
        n: (official[n], store.hash(n))
        for n in sorted(official)
        if n in known and store.hash(n) != official[n]
    }
    assert not wrong, wrong
    assert len([n for n in official if n in known]) >= 100  # the oracle really was read


def test_cdr_matches_rclpy_both_directions(ros_tier) -> None:
    store = get_store()
    cases = []
    for typename, values in sorted(EDGE_VALUES.items()):
        message = from_dict(store, typename, values)
        plain = to_dict(message)
        ours = store.serialize(message, typename)
        cases.append((typename, plain, ours))
    stdin = "".join(
        json.dumps({"type": t, "values": p, "ours_hex": o.hex()}) + "\n" for t, p, o in cases
    )
    replies = ros_tier.run("python", RCLPY_SIDE, "cdr", stdin=stdin).stdout.splitlines()
    assert len(replies) == len(cases)
    for (typename, plain, ours), line in zip(cases, replies, strict=True):
        reply = json.loads(line)
        theirs = bytes.fromhex(reply["theirs_hex"])
        assert_same_cdr(store._store.fielddefs, typename, ours, theirs)  # rclpy -> bytes
        assert reply["decoded"] == plain  # our bytes -> rclpy
        assert to_dict(store.deserialize(theirs, typename)) == plain  # rclpy bytes -> us


def test_package_xml_names_every_cmake_dependency(repo) -> None:
    cmake = (repo / "CMakeLists.txt").read_text()
    xml = (repo / "package.xml").read_text()
    for pkg in re.findall(r"find_package\((\w+) REQUIRED\)", cmake):
        assert f">{pkg}<" in xml, pkg


def test_humble_store_exists_alongside(ros_tier) -> None:
    assert InterfaceStore("humble").hash("mm_ros/msg/Answer") == "TypeHashNotSupported"
