"""Grounding boxes from every VLM family's text (REFERENCE.md section 4)."""

from __future__ import annotations

import pytest

from mm_ros.core.boxes import BoxFormat, BoxScale, parse_boxes, streamed_text
from mm_ros.core.errors import ConfigError
from mm_ros.core.preprocessing import ImageTransform

W = H = 448  # model input
# Every case writes the same box: x 112..224, y 224..336 of a 448 px input, "red cube".
CASES = [
    (BoxFormat.MINIGPT_V2, None, "<p>red cube</p> {<25><50><50><75>}", "red cube"),
    (BoxFormat.QWEN_VL, None, "<ref>red cube</ref><box>(250,500),(500,750)</box>", "red cube"),
    (
        BoxFormat.QWEN2_VL,
        None,
        "<|object_ref_start|>red cube<|object_ref_end|><|box_start|>(250,500),(500,750)<|box_end|>",
        "red cube",
    ),
    (
        BoxFormat.QWEN_JSON,
        None,
        '```json\n[{"bbox_2d": [112, 224, 224, 336], "label": "red cube"}]\n```',
        "red cube",
    ),
    (
        BoxFormat.QWEN_JSON,
        BoxScale.PERMILLE,
        '[{"bbox_2d": [250, 500, 500, 750], "label": "red cube"}]',
        "red cube",
    ),
    (BoxFormat.FLORENCE2, None, "red cube<loc_249><loc_499><loc_499><loc_749>", "red cube"),
    (BoxFormat.PALIGEMMA, None, "<loc0512><loc0256><loc0768><loc0512> red cube", "red cube"),
    (BoxFormat.SHIKRA, None, "the red cube [0.25,0.5,0.5,0.75]", ""),
    (BoxFormat.INTERNVL, None, "<ref>red cube</ref><box>[[250, 500, 500, 750]]</box>", "red cube"),
    (
        BoxFormat.DEEPSEEK_VL2,
        None,
        "<|ref|>red cube<|/ref|><|det|>[[249.75,499.5,499.5,749.25]]<|/det|>",
        "red cube",
    ),
]


@pytest.mark.parametrize(
    ("fmt", "scale", "text", "label"),
    CASES,
    ids=[f"{c[0].value}-{c[1].value if c[1] else 'default'}" for c in CASES],
)
def test_every_family(fmt: BoxFormat, scale: BoxScale | None, text: str, label: str) -> None:
    parsed = parse_boxes(text, fmt, scale, input_width=W, input_height=H)
    assert parsed.rejected == ()
    assert len(parsed.boxes) == 1
    assert parsed.boxes[0].label == label
    assert parsed.boxes[0].box_px == pytest.approx((112, 224, 224, 336), abs=0.6)
    assert parsed.raw == text
    assert "<" not in parsed.text
    assert "250" not in parsed.text


def test_kosmos2_grid_cells() -> None:
    # cell 8*32+8 = 264 (top-left) to 11*32+15 = 367 (bottom-right) on a 32x32 grid
    text = (
        "<grounding><phrase>a red cube</phrase><object><patch_index_0264><patch_index_0367>"
        "</object> on the floor"
    )
    parsed = parse_boxes(text, BoxFormat.KOSMOS2, input_width=W, input_height=H)
    assert parsed.boxes[0].label == "a red cube"
    assert parsed.boxes[0].box_px == pytest.approx((8 * 14, 8 * 14, 16 * 14, 12 * 14))
    assert "a red cube on the floor" in parsed.text


def test_minigpt_v2_real_world_noise_and_several_boxes() -> None:
    text = (
        "&lt;p&gt;red cube&lt;/p&gt; { <10><20> <30><40> }<delim>{<unk><60><70><80><90>} "
        "and <p>blue ball</p> {<95><5><85><15>}"
    )
    parsed = parse_boxes(text, BoxFormat.MINIGPT_V2, input_width=100, input_height=100)
    assert [b.box_px for b in parsed.boxes] == [
        (10, 20, 30, 40),
        (60, 70, 80, 90),
        (85, 5, 95, 15),
    ]  # last one swapped
    assert [b.label for b in parsed.boxes] == ["red cube", "red cube", "blue ball"]
    assert parsed.text == "red cube and blue ball"


def test_clamp_and_reject() -> None:
    parsed = parse_boxes(
        "<ref>a</ref><box>(-50,0),(1200,500)</box><ref>b</ref><box>(1,2,3)</box>",
        BoxFormat.QWEN_VL,
        input_width=W,
        input_height=H,
    )
    assert parsed.boxes[0].box_px == (0.0, 0.0, float(W), 224.0)
    assert len(parsed.rejected) == 1
    assert "expected 4 numbers, found 3" in parsed.rejected[0]
    bad_json = parse_boxes(
        '[{"bbox_2d": [1, 2]}, {"label": "x"}]', BoxFormat.QWEN_JSON, input_width=W, input_height=H
    )
    assert bad_json.boxes == ()
    assert len(bad_json.rejected) == 2


def test_no_boxes_keeps_text_and_bad_size_is_a_config_error() -> None:
    parsed = parse_boxes(
        "There is nothing red.", BoxFormat.MINIGPT_V2, input_width=W, input_height=H
    )
    assert (parsed.text, parsed.boxes, parsed.rejected) == ("There is nothing red.", (), ())
    with pytest.raises(ConfigError, match="model input size"):
        parse_boxes("x", BoxFormat.SHIKRA, input_width=0, input_height=10)


def test_boxes_map_back_to_source_pixels_through_the_adapter_transform() -> None:
    # a 1280x720 source letterboxed into 448: scale 1280/448, vertical offset
    scale = 1280 / 448
    transform = ImageTransform(scale, scale, 0.0, -(448 * scale - 720) / 2, 1280, 720, 448)
    parsed = parse_boxes(
        "<p>red cube</p> {<25><50><50><75>}",
        BoxFormat.MINIGPT_V2,
        input_width=448,
        input_height=448,
    )
    x1, y1, x2, y2 = transform.box_to_source(parsed.boxes[0].box_px)
    assert (x1, x2) == pytest.approx((320.0, 640.0))
    assert (y1, y2) == pytest.approx((360.0, 680.0))  # letterbox offset -280 px


@pytest.mark.parametrize(
    ("raw", "fmt", "shown"),
    [
        ("red cone { <0> <54> <10>", "minigpt-v2", "red cone"),
        ("<p> red cone </p> { <0> <54> <10> <100> } is left", "minigpt-v2", "red cone is left"),
        ("the <p> red co", "minigpt-v2", "the"),
        ("a cup<|box_start|>(10,20),(3", "qwen2-vl", "a cup"),
        ("a cup [0.1,0.2", "shikra", "a cup"),
        ("a cup [0.1,0.2,0.3,0.4] here", "shikra", "a cup here"),
    ],
)
def test_streamed_text_holds_back_open_markup(raw: str, fmt: str, shown: str) -> None:
    assert streamed_text(raw, fmt, size=100) == shown
