"""``camera``: capture with OpenCV and publish Image and/or CompressedImage plus CameraInfo.

The source is a V4L2 device (index or /dev path), a video file, an RTSP/HTTP URL or a folder
of images (field tests with recordings). Frames are stamped at capture; a dropped stream is
reopened with the reason logged.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from mm_ros.bus.naming import SENSOR_DATA
from mm_ros.core.camera import encode_camera_info
from mm_ros.core.camera_yaml import camera_model_from_yaml
from mm_ros.core.errors import ConfigError
from mm_ros.core.images import encode_compressed_image, encode_image
from mm_ros.drivers.camera_source import CameraSource, CameraSourceConfig, list_devices
from mm_ros.nodes import convert
from mm_ros.nodes.params import check_choice, declare_config, param
from mm_ros.nodes.runner import run_node

if TYPE_CHECKING:
    from mm_ros.bus.protocol import Bus
    from mm_ros.core.sensors import CameraModel, Frame

DESCRIPTION = __doc__ or ""
log = logging.getLogger("mm_ros.camera")


@dataclass(frozen=True)
class CameraConfig:
    """Parameters of ``camera``."""

    source: str = param(
        "0", "device index, /dev/videoN, video file, rtsp:// or http:// URL, folder"
    )
    width: int = param(0, "capture width (devices); 0: the device's current mode")
    height: int = param(0, "capture height (devices); 0: the device's current mode")
    fps: float = param(0.0, "device rate, or playback rate of a file/folder (0: file's own)")
    fourcc: str = param("", "device pixel format, e.g. MJPG or YUYV; empty: driver's choice")
    loop: bool = param(False, "files and folders: start again at the end")
    reconnect_s: float = param(1.0, "wait before reopening a dropped source")
    list_devices: bool = param(False, "log the V4L2 devices at start")
    transport: str = param("raw", "raw: Image; compressed: CompressedImage (JPEG); both")
    jpeg_quality: int = param(80, "JPEG quality 1..100 for the compressed topic")
    image_topic: str = param("camera/image_raw", "sensor_msgs/Image, rgb8")
    compressed_topic: str = param("camera/image_raw/compressed", "sensor_msgs/CompressedImage")
    camera_info_topic: str = param("camera/camera_info", "sensor_msgs/CameraInfo")
    camera_info_url: str = param("", "calibration YAML (ROS camera_info format); empty: none")
    frame_id: str = param("camera", "header frame_id")

    def __post_init__(self) -> None:
        check_choice("transport", self.transport, ("raw", "compressed", "both"))
        if not 1 <= self.jpeg_quality <= 100:  # noqa: PLR2004
            raise ConfigError(f"jpeg_quality must be in 1..100, found {self.jpeg_quality}")

    def source_config(self) -> CameraSourceConfig:
        """Return the capture settings these parameters describe."""
        return CameraSourceConfig(
            self.source,
            self.width,
            self.height,
            self.fps,
            self.fourcc,
            self.loop,
            self.reconnect_s,
            self.frame_id,
        )

    def camera_model(self) -> CameraModel | None:
        """Read ``camera_info_url`` (a path, or file:// URL), or None without one."""
        if not self.camera_info_url:
            return None
        path = Path(self.camera_info_url.removeprefix("file://"))
        try:
            doc = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError) as err:
            raise ConfigError(f"camera_info_url {path} cannot be read: {err}") from err
        return camera_model_from_yaml(doc, self.frame_id)


class CameraNode:
    """Starts the source; encodes and publishes each frame from the source's thread."""

    name = "camera"
    description = DESCRIPTION
    Config = CameraConfig

    def __init__(self, bus: Bus) -> None:
        self.config = c = declare_config(bus, CameraConfig)
        self._model = c.camera_model()
        self._raw = self._compressed = self._info = None
        if c.transport in ("raw", "both"):
            self._raw = bus.create_publisher(c.image_topic, "sensor_msgs/msg/Image", SENSOR_DATA)
        if c.transport in ("compressed", "both"):
            self._compressed = bus.create_publisher(
                c.compressed_topic, "sensor_msgs/msg/CompressedImage", SENSOR_DATA
            )
        if self._model is not None:
            self._info = bus.create_publisher(
                c.camera_info_topic, "sensor_msgs/msg/CameraInfo", SENSOR_DATA
            )
        self._make = {
            t: bus.msg(f"sensor_msgs/msg/{t}") for t in ("Image", "CompressedImage", "CameraInfo")
        }
        if c.list_devices:
            log.info("V4L2 devices: %s", list_devices() or "none")
        self.published = 0
        self._warned_size = False
        self._source = CameraSource(c.source_config())
        self._source.start(self._on_frame)
        log.info("camera %s (%s) at %.1f fps", c.source, self._source.kind.value,
                 self._source.playback_fps)  # fmt: skip

    def _on_frame(self, frame: Frame) -> None:
        c, stamp = self.config, frame.stamp_ns
        if self._raw is not None:
            self._raw.publish(
                self._make["Image"](**convert.image(encode_image(frame), stamp, c.frame_id))
            )
        if self._compressed is not None:
            data = encode_compressed_image(frame, "jpeg", c.jpeg_quality)
            fields = convert.compressed_image(data, "jpeg", stamp, c.frame_id)
            self._compressed.publish(self._make["CompressedImage"](**fields))
        if self._info is not None and self._model is not None:
            size, calibrated = (frame.width, frame.height), (self._model.width, self._model.height)
            if size != calibrated and not self._warned_size:
                self._warned_size = True
                log.warning("frames are %dx%d but the calibration is for %dx%d", *size, *calibrated)
            info = convert.camera_info(encode_camera_info(self._model), stamp, c.frame_id)
            self._info.publish(self._make["CameraInfo"](**info))
        self.published += 1

    def close(self) -> None:
        """Stop capturing."""
        self._source.stop()


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``camera``."""
    return run_node(CameraNode, list(sys.argv[1:] if argv is None else argv))
