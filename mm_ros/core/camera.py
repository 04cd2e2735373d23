"""Decode ``sensor_msgs/CameraInfo`` fields into a `CameraModel` and encode one back."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, NamedTuple

from mm_ros.core.errors import InvalidValueError, SizeMismatchError, UnsupportedEncodingError
from mm_ros.core.images import check_size
from mm_ros.core.sensors import CameraModel

if TYPE_CHECKING:
    from collections.abc import Sequence

# Coefficient counts of the models ROS documents (image_geometry / camera_calibration_parsers);
# "" is what uncalibrated drivers send.
DISTORTION_COEFFICIENTS = {
    "plumb_bob": (5,),
    "rational_polynomial": (8, 12, 14),  # 8 in ROS; 12/14 are OpenCV's thin-prism/tilted forms
    "equidistant": (4,),
    "": (0, 5),
}


def decode_camera_info(
    width: int,
    height: int,
    distortion_model: str,
    d: Sequence[float],
    k: Sequence[float],
    *,
    frame_id: str = "",
) -> CameraModel:
    """Validate the fields of a ``sensor_msgs/CameraInfo`` and return a `CameraModel`."""
    check_size("CameraInfo", width, height)
    if distortion_model not in DISTORTION_COEFFICIENTS:
        raise UnsupportedEncodingError(
            f"CameraInfo distortion_model {distortion_model!r} is not one of "
            f"{sorted(DISTORTION_COEFFICIENTS)}",
            field="distortion_model",
            expected=sorted(DISTORTION_COEFFICIENTS),
            found=distortion_model,
        )
    counts = DISTORTION_COEFFICIENTS[distortion_model]
    if len(d) not in counts:
        raise SizeMismatchError(
            f"CameraInfo d has {len(d)} coefficients, {distortion_model or 'none'} needs "
            f"{' or '.join(map(str, counts))}",
            field="d",
            expected=counts,
            found=len(d),
        )
    if len(k) != 9:  # noqa: PLR2004 - 3x3
        raise SizeMismatchError(
            f"CameraInfo k has {len(k)} values != 9", field="k", expected=9, found=len(k)
        )
    values = [float(v) for v in (*k, *d)]
    if not all(math.isfinite(v) for v in values):
        raise InvalidValueError(
            "CameraInfo k/d contain NaN or inf", field="k", expected="finite", found=values
        )
    fx, fy = values[0], values[4]
    if fx <= 0 or fy <= 0:
        raise InvalidValueError(
            f"CameraInfo focal lengths fx={fx} fy={fy} must be > 0 (uncalibrated camera?)",
            field="k",
            expected="k[0] > 0 and k[4] > 0",
            found=(fx, fy),
        )
    k9 = tuple(values[:9])
    return CameraModel(
        width=width,
        height=height,
        k=(k9[0], k9[1], k9[2], k9[3], k9[4], k9[5], k9[6], k9[7], k9[8]),
        distortion_model=distortion_model,
        d=tuple(values[9:]),
        frame_id=frame_id,
    )


class CameraInfoFields(NamedTuple):
    """Field values of a ``sensor_msgs/CameraInfo`` (r identity, p = [K | 0], no binning/roi)."""

    width: int
    height: int
    distortion_model: str
    d: tuple[float, ...]
    k: tuple[float, ...]
    r: tuple[float, ...]
    p: tuple[float, ...]


def encode_camera_info(camera: CameraModel) -> CameraInfoFields:
    """Return the ``sensor_msgs/CameraInfo`` fields of a monocular camera."""
    k = camera.k
    return CameraInfoFields(
        width=camera.width,
        height=camera.height,
        distortion_model=camera.distortion_model or "plumb_bob",
        d=camera.d or (0.0,) * 5,
        k=k,
        r=(1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0),
        p=(k[0], k[1], k[2], 0.0, k[3], k[4], k[5], 0.0, k[6], k[7], k[8], 0.0),
    )
