"""Keys, liveliness tokens, QoS chunks and attachments byte for byte (REFERENCE.md section 1)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mm_ros.bus import naming
from mm_ros.bus.naming import (
    LATCHED,
    RELIABLE,
    SENSOR_DATA,
    EntityKind,
    QoS,
    Remap,
    data_key,
    entity_token,
    node_token,
    parse_token,
    resolve_name,
)
from mm_ros.bus.ros_args import RosArgsError, parameter_overrides, parse_ros_args
from mm_ros.interfaces import get_store

STRING_HASH = "RIHS01_df668c740482bbd48fb39d76a70dfd4bd59db1288021743503259e948f6b1a18"


def key(domain: int, name: str, typename: str) -> str:
    return data_key(domain, name, typename, get_store().hash(typename))


def test_golden_data_keys() -> None:
    assert key(0, "/chatter", "std_msgs/msg/String") == (
        f"0/chatter/std_msgs::msg::dds_::String_/{STRING_HASH}"
    )
    assert key(0, "/robot1/chatter", "std_msgs/msg/String").startswith("0/robot1/chatter/")
    assert key(2, "/add_two_ints", "example_interfaces/srv/AddTwoInts") == (
        "2/add_two_ints/example_interfaces::srv::dds_::AddTwoInts_/RIHS01_"
        "e118de6bf5eeb66a2491b5bda11202e7b68f198d6f67922cf30364858239c81a"
    )


@pytest.mark.parametrize(
    ("endpoint", "typename", "expected"),
    [
        (
            "send_goal",
            "example_interfaces/action/Fibonacci_SendGoal",
            "example_interfaces::action::dds_::Fibonacci_SendGoal_/RIHS01_d1a57fb2a4afe8c21e34fb10db"
            "206f16ce6729b28531141472df92277c55b557",
        ),
        (
            "cancel_goal",
            "action_msgs/srv/CancelGoal",
            "action_msgs::srv::dds_::CancelGoal_/RIHS01_573d8b0a534451d7bc2ac8c5ffde8ac14b8593b70011"
            "75d0cd6516dcbeb8689a",
        ),
        (
            "get_result",
            "example_interfaces/action/Fibonacci_GetResult",
            "example_interfaces::action::dds_::Fibonacci_GetResult_/RIHS01_1b0de0d5d29dc955d92f5467"
            "06568428632771db13ec84c15ec1c1a59f424a57",
        ),
        (
            "feedback",
            "example_interfaces/action/Fibonacci_FeedbackMessage",
            "example_interfaces::action::dds_::Fibonacci_FeedbackMessage_/RIHS01_c1de71afd52e49a89c"
            "53d8262366884185bc0a02f78ce051c4e46b0a7fe59bb2",
        ),
        (
            "status",
            "action_msgs/msg/GoalStatusArray",
            "action_msgs::msg::dds_::GoalStatusArray_/RIHS01_6c1684b00f177d37438febe6e709fc4e2b0d42"
            "48dca4854946f9ed8b30cda83e",
        ),
    ],
)
def test_golden_action_keys(endpoint: str, typename: str, expected: str) -> None:
    assert key(0, f"/ns/fibonacci/_action/{endpoint}", typename) == (
        f"0/ns/fibonacci/_action/{endpoint}/{expected}"
    )


def test_golden_liveliness_tokens() -> None:
    assert node_token(
        2, "aac3178e146ba6f1fc6e6a4085e77f21", 0, enclave="", namespace="/", node="listener"
    ) == ("@ros2_lv/2/aac3178e146ba6f1fc6e6a4085e77f21/0/0/NN/%/%/listener")
    token = entity_token(
        2,
        "8b20917502ee955ac4476e0266340d5c",
        0,
        10,
        EntityKind.PUBLISHER,
        enclave="",
        namespace="/",
        node="talker",
        full_name="/chatter",
        typename="std_msgs/msg/String",
        type_hash=STRING_HASH,
        qos=QoS(depth=7),
    )
    assert token == (
        "@ros2_lv/2/8b20917502ee955ac4476e0266340d5c/0/10/MP/%/%/talker/%chatter/"
        f"std_msgs::msg::dds_::String_/{STRING_HASH}/::,7:,:,:,,"
    )
    parsed = parse_token(token)
    assert (parsed.kind, parsed.node, parsed.name, parsed.typename, parsed.qos) == (
        EntityKind.PUBLISHER,
        "talker",
        "/chatter",
        "std_msgs/msg/String",
        QoS(depth=7),
    )


def test_namespaced_token_mangles_every_slash() -> None:
    token = entity_token(
        0,
        "ab",
        0,
        3,
        EntityKind.SUBSCRIPTION,
        enclave="/",
        namespace="/robot1",
        node="n",
        full_name="/robot1/cam/image",
        typename="sensor_msgs/msg/Image",
        type_hash="TypeHashNotSupported",
        qos=SENSOR_DATA,
    )
    assert token.split("/")[6:] == [
        "%",
        "%robot1",
        "n",
        "%robot1%cam%image",
        "sensor_msgs::msg::dds_::Image_",
        "TypeHashNotSupported",
        "2::,5:,:,:,,",
    ]


@pytest.mark.parametrize(
    ("qos", "chunk"),
    [
        (QoS(depth=10), "::,10:,:,:,,"),
        (SENSOR_DATA, "2::,5:,:,:,,"),
        (LATCHED, ":1:,1:,:,:,,"),
        (QoS(depth=42), "::,:,:,:,,"),
    ],
)
def test_qos_chunks(qos: QoS, chunk: str) -> None:
    assert qos.token() == chunk
    assert QoS.from_token(chunk) == qos


def test_attachment_is_33_bytes_and_round_trips() -> None:
    gid = bytes(range(16))
    data = naming.pack_attachment(1, 1_700_000_000_123_456_789, gid)
    assert len(data) == 33
    assert data[:8] == (1).to_bytes(8, "little")
    assert data[16] == 0x10
    assert naming.unpack_attachment(data) == (1, 1_700_000_000_123_456_789, gid)
    with pytest.raises(naming.BusNameError, match="attachment is 32 bytes, expected 33"):
        naming.unpack_attachment(data[:-1])
    with pytest.raises(naming.BusNameError, match="no attachment"):
        naming.unpack_attachment(None)


@pytest.mark.parametrize(
    ("name", "ns", "node", "full"),
    [
        ("chatter", "/", "n", "/chatter"),
        ("chatter", "/robot1", "n", "/robot1/chatter"),
        ("/abs", "/robot1", "n", "/abs"),
        ("~/ask", "/robot1", "svc", "/robot1/svc/ask"),
        ("~", "/", "svc", "/svc"),
        ("a/b", "/x/y", "n", "/x/y/a/b"),
    ],
)
def test_resolve_names(name: str, ns: str, node: str, full: str) -> None:
    assert resolve_name(name, ns, node) == full


@pytest.mark.parametrize("bad", ["", "a//b", "1abc", "a/", "sp ace"])
def test_bad_names(bad: str) -> None:
    with pytest.raises(naming.BusNameError):
        resolve_name(bad)


def test_ros_args_remaps_params_and_files(tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text(
        "/**:\n  ros__parameters:\n    rate_hz: 10\n    camera: {width: 640}\n"
        "/robot/sim:\n  ros__parameters:\n    seed: 3\n"
        "other:\n  ros__parameters:\n    seed: 99\n"
    )
    args = parse_ros_args(
        [
            "positional",
            "--ros-args",
            "-r",
            "__ns:=/robot",
            "-r",
            "__node:=sim",
            "-r",
            "image:=/cam/image",
            "--params-file",
            str(params),
            "-p",
            "seed:=7",
            "-p",
            "names:=[a, b]",
            "--log-level",
            "debug",
        ]
    )
    assert args.rest == ("positional",)
    assert (args.namespace, args.node_name, args.log_level) == ("/robot", "sim", "debug")
    assert args.remaps == (Remap("image", "/cam/image"),)
    overrides = parameter_overrides(args, "/robot/sim")
    assert overrides == {"rate_hz": 10, "camera.width": 640, "seed": 7, "names": ["a", "b"]}
    assert (
        parameter_overrides(
            parse_ros_args(["--ros-args", "--params-file", str(params)]), "/robot/sim"
        )["seed"]
        == 3
    )


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (["--ros-args", "-p", "seed=7"], "expects NAME:=VALUE, found 'seed=7'"),
        (["--ros-args", "--bogus"], "unknown --ros-args token '--bogus'"),
        (["--ros-args", "-r"], "needs a value"),
        (["--ros-args", "--params-file", "/nonexistent.yaml"], "no such file"),
        (["--ros-args", "--log-level", "loud"], "expected one of"),
    ],
)
def test_bad_ros_args(argv: list[str], match: str) -> None:
    with pytest.raises(RosArgsError, match=match):
        parse_ros_args(argv)


def test_remap_applies_to_fully_qualified_names() -> None:
    rules = (Remap("image", "/cam/image"), Remap("/abs", "rel"))
    assert naming.remap_name("/robot/image", rules, "/robot", "n") == "/cam/image"
    assert naming.remap_name("/abs", rules, "/robot", "n") == "/robot/rel"
    assert naming.remap_name("/other", rules, "/robot", "n") == "/other"
    assert RELIABLE.depth == 10
