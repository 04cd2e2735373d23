"""Read a calibration in the standard ROS ``camera_info`` YAML format (camera_calibration_parsers).

The file holds ``image_width``, ``image_height``, ``camera_name``, ``distortion_model`` and
``camera_matrix``, ``distortion_coefficients`` (and ``rectification_matrix``,
``projection_matrix``, which a monocular camera derives from K) as ``{rows, cols, data}``.
The text is parsed by the caller's YAML loader (PyYAML at the edge): core sees plain dicts.
"""

from __future__ import annotations

from typing import Any

from mm_ros.core.errors import ConfigError
from mm_ros.core.sensors import CameraModel


def _matrix(doc: dict[str, Any], key: str, rows: int | None, cols: int | None) -> list[float]:
    entry = doc.get(key)
    if not isinstance(entry, dict) or "data" not in entry:
        raise ConfigError(f"camera_info YAML: {key} must be a mapping with rows, cols, data")
    data = [float(v) for v in entry["data"]]
    want_rows = int(entry.get("rows", rows or 1))
    want_cols = int(entry.get("cols", cols or len(data)))
    if (rows is not None and want_rows != rows) or (cols is not None and want_cols != cols):
        raise ConfigError(
            f"camera_info YAML: {key} is {want_rows}x{want_cols}, expected {rows}x{cols}"
        )
    if len(data) != want_rows * want_cols:
        raise ConfigError(
            f"camera_info YAML: {key} has {len(data)} values, expected {want_rows}*{want_cols}"
        )
    return data


def camera_model_from_yaml(doc: Any, frame_id: str = "") -> CameraModel:
    """Return the `CameraModel` a parsed camera_info YAML document describes."""
    if not isinstance(doc, dict):
        raise ConfigError(f"camera_info YAML must be a mapping, found {type(doc).__name__}")
    missing = [k for k in ("image_width", "image_height", "camera_matrix") if k not in doc]
    if missing:
        raise ConfigError(f"camera_info YAML lacks {', '.join(missing)}")
    k = _matrix(doc, "camera_matrix", 3, 3)
    d = _matrix(doc, "distortion_coefficients", 1, None) if "distortion_coefficients" in doc else []
    width, height = int(doc["image_width"]), int(doc["image_height"])
    if width <= 0 or height <= 0:
        raise ConfigError(f"camera_info YAML: image size must be > 0, found {width}x{height}")
    return CameraModel(
        width=width,
        height=height,
        k=(k[0], k[1], k[2], k[3], k[4], k[5], k[6], k[7], k[8]),
        distortion_model=str(doc.get("distortion_model", "plumb_bob" if d else "")),
        d=tuple(d),
        frame_id=frame_id,
    )
