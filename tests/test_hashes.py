"""RIHS01 hashes against golden values from real ROS 2 (REFERENCE.md section 2)."""

from __future__ import annotations

import pytest

from mm_ros.interfaces import InterfaceStore, get_store
from mm_ros.interfaces.hashing import HUMBLE_PLACEHOLDER, type_description

GOLDEN = {
    "std_msgs/msg/String": "df668c740482bbd48fb39d76a70dfd4bd59db1288021743503259e948f6b1a18",
    "example_interfaces/srv/AddTwoInts": "e118de6bf5eeb66a2491b5bda11202e7b68f198d6f67922cf30364858239c81a",
    "example_interfaces/srv/AddTwoInts_Event": "32c1d140259c71e5c355115942bcb31df98b4330e4d906b1b75ccb1c9b3ce6c8",
    "rcl_interfaces/msg/Log": "e28ce254ca8abc06abf92773b74602cdbf116ed34fbaf294fb9f81da9f318eac",
    "rcl_interfaces/msg/ParameterEvent": "043e627780fcad87a22d225bc2a037361dba713fca6a6b9f4b869a5aa0393204",
    "std_msgs/msg/Char": "3ad2d04dd29ba19d04b16659afa3ccaedd691914b02a64e82e252f2fa6a586a9",
    "sensor_msgs/msg/Image": "d31d41a9a4c4bc8eae9be757b0beed306564f7526c88ea6a4588fb9582527d47",
    "sensor_msgs/msg/Imu": "7d9a00ff131080897a5ec7e26e315954b8eae3353c3f995c55faf71574000b5b",
    "builtin_interfaces/msg/Time": "b106235e25a4c5ed35098aa0a61a3ee9c9b18d197f398b0e4206cea9acf9c197",
    "std_msgs/msg/Header": "f49fb3ae2cf070f793645ff749683ac6b06203e41c891e17701b1cb597ce6a01",
    "service_msgs/msg/ServiceEventInfo": "41bcbbe07a75c9b52bc96bfd5c24d7f0fc0a08c0cb7921b3373c5732345a6f45",
    "unique_identifier_msgs/msg/UUID": "1b8e8aca958cbea28fe6ef60bf6c19b683c97a9ef60bb34752067d0f2f7ab437",
    "action_msgs/srv/CancelGoal": "573d8b0a534451d7bc2ac8c5ffde8ac14b8593b7001175d0cd6516dcbeb8689a",
    "action_msgs/msg/GoalStatusArray": "6c1684b00f177d37438febe6e709fc4e2b0d4248dca4854946f9ed8b30cda83e",
    "example_interfaces/action/Fibonacci_SendGoal": "d1a57fb2a4afe8c21e34fb10db206f16ce6729b28531141472df92277c55b557",
    "example_interfaces/action/Fibonacci_GetResult": "1b0de0d5d29dc955d92f546706568428632771db13ec84c15ec1c1a59f424a57",
    "example_interfaces/action/Fibonacci_FeedbackMessage": "c1de71afd52e49a89c53d8262366884185bc0a02f78ce051c4e46b0a7fe59bb2",
    "example_interfaces/action/Fibonacci": "9508051da1ea4658de144b09bd0690ff3de52104683d847aed764d2915906f51",
    "lifecycle_msgs/srv/ChangeState": "356fe34f0475a43acf54542013af4167b0e729f77ea22ffb045c6ad8e20668e5",
    "lifecycle_msgs/srv/GetState": "800a0a5aae599782b02932de0caf563f6dc4e7e94b794eadde075ba2cbef9795",
    "vision_msgs/msg/Detection2DArray": "214274120007f4a683866481336b70310268cfa107aebe9d594a6acf75bda968",
}


@pytest.mark.parametrize(("typename", "expected"), sorted(GOLDEN.items()))
def test_golden_hash(typename: str, expected: str) -> None:
    assert get_store("jazzy").hash(typename) == f"RIHS01_{expected}"


def test_char_maps_to_uint8_unlike_rosbags() -> None:
    store = get_store("jazzy")
    description = type_description(store._store.fielddefs, "std_msgs/msg/Char")
    assert description["type_description"]["fields"][0]["type"]["type_id"] == 3
    # rosbags' own hasher maps char to 13 and gets the golden value wrong
    assert store._store.hash_rihs01("std_msgs/msg/Char") != store.hash("std_msgs/msg/Char")


def test_humble_has_no_hashes() -> None:
    humble = get_store("humble")
    assert humble.hash("std_msgs/msg/String") == HUMBLE_PLACEHOLDER
    assert humble.hash("mm_ros/action/Ask") == HUMBLE_PLACEHOLDER


def test_kilted_hashes_come_from_kilted_definitions() -> None:
    kilted = get_store("kilted")
    assert kilted.hash("std_msgs/msg/String") == f"RIHS01_{GOLDEN['std_msgs/msg/String']}"
    assert kilted.hash("mm_ros/msg/Answer").startswith("RIHS01_")


def test_bounded_types_hash_with_capacities() -> None:
    store = InterfaceStore()
    store.add_definition("string<=8 name\nint32[<=4] values\nfloat64[3] xyz\n", "demo/msg/Bounded")
    fields = store.type_description("demo/msg/Bounded")["type_description"]["fields"]
    assert [
        (f["type"]["type_id"], f["type"]["capacity"], f["type"]["string_capacity"]) for f in fields
    ] == [(21, 0, 8), (6 + 96, 4, 0), (11 + 48, 3, 0)]


def test_empty_request_gets_placeholder_field() -> None:
    fields = get_store().type_description("lifecycle_msgs/srv/GetState_Request")
    assert [f["name"] for f in fields["type_description"]["fields"]] == [
        "structure_needs_at_least_one_member"
    ]
