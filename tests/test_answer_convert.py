"""AnswerValue ⇄ mm_ros/msg/Answer through the real CDR codec (what the client reads back)."""

from __future__ import annotations

import math

import pytest

from mm_ros.core.answers import AnswerValue, Detection, ImageRef, ObjectBearing
from mm_ros.core.sensors import Side
from mm_ros.interfaces import get_store
from mm_ros.interfaces.values import from_dict
from mm_ros.nodes import convert

ANSWER = "mm_ros/msg/Answer"
VALUE = AnswerValue(
    question="what is on my left?",
    task="grounding",
    text="a red cube and a blue ball",
    raw_text="a <p>red cube</p> {<10><20><30><40>} and a <p>blue ball</p> {<60><50><80><90>}",
    detections=(
        Detection("red cube", (64.0, 96.0, 192.0, 192.0)),
        Detection("blue ball", (384.0, 240.0, 512.0, 432.0), score=0.75),
    ),
    bearings=(
        ObjectBearing("red cube", 0, 31.5, 7.25, Side.LEFT),
        ObjectBearing("blue ball", 1, -14.0, -8.5, Side.RIGHT),
        ObjectBearing("door bell", -1, 2.0, 0.0, Side.CENTRE),
    ),
    image=ImageRef(1_700_000_000_123_456_789, "camera_optical", 640, 480),
    modalities=("image", "audio"),
    stamp_ns=1_700_000_000_200_000_000,
    frame_id="base_link",
    window_start_ns=1_699_999_998_000_000_001,
    latency_s=(("snapshot", 0.001), ("encode/image", 0.012), ("total", 0.5)),
    prompt_tokens=321,
    generated_tokens=17,
    model_id="mm-tiny@abc123",
    unknown_words=("zorblax", "rigth"),
)


def through_cdr(fields: dict, typename: str) -> object:
    store = get_store()
    data = store.serialize(from_dict(store, typename, fields), typename)
    return store.deserialize(data, typename)


def test_answer_fields_follow_the_message_layout() -> None:
    fields = convert.answer(VALUE)
    assert fields["header"] == {
        "stamp": {"sec": 1_700_000_000, "nanosec": 200_000_000},
        "frame_id": "base_link",
    }
    boxes = fields["detections"]
    assert boxes["header"]["frame_id"] == "camera_optical"  # the source image's, not the answer's
    assert boxes["header"]["stamp"] == {"sec": 1_700_000_000, "nanosec": 123_456_789}
    first = boxes["detections"][0]
    assert first["bbox"]["center"]["position"] == {"x": 128.0, "y": 144.0}
    assert (first["bbox"]["size_x"], first["bbox"]["size_y"]) == (128.0, 96.0)
    assert first["results"][0]["hypothesis"] == {"class_id": "red cube", "score": 1.0}
    assert [b["side"] for b in fields["bearings"]] == [1, 3, 2]
    assert fields["latency"][1] == {"stage": "encode/image", "duration_s": 0.012}
    assert fields["window_start"] == {"sec": 1_699_999_998, "nanosec": 1}
    assert convert.detections(VALUE) == boxes


def test_round_trip_through_cdr_keeps_everything_the_message_carries() -> None:
    message = through_cdr(convert.answer(VALUE), ANSWER)
    for detection in message.detections.detections:  # no pose estimate: identity, not zeros
        assert detection.results[0].pose.pose.orientation.w == 1.0
    back = convert.answer_value(message)
    assert back.detections == VALUE.detections
    assert back.bearings == VALUE.bearings
    assert back.image == ImageRef(VALUE.image.stamp_ns, "camera_optical", 0, 0)  # size not sent
    same = ("question", "task", "text", "raw_text", "modalities", "stamp_ns", "frame_id")
    for name in (*same, "window_start_ns", "latency_s", "prompt_tokens", "generated_tokens"):
        assert getattr(back, name) == getattr(VALUE, name), name
    assert back.model_id == VALUE.model_id
    assert back.unknown_words == ("zorblax", "rigth")
    assert back.ok


def test_error_answer_without_image_or_boxes() -> None:
    value = AnswerValue(question="hi?", task="vqa", error="timeout: no answer within 5 s")
    back = convert.answer_value(through_cdr(convert.answer(value), ANSWER))
    assert back == value
    assert not back.ok


def test_unknown_side_and_direction_survive() -> None:
    value = AnswerValue(
        question="where?",
        task="grounding",
        detections=(Detection("thing", (0.5, 1.5, 2.5, 3.5)),),
        bearings=(ObjectBearing("thing", 0, math.nan, math.nan, None),),
        image=ImageRef(0, "cam", 0, 0),
    )
    fields = convert.answer(value)
    assert fields["bearings"][0]["side"] == convert.SIDE_UNKNOWN
    back = convert.answer_value(through_cdr(fields, ANSWER))
    (bearing,) = back.bearings
    assert bearing.side is None
    assert math.isnan(bearing.azimuth_deg)
    assert back.detections == value.detections
    assert back.image == value.image


def test_detection_array_alone_round_trips() -> None:
    message = through_cdr(convert.detections(VALUE), "vision_msgs/msg/Detection2DArray")
    assert [d.bbox.size_x for d in message.detections] == [128.0, 128.0]
    assert message.detections[1].results[0].hypothesis.score == pytest.approx(0.75)
    assert message.detections[1].header.frame_id == "camera_optical"
