"""Sensor subscriptions → decoded core values → time windows (the intake every consumer shares).

Callbacks only decode and store (STYLE.md point 7); a malformed message is counted by error
class, reported to the node's `DropLog` (first in full, then a count every few seconds) and
dropped, and the callback returns so the node keeps serving.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mm_ros.bus.naming import LATCHED, SENSOR_DATA, SENSOR_STREAM
from mm_ros.core.audio import (
    check_audio_info,
    decode_audio_mgonzs13,
    decode_audio_ros_drivers,
)
from mm_ros.core.camera import decode_camera_info
from mm_ros.core.errors import ConfigError, DecodeError, InvalidValueError
from mm_ros.core.freshness import require_near_clock
from mm_ros.core.health import InputCounters
from mm_ros.core.images import decode_compressed_image, decode_image
from mm_ros.core.imu import decode_imu
from mm_ros.core.intake import Intake
from mm_ros.core.windows import AudioWindow, FrameWindow, ImuWindow, SensorWindows, WindowConfig
from mm_ros.nodes.params import AUDIO_LAYOUTS, check_choice, param

if TYPE_CHECKING:
    from mm_ros.bus.protocol import Bus
    from mm_ros.core.drops import DropLog
    from mm_ros.core.sensors import CameraModel

NS = 1_000_000_000
# Audio chunks held until the first AudioInfo: the latched info and the first chunks travel on
# different topics, so at start-up the chunks often come first. 100 chunks is 1-2 s at the usual
# 10-20 ms; beyond that the oldest is rejected, so a missing info topic still shows in the logs.
PENDING_AUDIO_CHUNKS = 100


def stamp_ns(header: Any) -> int:
    """Return a header stamp in ns."""
    return int(header.stamp.sec) * NS + int(header.stamp.nanosec)


@dataclass(frozen=True)
class SensorInputsConfig:
    """Which sensor topics to take and how much history to keep."""

    image_topic: str = param("camera/image_raw", "sensor_msgs/Image (or CompressedImage)")
    image_transport: str = param("raw", "raw: sensor_msgs/Image; compressed: CompressedImage")
    camera_info_topic: str = param("camera/camera_info", "sensor_msgs/CameraInfo (bearings)")
    imu_topic: str = param("imu/data", "sensor_msgs/Imu")
    audio_topic: str = param("audio/audio_stamped", "AudioDataStamped or AudioStamped")
    audio_info_topic: str = param("audio/audio_info", "AudioInfo (ros-drivers layout only)")
    audio_layout: str = param("ros-drivers", "ros-drivers or mgonzs13")
    image_window_s: float = param(2.0, "seconds of frames kept")
    image_max_frames: int = param(60, "frames kept at most (latest-first)")
    audio_window_s: float = param(10.0, "seconds of audio kept")
    imu_window_s: float = param(5.0, "seconds of IMU kept")
    max_clock_offset_s: float = param(
        10.0,
        "a sample stamped further ahead of this node's clock (or behind it, among live data) "
        "is dropped; 0 = accept any stamp",
    )

    def __post_init__(self) -> None:
        check_choice("image_transport", self.image_transport, ("raw", "compressed"))
        check_choice("audio_layout", self.audio_layout, AUDIO_LAYOUTS)
        for name in ("image_window_s", "audio_window_s", "imu_window_s"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be > 0, found {getattr(self, name)}")


class SensorInputs:
    """Subscribes image, IMU and audio; keeps ``windows`` and per-input counters."""

    def __init__(
        self,
        bus: Bus,
        config: SensorInputsConfig,
        drops: DropLog,
        modalities: tuple[str, ...] = ("image", "imu", "audio"),
        camera_info: bool = True,
    ) -> None:
        c = config
        self.camera: CameraModel | None = None  # newest valid CameraInfo
        self.drops = drops
        self._now_ns = bus.now_ns
        self._max_offset_s = c.max_clock_offset_s
        bus.set_audio_layout(c.audio_layout)
        audio_ns = int(c.audio_window_s * NS)
        self.windows = SensorWindows(
            image=FrameWindow(WindowConfig(int(c.image_window_s * NS), c.image_max_frames)),
            audio=AudioWindow(WindowConfig(audio_ns, max_items=int(c.audio_window_s * 200))),
            imu=ImuWindow(WindowConfig(int(c.imu_window_s * NS), int(c.imu_window_s * 2000))),
        )
        image, audio, imu = self.windows.image, self.windows.audio, self.windows.imu
        if image is None or audio is None or imu is None:  # built just above; for the checker
            raise ConfigError("sensor windows missing")
        self.intakes: dict[str, Intake[Any]] = {
            # resolved names: the drop counts use the names the bus itself reports
            "image": Intake(bus.resolve(c.image_topic), image.add, drops.drop),
            "imu": Intake(bus.resolve(c.imu_topic), imu.add, drops.drop),
            "audio": Intake(bus.resolve(c.audio_topic), audio.add, drops.drop),
        }
        self._audio_info: Any = None
        self._pending_audio: deque[Any] = deque()  # chunks waiting for the first AudioInfo
        self._audio_lock = threading.Lock()  # keeps held and new chunks in arrival order
        self._audio_info_topic = bus.resolve(c.audio_info_topic)
        self._camera_info_topic = bus.resolve(c.camera_info_topic)
        if "image" in modalities:
            self._subscribe_image(bus, c)
        if camera_info:  # bearings need it also when images are encoded elsewhere
            bus.create_subscription(
                c.camera_info_topic, "sensor_msgs/msg/CameraInfo", self._on_camera_info, SENSOR_DATA
            )
        if "imu" in modalities:
            bus.create_subscription(c.imu_topic, "sensor_msgs/msg/Imu", self._on_imu, SENSOR_STREAM)
        if "audio" in modalities:
            self._subscribe_audio(bus, c)

    def _subscribe_image(self, bus: Bus, c: SensorInputsConfig) -> None:
        if c.image_transport == "raw":
            bus.create_subscription(
                c.image_topic, "sensor_msgs/msg/Image", self._on_image, SENSOR_DATA
            )
        else:
            bus.create_subscription(
                c.image_topic, "sensor_msgs/msg/CompressedImage", self._on_compressed, SENSOR_DATA
            )

    def _subscribe_audio(self, bus: Bus, c: SensorInputsConfig) -> None:
        if c.audio_layout == "ros-drivers":
            bus.create_subscription(
                c.audio_info_topic, "audio_common_msgs/msg/AudioInfo", self._on_audio_info, LATCHED
            )
            bus.create_subscription(
                c.audio_topic,
                "audio_common_msgs/msg/AudioDataStamped",
                self._on_audio_drivers,
                SENSOR_STREAM,
            )
        else:
            bus.create_subscription(
                c.audio_topic,
                "audio_common_msgs/msg/AudioStamped",
                self._on_audio_mgonzs13,
                SENSOR_STREAM,
            )

    def _stamp(self, header: Any, what: str, modality: str) -> int:
        """Return the header's stamp in ns; refuse one far from the node's clock (freshness)."""
        now, window = self._now_ns(), getattr(self.windows, modality)
        newest = window.newest_ns() if window is not None else None
        live = newest is not None and abs(now - newest) <= self._max_offset_s * NS
        return require_near_clock(stamp_ns(header), now, self._max_offset_s, what, behind_too=live)

    def _on_image(self, m: Any) -> None:
        self.intakes["image"].offer(
            lambda: decode_image(
                m.encoding,
                m.width,
                m.height,
                m.step,
                bool(m.is_bigendian),
                m.data,
                stamp_ns=self._stamp(m.header, "Image", "image"),
                frame_id=m.header.frame_id,
            )
        )

    def _on_camera_info(self, m: Any) -> None:
        try:
            self.camera = decode_camera_info(
                m.width, m.height, m.distortion_model, m.d, m.k, frame_id=m.header.frame_id
            )
        except DecodeError as err:
            self.drops.drop(
                self._camera_info_topic,
                type(err).__name__,
                f"{err} (CameraInfo ignored; bearings fall back to the image width)",
            )

    def _on_compressed(self, m: Any) -> None:
        self.intakes["image"].offer(
            lambda: decode_compressed_image(
                m.format,
                m.data,
                stamp_ns=self._stamp(m.header, "CompressedImage", "image"),
                frame_id=m.header.frame_id,
            )
        )

    def _on_imu(self, m: Any) -> None:
        o, g, a = m.orientation, m.angular_velocity, m.linear_acceleration
        self.intakes["imu"].offer(
            lambda: decode_imu(
                (o.x, o.y, o.z, o.w),
                m.orientation_covariance,
                (g.x, g.y, g.z),
                m.angular_velocity_covariance,
                (a.x, a.y, a.z),
                m.linear_acceleration_covariance,
                stamp_ns=self._stamp(m.header, "Imu", "imu"),
                frame_id=m.header.frame_id,
            )
        )

    def _on_audio_info(self, m: Any) -> None:
        try:  # the info alone: a bad one must not replace a good one (audio would stop)
            check_audio_info(m.channels, m.sample_rate, m.sample_format, m.coding_format)
        except DecodeError as err:
            kept = "keeping the previous one" if self._audio_info is not None else "none yet"
            self.drops.drop(
                self._audio_info_topic, type(err).__name__, f"{err} (AudioInfo ignored; {kept})"
            )
            return
        with self._audio_lock:
            self._audio_info = m
            held, self._pending_audio = self._pending_audio, deque()
            for chunk in held:
                self._offer_audio(chunk, m)

    def _on_audio_drivers(self, m: Any) -> None:
        with self._audio_lock:
            if self._audio_info is not None:
                self._offer_audio(m, self._audio_info)
                return
            self._pending_audio.append(m)
            if len(self._pending_audio) > PENDING_AUDIO_CHUNKS:
                self._offer_audio(self._pending_audio.popleft(), None)

    def _offer_audio(self, m: Any, info: Any) -> None:
        def decode() -> Any:
            if info is None:
                raise InvalidValueError(
                    f"audio chunk before any AudioInfo on {self._audio_info_topic}: channels, "
                    f"rate and format unknown ({PENDING_AUDIO_CHUNKS} chunks held, the oldest "
                    "dropped)",
                    field="audio_info",
                    expected="an AudioInfo on the info topic",
                    found=None,
                )
            return decode_audio_ros_drivers(
                m.audio.data,
                info.channels,
                info.sample_rate,
                info.sample_format,
                info.coding_format,
                stamp_ns=self._stamp(m.header, "AudioDataStamped", "audio"),
            )

        self.intakes["audio"].offer(decode)

    def _on_audio_mgonzs13(self, m: Any) -> None:
        d, i = m.audio.audio_data, m.audio.info
        self.intakes["audio"].offer(
            lambda: decode_audio_mgonzs13(
                i.format,
                i.channels,
                i.rate,
                float32_data=d.float32_data,
                int32_data=d.int32_data,
                int16_data=d.int16_data,
                int8_data=d.int8_data,
                uint8_data=d.uint8_data,
                stamp_ns=self._stamp(m.header, "AudioStamped", "audio"),
            )
        )

    def counters(self) -> dict[str, InputCounters]:
        """Counters of every input, with the newest stored stamp, for diagnostics."""
        windows = {
            "image": self.windows.image,
            "imu": self.windows.imu,
            "audio": self.windows.audio,
        }
        out = {}
        for name, intake in self.intakes.items():
            stats = intake.stats()
            window = windows[name]
            out[name] = InputCounters(
                stats.accepted,
                stats.rejected,
                stats.rejected_by_error,
                stats.last_error,
                window.newest_ns() if window is not None else None,
            )
        return out
