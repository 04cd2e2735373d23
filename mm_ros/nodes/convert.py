"""Core values and codec field tuples → message field dicts for ``bus.msg(...)`` factories."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mm_ros.core.audio import Mgonzs13Audio, RosDriversAudio
    from mm_ros.core.camera import CameraInfoFields
    from mm_ros.core.images import ImageFields
    from mm_ros.core.imu import ImuFields

NS = 1_000_000_000


def header(stamp_ns: int, frame_id: str) -> dict[str, Any]:
    """Return a ``std_msgs/Header`` as a dict."""
    return {"stamp": {"sec": stamp_ns // NS, "nanosec": stamp_ns % NS}, "frame_id": frame_id}


def image(fields: ImageFields, stamp_ns: int, frame_id: str) -> dict[str, Any]:
    """Return ``sensor_msgs/Image`` fields."""
    return {"header": header(stamp_ns, frame_id), **fields._asdict()}


def camera_info(fields: CameraInfoFields, stamp_ns: int, frame_id: str) -> dict[str, Any]:
    """Return ``sensor_msgs/CameraInfo`` fields."""
    return {"header": header(stamp_ns, frame_id), **fields._asdict()}


def imu(fields: ImuFields, stamp_ns: int, frame_id: str) -> dict[str, Any]:
    """Return ``sensor_msgs/Imu`` fields."""
    x, y, z, w = fields.orientation_xyzw
    ax, ay, az = fields.linear_acceleration
    gx, gy, gz = fields.angular_velocity
    return {
        "header": header(stamp_ns, frame_id),
        "orientation": {"x": x, "y": y, "z": z, "w": w},
        "orientation_covariance": list(fields.orientation_covariance),
        "angular_velocity": {"x": gx, "y": gy, "z": gz},
        "angular_velocity_covariance": list(fields.angular_velocity_covariance),
        "linear_acceleration": {"x": ax, "y": ay, "z": az},
        "linear_acceleration_covariance": list(fields.linear_acceleration_covariance),
    }


def audio_ros_drivers(
    fields: RosDriversAudio, stamp_ns: int, frame_id: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Return ``AudioDataStamped`` and ``AudioInfo`` fields (ros-drivers layout)."""
    stamped = {"header": header(stamp_ns, frame_id), "audio": {"data": fields.data}}
    info = {
        "channels": fields.channels,
        "sample_rate": fields.sample_rate,
        "sample_format": fields.sample_format,
        "bitrate": fields.bitrate,
        "coding_format": fields.coding_format,
    }
    return stamped, info


def audio_mgonzs13(fields: Mgonzs13Audio, stamp_ns: int, frame_id: str) -> dict[str, Any]:
    """Return ``AudioStamped`` fields (mgonzs13 layout)."""
    values = fields._asdict()
    info = {k: values.pop(k) for k in ("format", "channels", "rate", "chunk")}
    return {"header": header(stamp_ns, frame_id), "audio": {"audio_data": values, "info": info}}


def compressed_image(data: bytes, format: str, stamp_ns: int, frame_id: str) -> dict[str, Any]:
    """Return ``sensor_msgs/CompressedImage`` fields (``format``: jpeg or png)."""
    return {"header": header(stamp_ns, frame_id), "format": format, "data": data}
