"""Model boxes → source pixels → bearings: transforms, camera geometry, what models really write."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mm_ros.core.answers import Detection, ImageRef, ObjectBearing
from mm_ros.core.boxes import BoxFormat, parse_boxes
from mm_ros.core.camera import decode_camera_info
from mm_ros.core.errors import ConfigError
from mm_ros.core.grounding import (
    DEFAULT_HFOV_DEG,
    assumed_camera,
    bearings,
    ground,
    relation_summary,
    source_detections,
)
from mm_ros.core.preprocessing import ImageTransform, ResizeMode, preprocess_image
from mm_ros.core.sensors import CameraModel, Side

SIZE = 448  # model input, square
SOURCE = ImageRef(stamp_ns=5, frame_id="camera", width=640, height=480)
KNOWN = (100.0, 50.0, 300.0, 200.0)  # source pixels; inside the centre crop's x range 80..560


def transform_for(mode: ResizeMode) -> ImageTransform:
    image = np.zeros((SOURCE.height, SOURCE.width, 3), dtype=np.uint8)
    _, transform = preprocess_image(image, SIZE, mode, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    return transform


def to_input(transform: ImageTransform, box: tuple[float, ...]) -> tuple[float, ...]:
    """Inverse of ``box_to_source``: where the model sees a source box."""
    t = transform
    return ((box[0] - t.c) / t.a, (box[1] - t.d) / t.b, (box[2] - t.c) / t.a, (box[3] - t.d) / t.b)


def write_box(fmt: BoxFormat, box: tuple[float, ...], label: str) -> str:
    """Write an input-pixel box the way each family does, at its own resolution."""
    x1, y1, x2, y2 = box
    if fmt is BoxFormat.QWEN2_VL:
        p = [round(v / SIZE * 1000) for v in box]
        return (
            f"<|object_ref_start|>{label}<|object_ref_end|>"
            f"<|box_start|>({p[0]},{p[1]}),({p[2]},{p[3]})<|box_end|>"
        )
    if fmt is BoxFormat.FLORENCE2:  # pixel = (bin + 0.5) * size / 1000
        b = [math.floor(v / SIZE * 1000) for v in box]
        return f"{label}<loc_{b[0]}><loc_{b[1]}><loc_{b[2]}><loc_{b[3]}>"
    if fmt is BoxFormat.PALIGEMMA:  # y1 x1 y2 x2, 1024 bins
        b = [round(v / SIZE * 1024) for v in (y1, x1, y2, x2)]
        return f"<loc{b[0]:04d}><loc{b[1]:04d}><loc{b[2]:04d}><loc{b[3]:04d}> {label}"
    if fmt is BoxFormat.QWEN_JSON:
        return f'[{{"bbox_2d": [{x1:.3f}, {y1:.3f}, {x2:.3f}, {y2:.3f}], "label": "{label}"}}]'
    raise AssertionError(fmt)


@pytest.mark.parametrize("mode", list(ResizeMode))
@pytest.mark.parametrize(
    "fmt", [BoxFormat.QWEN_JSON, BoxFormat.QWEN2_VL, BoxFormat.FLORENCE2, BoxFormat.PALIGEMMA]
)
def test_known_source_box_comes_back_through_each_transform(
    mode: ResizeMode, fmt: BoxFormat
) -> None:
    transform = transform_for(mode)
    text = write_box(fmt, to_input(transform, KNOWN), "red cube")
    parsed = parse_boxes(text, fmt, input_width=SIZE, input_height=SIZE)
    detections, found = ground(parsed, transform, SOURCE, None)
    assert [d.label for d in detections] == ["red cube"]
    assert detections[0].box_px == pytest.approx(KNOWN, abs=0.5)
    assert len(found) == 1
    assert found[0].detection_index == 0


def test_boxes_without_transform_are_source_pixels_clamped() -> None:
    parsed = parse_boxes(
        '[{"bbox_2d": [600, 400, 700, 500], "label": "ball"}]',
        BoxFormat.QWEN_JSON,
        input_width=1000,
        input_height=1000,
    )
    detections, _ = ground(parsed, None, SOURCE, None)
    assert detections == (Detection("ball", (600.0, 400.0, 640.0, 480.0)),)


def test_box_in_the_letterbox_padding_is_dropped_with_the_reason() -> None:
    transform = transform_for(ResizeMode.LETTERBOX)  # 56 input rows of padding at the top
    text = "<loc0000><loc0100><loc0100><loc0400> sky ; <loc0512><loc0256><loc0768><loc0512> cube"
    parsed = parse_boxes(text, BoxFormat.PALIGEMMA, input_width=SIZE, input_height=SIZE)
    assert len(parsed.boxes) == 2
    detections, rejected = source_detections(parsed, transform, SOURCE)
    assert [d.label for d in detections] == ["cube"]
    assert len(rejected) == 1
    assert "'sky'" in rejected[0]
    assert "empty in the 640x480 source image" in rejected[0]
    assert ground(parsed, transform, SOURCE, None)[0] == detections


def test_transform_for_another_image_size_is_refused() -> None:
    parsed = parse_boxes("{<10><10><20><20>}", "minigpt-v2", input_width=SIZE, input_height=SIZE)
    other = ImageRef(0, "camera", 1280, 720)
    with pytest.raises(ConfigError, match="640x480 source, but the answer's image is 1280x720"):
        ground(parsed, transform_for(ResizeMode.SQUASH), other, None)


# -- bearings ---------------------------------------------------------------------------------

# CameraInfo geometry: 1280x960, fx = fy = 320, principal point at the centre. A pixel fx to the
# left of cx is 45 deg left; 10 deg (the default centre band) is fx * tan(10 deg) from cx.
CAMERA = decode_camera_info(
    1280, 960, "plumb_bob", (0.0,) * 5, (320.0, 0, 640.0, 0, 320.0, 480.0, 0, 0, 1), frame_id="cam"
)
WIDE = ImageRef(0, "camera", 1280, 960)
BAND_PX = 320.0 * math.tan(math.radians(10.0))


def box_at(u: float, v: float) -> Detection:
    return Detection("thing", (u - 2.0, v - 2.0, u + 2.0, v + 2.0))


@pytest.mark.parametrize(
    ("u", "v", "azimuth", "elevation", "side"),
    [
        (640.0, 480.0, 0.0, 0.0, Side.CENTRE),
        (320.0, 480.0, 45.0, 0.0, Side.LEFT),
        (960.0, 480.0, -45.0, 0.0, Side.RIGHT),
        (640.0, 160.0, 0.0, 45.0, Side.CENTRE),
        (640.0, 800.0, 0.0, -45.0, Side.CENTRE),
        (640.0 - BAND_PX * 0.999, 480.0, 9.99, 0.0, Side.CENTRE),
        (640.0 - BAND_PX * 1.001, 480.0, 10.01, 0.0, Side.LEFT),
        (640.0 + BAND_PX * 0.999, 480.0, -9.99, 0.0, Side.CENTRE),
        (640.0 + BAND_PX * 1.001, 480.0, -10.01, 0.0, Side.RIGHT),
    ],
)
def test_bearing_from_camera_info(
    u: float, v: float, azimuth: float, elevation: float, side: Side
) -> None:
    (found,) = bearings([box_at(u, v)], WIDE, CAMERA)
    assert found.azimuth_deg == pytest.approx(azimuth, abs=0.005)
    assert found.elevation_deg == pytest.approx(elevation, abs=0.005)
    assert found.side is side
    assert (found.label, found.detection_index) == ("thing", 0)


def test_centre_band_width_is_a_setting() -> None:
    (narrow,) = bearings([box_at(320.0, 480.0)], WIDE, CAMERA, centre_half_width_deg=50.0)
    assert narrow.side is Side.CENTRE
    with pytest.raises(ConfigError, match="centre half width"):
        bearings([box_at(0, 0)], WIDE, CAMERA, centre_half_width_deg=-1.0)


def test_camera_info_for_a_larger_resolution_is_scaled_to_the_image() -> None:
    half = ImageRef(0, "camera", 640, 480)  # stream downscaled 2x, CameraInfo at full size
    (found,) = bearings([box_at(160.0, 240.0)], half, CAMERA)
    assert found.azimuth_deg == pytest.approx(45.0, abs=0.005)
    assert found.side is Side.LEFT


def test_without_camera_info_the_width_and_default_fov_decide() -> None:
    half_fov = DEFAULT_HFOV_DEG / 2
    focal = 320.0 / math.tan(math.radians(half_fov))
    band = focal * math.tan(math.radians(10.0))
    boxes = [
        Detection("red cube", (0.0, 200.0, 0.0 + 1e-3, 280.0)),  # at the left edge
        box_at(320.0, 240.0),
        Detection("edge", (640.0 - 1e-3, 200.0, 640.0, 280.0)),
        box_at(320.0 - band * 0.99, 240.0),
        box_at(320.0 - band * 1.01, 240.0),
    ]
    found = bearings(boxes, SOURCE, None)
    assert found[0].azimuth_deg == pytest.approx(half_fov, abs=0.01)
    assert found[2].azimuth_deg == pytest.approx(-half_fov, abs=0.01)
    assert [b.side for b in found] == [Side.LEFT, Side.CENTRE, Side.RIGHT, Side.CENTRE, Side.LEFT]
    assert [b.detection_index for b in found] == [0, 1, 2, 3, 4]
    assert relation_summary(boxes[:1], found[:1]) == "red cube on the left (32 deg)"


def test_without_width_the_side_is_unknown() -> None:
    unknown = ImageRef(0, "", 0, 0)
    (found,) = bearings([box_at(100.0, 100.0)], unknown, None)
    assert found.side is None
    assert math.isnan(found.azimuth_deg)
    assert math.isnan(found.elevation_deg)
    assert assumed_camera(unknown) is None
    assert relation_summary([box_at(1, 1)], [found]) == "thing (direction unknown)"


def test_width_without_height_gives_azimuth_only() -> None:
    (found,) = bearings([box_at(0.5, 10.0)], ImageRef(0, "", 640, 0), None)
    assert found.side is Side.LEFT
    assert math.isnan(found.elevation_deg)


def test_assumed_field_of_view_is_checked() -> None:
    with pytest.raises(ConfigError, match=r"field of view must be in \(0, 180\) deg, found 180"):
        assumed_camera(SOURCE, 180.0)


def test_relation_summary_states_each_object() -> None:
    detections = [box_at(1, 1), Detection("", (0, 0, 1, 1)), box_at(2, 2)]
    found = [
        ObjectBearing("thing", 0, 31.6, 0.0, Side.LEFT),
        ObjectBearing("", 1, -3.2, 0.0, Side.CENTRE),
        ObjectBearing("thing", 2, -20.4, 1.0, Side.RIGHT),
        ObjectBearing("door bell", -1, 0.2, 0.0, Side.CENTRE),
    ]
    assert relation_summary(detections, found) == (
        "thing on the left (32 deg); object in the centre (3 deg right); "
        "thing on the right (20 deg); door bell in the centre (0 deg)"
    )
    assert relation_summary([], []) == ""
    assert relation_summary(detections[:1], []) == "thing (direction unknown)"


# -- what models really write ------------------------------------------------------------------

# (format, text, labels kept, number rejected, first kept box in source pixels or None);
# input 448x448 squashed from 640x480: x_src = x_in * 640/448, y_src = y_in * 480/448.
MALFORMED = [
    # MiniGPT-v2 (0..100 of the image)
    ("minigpt-v2", "<p>red cube</p> {<10><20><30>}", [], 1, None),
    ("minigpt-v2", "<p>red cube</p> {<30><40><10><20>}", ["red cube"], 0, (64, 96, 192, 192)),
    ("minigpt-v2", "<p>cube</p> {<-5><0><150><50>}", ["cube"], 0, (0, 0, 640, 240)),
    ("minigpt-v2", "<p>red cube</p> {<10><20><3", [], 0, None),  # cut off mid-generation
    ("minigpt-v2", "<p>a</p> {<10><10><20><20>}<delim>{<1><2>}", ["a"], 1, (64, 48, 128, 96)),
    ("minigpt-v2", "<p>line</p> {<10><20><10><40>}", [], 1, None),  # zero width
    # Qwen2-VL (0..1000)
    (
        "qwen2-vl",
        "<|object_ref_start|>ball<|object_ref_end|><|box_start|>(100,200),(300)<|box_end|>",
        [],
        1,
        None,
    ),
    (
        "qwen2-vl",
        "<|object_ref_start|>ball<|object_ref_end|><|box_start|>(500,750),(250,500)<|box_end|>",
        ["ball"],
        0,
        (160, 240, 320, 360),
    ),
    (
        "qwen2-vl",
        "<|object_ref_start|>ball<|object_ref_end|><|box_start|>(900,900),(1200,1500)<|box_end|>",
        ["ball"],
        0,
        (576, 432, 640, 480),
    ),
    ("qwen2-vl", "<|object_ref_start|>ball<|object_ref_end|><|box_start|>(100,2", [], 0, None),
    # Florence-2 (1000 bins, pixel = (bin + 0.5) * size / 1000)
    ("florence-2", "cube<loc_100><loc_200><loc_300>", [], 1, None),
    ("florence-2", "dot<loc_500><loc_500><loc_500><loc_600>", [], 1, None),  # zero width
    (
        "florence-2",
        "cube<loc_499><loc_499><loc_99><loc_99>",
        ["cube"],
        0,
        (63.68, 47.76, 319.68, 239.76),
    ),
    ("florence-2", "cube<loc_100><loc_2", [], 1, None),  # cut off: one tag, kept as a reason
    # PaliGemma (1024 bins, y1 x1 y2 x2)
    ("paligemma", "<loc0100><loc0200> cube", [], 1, None),
    ("paligemma", "<loc0512><loc0256><loc0768><loc0512> cube", ["cube"], 0, (160, 240, 320, 360)),
    ("paligemma", "<loc0768><loc0512><loc0512><loc0256> cube", ["cube"], 0, (160, 240, 320, 360)),
    ("paligemma", "<loc0000><loc0000><loc2000><loc1024> all", ["all"], 0, (0, 0, 640, 480)),
    ("paligemma", "<loc0512><loc02", [], 1, None),
    ("paligemma", "<loc0512><loc0256><loc0768><loc0512> cube ; <loc0001>", ["cube"], 1, None),
]


@pytest.mark.parametrize(
    ("fmt", "text", "labels", "n_rejected", "first"),
    MALFORMED,
    ids=[f"{c[0]}-{i}" for i, c in enumerate(MALFORMED)],
)
def test_malformed_and_partial_model_output(
    fmt: str, text: str, labels: list[str], n_rejected: int, first: tuple[float, ...] | None
) -> None:
    parsed = parse_boxes(text, fmt, input_width=SIZE, input_height=SIZE)
    transform = transform_for(ResizeMode.SQUASH)
    detections, rejected = source_detections(parsed, transform, SOURCE)
    assert [d.label for d in detections] == labels
    assert len(rejected) == n_rejected, rejected
    for detection in detections:
        x1, y1, x2, y2 = detection.box_px
        assert 0 <= x1 < x2 <= SOURCE.width
        assert 0 <= y1 < y2 <= SOURCE.height
    if first is not None:
        assert detections[0].box_px == pytest.approx(first, abs=0.01)
    kept, found = ground(parsed, transform, SOURCE, CAMERA_640)
    assert kept == detections
    assert [b.detection_index for b in found] == list(range(len(kept)))
    assert all(b.side is not None for b in found)


CAMERA_640 = CameraModel(640, 480, (400.0, 0, 320.0, 0, 400.0, 240.0, 0, 0, 1), "", ())
