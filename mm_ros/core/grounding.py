"""Boxes a model wrote → detections in source-image pixels → bearings from the camera.

The last step of a grounded answer (DESIGN.md section 9): ``core.boxes.parse_boxes`` gives boxes
in model-input pixels; ``ImageTransform.box_to_source`` maps them back to the source image; the
box centre then becomes a direction with the camera's intrinsics (``CameraModel.bearing``) and a
coarse side (``Bearing.side``). So "what is on my left?" gets a geometric answer, not only the
model's words.

Without ``CameraInfo`` the bearing is an estimate from the image width alone: a pinhole camera
with a horizontal field of view of :data:`DEFAULT_HFOV_DEG`, square pixels and the principal
point at the image centre. The side then uses the same centre band (in degrees) as with a real
camera. When even the image width is unknown, azimuth and elevation are NaN and the side is
``None`` (``Bearing.SIDE_UNKNOWN`` on the wire).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from mm_ros.core.answers import Detection, ImageRef, ObjectBearing
from mm_ros.core.errors import ConfigError
from mm_ros.core.sensors import Bearing, CameraModel, Side

if TYPE_CHECKING:
    from collections.abc import Sequence

    from mm_ros.core.boxes import Parsed
    from mm_ros.core.preprocessing import ImageTransform

# Assumed horizontal field of view when no CameraInfo is known: about what common USB webcams
# and the RealSense D435 colour camera (69 deg) have. Only the side and a rough azimuth depend on
# it; a robot that cares publishes CameraInfo.
DEFAULT_HFOV_DEG = 65.0
UNKNOWN_SIDE_TEXT = "direction unknown"


def source_detections(
    parsed: Parsed, transform: ImageTransform | None, image: ImageRef
) -> tuple[tuple[Detection, ...], tuple[str, ...]]:
    """Map parsed boxes to source pixels; return the kept detections and every rejection.

    Rejections are the parser's (malformed markup) followed by boxes that are empty once clamped
    to the source image (e.g. a letterboxed model pointing into the padding), each with why.
    ``transform`` None means the boxes are already in source pixels.
    """
    if transform is not None and image.width > 0 and image.height > 0:
        found = (transform.source_width, transform.source_height)
        if found != (image.width, image.height):
            msg = (
                f"image transform maps to a {found[0]}x{found[1]} source, but the answer's image "
                f"is {image.width}x{image.height}"
            )
            raise ConfigError(msg)
    kept: list[Detection] = []
    rejected = list(parsed.rejected)
    for grounded in parsed.boxes:
        box = (
            _clamp(grounded.box_px, image)
            if transform is None
            else tuple(transform.box_to_source(grounded.box_px))
        )
        x1, y1, x2, y2 = (float(v) for v in box)
        if x2 <= x1 or y2 <= y1:
            rejected.append(
                f"{grounded.label or 'box'!r} at input pixels {_fmt_box(grounded.box_px)} is "
                f"empty in the {image.width}x{image.height} source image "
                f"({_fmt_box((x1, y1, x2, y2))} after clamping)"
            )
            continue
        kept.append(Detection(grounded.label, (x1, y1, x2, y2)))
    return tuple(kept), tuple(rejected)


def bearings(
    detections: Sequence[Detection],
    image: ImageRef,
    camera: CameraModel | None,
    centre_half_width_deg: float = 10.0,
    default_hfov_deg: float = DEFAULT_HFOV_DEG,
) -> tuple[ObjectBearing, ...]:
    """Return one bearing per detection, from its box centre (same order as ``detections``)."""
    if centre_half_width_deg < 0:
        raise ConfigError(f"centre half width must be >= 0 deg, found {centre_half_width_deg}")
    model = camera if camera is not None else assumed_camera(image, default_hfov_deg)
    out = []
    for index, detection in enumerate(detections):
        x1, y1, x2, y2 = detection.box_px
        u, v = (x1 + x2) / 2.0, (y1 + y2) / 2.0  # source pixels
        if model is None:
            out.append(ObjectBearing(detection.label, index, math.nan, math.nan, None))
            continue
        if model.width > 0 and model.height > 0 and image.width > 0 and image.height > 0:
            # CameraInfo for another resolution than the image (a downscaled stream)
            u, v = u * model.width / image.width, v * model.height / image.height
        bearing = model.bearing(u, v)
        if camera is None and image.height <= 0:  # no height: the vertical angle is unknown
            bearing = Bearing(bearing.azimuth_deg, math.nan)
        out.append(
            ObjectBearing(
                detection.label,
                index,
                bearing.azimuth_deg,
                bearing.elevation_deg,
                bearing.side(centre_half_width_deg),
            )
        )
    return tuple(out)


def ground(
    parsed: Parsed,
    transform: ImageTransform | None,
    image: ImageRef,
    camera: CameraModel | None,
    centre_half_width_deg: float = 10.0,
) -> tuple[tuple[Detection, ...], tuple[ObjectBearing, ...]]:
    """Return the detections in source pixels and one bearing per detection.

    Boxes that are empty in the source image are dropped; :func:`source_detections` returns
    them with the reason.
    """
    detections, _rejected = source_detections(parsed, transform, image)
    return detections, bearings(detections, image, camera, centre_half_width_deg)


def assumed_camera(image: ImageRef, hfov_deg: float = DEFAULT_HFOV_DEG) -> CameraModel | None:
    """Return a pinhole camera of ``hfov_deg`` for an image of known width, else None."""
    if not 0.0 < hfov_deg < 180.0:  # noqa: PLR2004 - a pinhole sees less than a half space
        raise ConfigError(f"horizontal field of view must be in (0, 180) deg, found {hfov_deg}")
    if image.width <= 0:
        return None
    focal = (image.width / 2.0) / math.tan(math.radians(hfov_deg) / 2.0)  # pixels
    cy = image.height / 2.0 if image.height > 0 else 0.0
    k = (focal, 0.0, image.width / 2.0, 0.0, focal, cy, 0.0, 0.0, 1.0)
    return CameraModel(image.width, max(image.height, 0), k, "", (), image.frame_id)


def relation_summary(detections: Sequence[Detection], found: Sequence[ObjectBearing]) -> str:
    """State where each detection is, e.g. ``"red cube on the left (32 deg)"``; "" for none.

    Bearings are matched to detections by ``detection_index``; bearings not from a box are
    stated too, after the detections.
    """
    by_index = {b.detection_index: b for b in found if b.detection_index >= 0}
    parts = []
    for index, detection in enumerate(detections):
        bearing = by_index.get(index)
        name = detection.label or "object"
        parts.append(f"{name} {_where(bearing)}")
    parts.extend(f"{b.label or 'object'} {_where(b)}" for b in found if b.detection_index < 0)
    return "; ".join(parts)


def _where(bearing: ObjectBearing | None) -> str:
    if bearing is None or bearing.side is None or math.isnan(bearing.azimuth_deg):
        return f"({UNKNOWN_SIDE_TEXT})"
    degrees = abs(bearing.azimuth_deg)
    if bearing.side is Side.LEFT:
        return f"on the left ({degrees:.0f} deg)"
    if bearing.side is Side.RIGHT:
        return f"on the right ({degrees:.0f} deg)"
    if round(degrees) == 0:
        return "in the centre (0 deg)"
    towards = "left" if bearing.azimuth_deg > 0 else "right"
    return f"in the centre ({degrees:.0f} deg {towards})"


def _clamp(box: Sequence[float], image: ImageRef) -> tuple[float, float, float, float]:
    """Clamp a source-pixel box to the image when its size is known."""
    x1, y1, x2, y2 = (float(v) for v in box)
    if image.width > 0:
        x1, x2 = min(max(x1, 0.0), image.width), min(max(x2, 0.0), image.width)
    if image.height > 0:
        y1, y2 = min(max(y1, 0.0), image.height), min(max(y2, 0.0), image.height)
    return x1, y1, x2, y2


def _fmt_box(box: Sequence[float]) -> str:
    return "(" + ", ".join(f"{v:.1f}" for v in box) + ")"
