"""Draw an answer's boxes, labels and bearings on its source image (numpy + OpenCV, no torch).

The annotated image is what a person looks at in rviz or Foxglove to check the model: each box
with its phrase and where it is (``L 32 deg``), optionally a title (the question) on top. Sizes
scale with the image so the text stays readable from 320x240 to 1920x1080.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import cv2
import numpy as np

from mm_ros.core.preprocessing import check_rgb8
from mm_ros.core.sensors import Side

if TYPE_CHECKING:
    from collections.abc import Sequence

    from numpy.typing import NDArray

    from mm_ros.core.answers import Detection, ObjectBearing

# RGB; saturated colours that stay distinct from each other and from grey scenes
PALETTE = (
    (0, 220, 0),
    (255, 64, 64),
    (64, 128, 255),
    (255, 200, 0),
    (220, 0, 220),
    (0, 220, 220),
)
TEXT_RGB = (255, 255, 255)
TITLE_BG_RGB = (0, 0, 0)
REFERENCE_HEIGHT_PX = 480  # font scale 0.5 and 2 px lines at this height
SIDE_LETTER = {Side.LEFT: "L", Side.CENTRE: "C", Side.RIGHT: "R"}
FONT = cv2.FONT_HERSHEY_SIMPLEX


def caption(label: str, bearing: ObjectBearing | None) -> str:
    """Return the text drawn above a box, e.g. ``"red cube  L 32 deg"``."""
    name = label or "object"
    if bearing is None or bearing.side is None or math.isnan(bearing.azimuth_deg):
        return name
    return f"{name}  {SIDE_LETTER[bearing.side]} {abs(bearing.azimuth_deg):.0f} deg"


def annotate(
    rgb: NDArray[np.uint8],
    detections: Sequence[Detection],
    bearings: Sequence[ObjectBearing],
    title: str = "",
) -> NDArray[np.uint8]:
    """Return a new (H, W, 3) rgb8 image with boxes, captions and ``title`` drawn on a copy."""
    out = np.array(check_rgb8(rgb, "annotate image"), dtype=np.uint8, copy=True)  # (H, W, 3)
    height, width = out.shape[:2]
    scale = max(height, 1) / REFERENCE_HEIGHT_PX
    font_scale = max(0.35, 0.5 * scale)
    thickness = max(1, round(2 * scale))
    text_thickness = max(1, round(scale))
    band = 0  # rows the title covers; captions go below it
    if title:
        (title_w, title_h), title_base = cv2.getTextSize(title, FONT, font_scale, text_thickness)
        band = title_h + title_base + 7
    by_index = {b.detection_index: b for b in bearings if b.detection_index >= 0}
    for index, detection in enumerate(detections):
        colour = PALETTE[index % len(PALETTE)]
        x1, y1, x2, y2 = detection.box_px  # continuous pixel edges
        left, top = _pixel(x1, width), _pixel(y1, height)
        right, bottom = _pixel(x2 - 1.0, width), _pixel(y2 - 1.0, height)
        right, bottom = max(right, left), max(bottom, top)
        cv2.rectangle(out, (left, top), (right, bottom), colour, thickness, cv2.LINE_AA)
        text = caption(detection.label, by_index.get(index))
        (text_w, text_h), base = cv2.getTextSize(text, FONT, font_scale, text_thickness)
        # caption above the box, or inside its top edge when the box touches the image top
        above = top - text_h - base - 2
        text_top = above if above >= band else max(top, band)
        text_left = min(left, max(0, width - text_w - 2))
        cv2.rectangle(
            out,
            (text_left, text_top),
            (text_left + text_w + 2, text_top + text_h + base + 2),
            colour,
            cv2.FILLED,
        )
        cv2.putText(
            out,
            text,
            (text_left + 1, text_top + text_h + 1),
            FONT,
            font_scale,
            (0, 0, 0),
            text_thickness,
            cv2.LINE_AA,
        )
    if title:
        cv2.rectangle(out, (0, 0), (min(width - 1, title_w + 6), band - 1), TITLE_BG_RGB, -1)
        cv2.putText(
            out, title, (3, title_h + 3), FONT, font_scale, TEXT_RGB, text_thickness, cv2.LINE_AA
        )
    return out


def _pixel(coordinate: float, size: int) -> int:
    """Return the pixel index holding a continuous coordinate, inside ``0..size-1``."""
    return int(min(max(math.floor(coordinate + 0.5), 0), size - 1))
