"""Annotated answer images: boxes and captions drawn on a copy, the input left alone."""

from __future__ import annotations

import numpy as np
import pytest

from mm_ros.core.answers import Detection, ObjectBearing
from mm_ros.core.errors import AdapterInputError
from mm_ros.core.sensors import Side
from mm_ros.llm.annotate import annotate, caption

GREY = 128


def grey(height: int = 480, width: int = 640) -> np.ndarray:
    return np.full((height, width, 3), GREY, dtype=np.uint8)


def changed(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.any(a != b, axis=2)  # (H, W) bool


def test_box_edges_are_drawn_and_the_inside_and_input_are_not() -> None:
    rgb = grey()
    before = rgb.copy()
    detections = [Detection("red cube", (100.0, 150.0, 300.0, 350.0))]
    bearings = [ObjectBearing("red cube", 0, 31.6, -2.0, Side.LEFT)]
    out = annotate(rgb, detections, bearings)
    assert np.array_equal(rgb, before)
    assert out.shape == rgb.shape
    assert out.dtype == np.uint8
    assert not np.shares_memory(out, rgb)
    diff = changed(out, rgb)
    for y, x in [(250, 100), (250, 299), (150, 200), (349, 200), (150, 100), (349, 299)]:
        assert diff[y, x], (y, x)
    assert not diff[200:300, 110:290].any()  # inside the box
    assert not diff[360:, :].any()  # below the box
    assert diff[130:149, 100:200].any()  # the caption sits above the box


def test_caption_says_label_side_and_azimuth() -> None:
    assert caption("red cube", ObjectBearing("red cube", 0, 31.6, 0, Side.LEFT)) == (
        "red cube  L 32 deg"
    )
    assert caption("", ObjectBearing("", 0, -12.2, 0, Side.RIGHT)) == "object  R 12 deg"
    assert caption("ball", ObjectBearing("ball", 0, float("nan"), 0, None)) == "ball"
    assert caption("ball", None) == "ball"


def test_box_at_the_image_border_and_beyond_stays_inside() -> None:
    rgb = grey(240, 320)
    out = annotate(rgb, [Detection("", (0.0, 0.0, 320.0, 240.0))], [])
    diff = changed(out, rgb)
    assert diff[120, 0]
    assert diff[120, 319]
    assert diff[239, 160]
    assert not diff[120, 160]


def test_empty_detections_give_an_identical_copy() -> None:
    rgb = grey()
    out = annotate(rgb, [], [])
    assert np.array_equal(out, rgb)
    assert not np.shares_memory(out, rgb)


def test_title_only_touches_the_top_band() -> None:
    rgb = grey()
    out = annotate(rgb, [], [], title="what is on my left?")
    diff = changed(out, rgb)
    assert diff[:30].any()
    assert not diff[40:].any()
    assert np.array_equal(rgb, grey())


def test_not_rgb8_is_refused() -> None:
    with pytest.raises(AdapterInputError, match=r"expected shape \(H, W, 3\)"):
        annotate(np.zeros((10, 10), dtype=np.uint8), [], [])
