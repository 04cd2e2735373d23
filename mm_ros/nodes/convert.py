"""Core values and codec field tuples → message field dicts for ``bus.msg(...)`` factories."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mm_ros.core.answers import AnswerValue, Detection, ImageRef, ObjectBearing
from mm_ros.core.sensors import Side

if TYPE_CHECKING:
    from mm_ros.core.audio import Mgonzs13Audio, RosDriversAudio
    from mm_ros.core.camera import CameraInfoFields
    from mm_ros.core.images import ImageFields
    from mm_ros.core.imu import ImuFields

NS = 1_000_000_000


def stamp(stamp_ns: int) -> dict[str, int]:
    """Return a ``builtin_interfaces/Time`` as a dict."""
    return {"sec": stamp_ns // NS, "nanosec": stamp_ns % NS}


def header(stamp_ns: int, frame_id: str) -> dict[str, Any]:
    """Return a ``std_msgs/Header`` as a dict."""
    return {"stamp": stamp(stamp_ns), "frame_id": frame_id}


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


# -- answers ------------------------------------------------------------------------------

# mm_ros/msg/Bearing SIDE_* codes; None (no camera geometry, no image width) is SIDE_UNKNOWN
SIDE_UNKNOWN = 0
SIDE_CODES = {Side.LEFT: 1, Side.CENTRE: 2, Side.RIGHT: 3}
SIDES = {code: side for side, code in SIDE_CODES.items()}


def detections(value: AnswerValue) -> dict[str, Any]:
    """Return the answer's boxes as ``vision_msgs/Detection2DArray`` fields (vision_msgs 4.x).

    The header (and each detection's) is the source image's, so the boxes line up with it.
    """
    image = value.image
    image_header = header(image.stamp_ns, image.frame_id) if image else header(0, "")
    out = []
    for detection in value.detections:
        x1, y1, x2, y2 = detection.box_px
        out.append(
            {
                "header": image_header,
                "results": [
                    {"hypothesis": {"class_id": detection.label, "score": detection.score}}
                ],
                "bbox": {
                    "center": {"position": {"x": (x1 + x2) / 2, "y": (y1 + y2) / 2}},
                    "size_x": x2 - x1,
                    "size_y": y2 - y1,
                },
            }
        )
    return {"header": image_header, "detections": out}


def answer(value: AnswerValue) -> dict[str, Any]:
    """Return ``mm_ros/msg/Answer`` fields.

    Not carried by the message: the source image's size and ``rejected_boxes`` (the raw text
    keeps what the model wrote).
    """
    return {
        "header": header(value.stamp_ns, value.frame_id),
        "question": value.question,
        "task": value.task,
        "text": value.text,
        "raw_text": value.raw_text,
        "detections": detections(value),
        "bearings": [
            {
                "label": b.label,
                "detection_index": b.detection_index,
                "azimuth_deg": b.azimuth_deg,
                "elevation_deg": b.elevation_deg,
                "side": SIDE_UNKNOWN if b.side is None else SIDE_CODES[b.side],
            }
            for b in value.bearings
        ],
        "modalities": list(value.modalities),
        "window_start": stamp(value.window_start_ns),
        "latency": [{"stage": stage, "duration_s": s} for stage, s in value.latency_s],
        "prompt_tokens": value.prompt_tokens,
        "generated_tokens": value.generated_tokens,
        "model_id": value.model_id,
        "error": value.error,
        "warnings": list(value.warnings),
        "unknown_words": list(value.unknown_words),
    }


def _ns(stamp: Any) -> int:
    return int(stamp.sec) * NS + int(stamp.nanosec)


def answer_value(message: Any) -> AnswerValue:
    """Return the ``AnswerValue`` in an ``mm_ros/msg/Answer`` (inverse of :func:`answer`).

    The image's size is not in the message: ``image`` has width and height 0 (unknown); it is
    None when the detections' header is empty (stamp 0, no frame).
    """
    boxes = message.detections
    image_ns = _ns(boxes.header.stamp)
    image = (
        ImageRef(image_ns, str(boxes.header.frame_id), 0, 0)
        if image_ns or boxes.header.frame_id
        else None
    )
    found = []
    for item in boxes.detections:
        centre, half_w, half_h = (
            item.bbox.center.position,
            item.bbox.size_x / 2,
            item.bbox.size_y / 2,
        )
        hypothesis = item.results[0].hypothesis if len(item.results) else None
        found.append(
            Detection(
                str(hypothesis.class_id) if hypothesis else "",
                (
                    float(centre.x - half_w),
                    float(centre.y - half_h),
                    float(centre.x + half_w),
                    float(centre.y + half_h),
                ),
                float(hypothesis.score) if hypothesis else 1.0,
            )
        )
    return AnswerValue(
        question=str(message.question),
        task=str(message.task),
        text=str(message.text),
        raw_text=str(message.raw_text),
        detections=tuple(found),
        bearings=tuple(
            ObjectBearing(
                str(b.label),
                int(b.detection_index),
                float(b.azimuth_deg),
                float(b.elevation_deg),
                SIDES.get(int(b.side)),
            )
            for b in message.bearings
        ),
        image=image,
        modalities=tuple(str(m) for m in message.modalities),
        stamp_ns=_ns(message.header.stamp),
        frame_id=str(message.header.frame_id),
        window_start_ns=_ns(message.window_start),
        latency_s=tuple((str(x.stage), float(x.duration_s)) for x in message.latency),
        prompt_tokens=int(message.prompt_tokens),
        generated_tokens=int(message.generated_tokens),
        model_id=str(message.model_id),
        error=str(message.error),
        warnings=tuple(str(w) for w in message.warnings),
        unknown_words=tuple(str(w) for w in message.unknown_words),
    )
