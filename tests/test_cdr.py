"""CDR of our own types in pure Python: round trips, edge values, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from mm_ros.core.errors import CdrError, DefinitionError, UnknownTypeError
from mm_ros.interfaces import InterfaceStore, get_store, normalize_name
from mm_ros.interfaces.values import from_dict, to_dict
from tests.cdr_layout import padding_positions

EDGE_VALUES = {
    "mm_ros/msg/Answer": {
        "header": {"stamp": {"sec": -1, "nanosec": 999_999_999}, "frame_id": ""},
        "question": "what is on my left? — 左边是什么 🤖",
        "text": "",
        "raw_text": "<p>red cube</p> {<10><20><30><40>}",
        "detections": {
            "detections": [
                {
                    "bbox": {"center": {"position": {"x": 1e308, "y": -0.0}}, "size_x": 5e-324},
                    "results": [{"hypothesis": {"class_id": "red cube", "score": 1.0}}],
                },
                {"id": "x" * 1000},
            ]
        },
        "bearings": [{"label": "red cube", "detection_index": -1, "azimuth_deg": 31.5, "side": 1}],
        "modalities": ["image", "audio", "imu", ""],
        "latency": [{"stage": "total", "duration_s": 0.125}],
        "prompt_tokens": 2**32 - 1,
    },
    "mm_ros/msg/TokenEmbeddings": {
        "shape": [64, 256],
        "dtype": "float16",
        "data": list(np.arange(64 * 256 * 2, dtype=np.uint16) % 251),
        "input_to_source": [1.5, 1.5, -3.0, 0.0],
    },
    "mm_ros/action/Ask_SendGoal_Request": {
        "goal_id": {"uuid": list(range(16))},
        "goal": {"question": "how am I moving?", "modalities": [], "window_s": 2.5},
    },
    "mm_ros/action/Ask_GetResult_Response": {"status": 4, "result": {"answer": {"text": "ok"}}},
    "mm_ros/action/Ask_FeedbackMessage": {"feedback": {"partial_text": "a red", "stage": "gen"}},
}


@pytest.mark.parametrize("typename", sorted(EDGE_VALUES))
def test_round_trip_keeps_every_value(typename: str) -> None:
    store = get_store()
    message = from_dict(store, typename, EDGE_VALUES[typename])
    data = store.serialize(message, typename)
    assert data[:4] == b"\x00\x01\x00\x00"
    back = to_dict(store.deserialize(data, typename))
    assert back == to_dict(message)
    assert all(data[i] == 0 for i in padding_positions(store._store.fielddefs, typename, data))


def test_large_array_is_a_numpy_view_without_copy_per_element() -> None:
    store = get_store()
    pixels = np.arange(1920 * 1080 * 3, dtype=np.uint8)
    image = from_dict(
        store,
        "sensor_msgs/msg/Image",
        {"height": 1080, "width": 1920, "encoding": "rgb8", "step": 5760},
    )
    image.data = pixels
    decoded = store.deserialize(
        store.serialize(image, "sensor_msgs/msg/Image"), "sensor_msgs/msg/Image"
    )
    assert isinstance(decoded.data, np.ndarray)
    assert np.array_equal(decoded.data, pixels)


@pytest.mark.parametrize(
    ("name", "full"),
    [
        ("std_msgs/String", "std_msgs/msg/String"),
        ("std_msgs::msg::dds_::String_", "std_msgs/msg/String"),
        ("mm_ros::action::dds_::Ask_SendGoal_", "mm_ros/action/Ask_SendGoal"),
        ("sensor_msgs/msg/Image", "sensor_msgs/msg/Image"),
    ],
)
def test_name_forms(name: str, full: str) -> None:
    assert normalize_name(name) == full
    assert get_store().resolve(name) == full


def test_unknown_type_names_closest() -> None:
    with pytest.raises(UnknownTypeError) as err:
        get_store().resolve("vision_msgs/msg/Detection2d")
    assert "vision_msgs/msg/Detection2D" in str(err.value)
    assert "'vision_msgs/msg/Detection2d'" in str(err.value)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("int32 a\nfoo bar baz\n", "default values are allowed for primitive fields only"),
        ("int32\n", "expected 'TYPE NAME'"),
        ("int32 9lives\n", "not a valid field name"),
        ("in-t32 a\n", "not a valid field type"),
        ("NoSuchType a\n", "field 'a' has type 'demo/msg/NoSuchType'"),
        ("int32 a\n---\nint32 b\n", "has 1 section"),
    ],
)
def test_malformed_definition(text: str, match: str) -> None:
    with pytest.raises(DefinitionError, match=match):
        InterfaceStore().add_definition(text, "demo/msg/Broken")


def test_malformed_service_and_action_sections() -> None:
    with pytest.raises(DefinitionError, match=r"\.srv file has 2 section"):
        InterfaceStore().add_definition("int32 a\n", "demo/srv/Broken")
    with pytest.raises(DefinitionError, match=r"\.action file has 3 section"):
        InterfaceStore().add_definition("int32 a\n---\nint32 b\n", "demo/action/Broken")
    with pytest.raises(DefinitionError, match=r"package/msg\|srv\|action/Name"):
        InterfaceStore().add_definition("int32 a\n", "not-a-type")


def test_cdr_too_short_names_expected_and_found() -> None:
    store = get_store()
    with pytest.raises(CdrError, match="expected at least the 4-byte header, found 2 bytes"):
        store.deserialize(b"\x00\x01", "std_msgs/msg/String")
    with pytest.raises(CdrError, match=r"expected at least 12 bytes, found 8"):
        store.deserialize(b"\x00\x01\x00\x00\x01\x00\x00\x00", "builtin_interfaces/msg/Time")
    good = store.serialize(
        from_dict(store, "mm_ros/msg/Answer", {"text": "x" * 100}), "mm_ros/msg/Answer"
    )
    with pytest.raises(CdrError, match="malformed or truncated"):
        store.deserialize(good[: len(good) // 2], "mm_ros/msg/Answer")
    with pytest.raises(CdrError, match="expected encapsulation 00 01"):
        store.deserialize(b"\x07\x07\x00\x00" + good[4:], "mm_ros/msg/Answer")


def test_values_reject_unknown_fields_and_wrong_array_length() -> None:
    store = get_store()
    with pytest.raises(CdrError, match=r"has no field\(s\) \['txt'\]"):
        from_dict(store, "mm_ros/msg/Answer", {"txt": "typo"})
    with pytest.raises(CdrError, match="expected 4 values, found 3"):
        from_dict(store, "mm_ros/msg/TokenEmbeddings", {"input_to_source": [1, 2, 3]})


def test_omitted_fields_get_the_defaults_the_definitions_declare() -> None:
    store = get_store()
    pose = from_dict(store, "geometry_msgs/msg/Pose", {"position": {"x": 1.0}})
    assert (pose.orientation.x, pose.orientation.y, pose.orientation.z) == (0.0, 0.0, 0.0)
    assert pose.orientation.w == 1.0  # Quaternion.msg: float64 w 1 (rclpy's Quaternion() too)
    turned = from_dict(store, "geometry_msgs/msg/Quaternion", {"z": 1.0, "w": 0.0})
    assert (turned.z, turned.w) == (1.0, 0.0)  # given values win over declared defaults
    detection = from_dict(store, "vision_msgs/msg/ObjectHypothesisWithPose", {})
    assert detection.pose.pose.orientation.w == 1.0


def test_audio_layout_is_a_setting() -> None:
    drivers = get_store("jazzy", "ros-drivers")
    whisper = get_store("jazzy", "mgonzs13")
    assert "audio_common_msgs/msg/AudioDataStamped" in drivers.names()
    assert "audio_common_msgs/msg/AudioDataStamped" not in whisper.names()
    assert "audio_common_msgs/msg/AudioStamped" in whisper.names()
    assert drivers.hash("audio_common_msgs/msg/AudioData") != whisper.hash(
        "audio_common_msgs/msg/AudioData"
    )


def test_bad_distro_is_a_config_error() -> None:
    with pytest.raises(ValueError, match="ros_distro must be one of"):
        InterfaceStore("foxy")
