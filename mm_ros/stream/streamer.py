"""Stream a headset's camera, microphone and IMU to a robot over Zenoh, without ROS 2.

Messages are the standard ones (``CompressedImage`` or ``Image``, ``AudioDataStamped`` +
``AudioInfo``, ``Imu``) on configurable topics, so robot-side nodes need nothing special.
Stamps are converted to the robot's clock once an estimate exists (`ClockClient`); the
bandwidth budget drops or shrinks frames, never audio or IMU.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from mm_ros.bus.naming import LATCHED, RELIABLE, SENSOR_DATA
from mm_ros.bus.protocol import BusConfig, BusTimeoutError
from mm_ros.core.audio import SampleFormat, encode_audio_ros_drivers, pcm_to_float
from mm_ros.core.bandwidth import BandwidthConfig, BandwidthController
from mm_ros.core.camera import encode_camera_info
from mm_ros.core.errors import ConfigError
from mm_ros.core.images import encode_compressed_image, encode_image
from mm_ros.core.imu import encode_imu
from mm_ros.core.sensors import AudioChunk, Frame, ImuSample, PixelFormat
from mm_ros.nodes import convert
from mm_ros.stream.clock import REQUEST_TOPIC, RESPONSE_TOPIC, ClockClient

if TYPE_CHECKING:
    from collections.abc import Callable

    from numpy.typing import NDArray

    from mm_ros.bus.protocol import Bus
    from mm_ros.core.clock_sync import ClockEstimate
    from mm_ros.core.sensors import CameraModel

log = logging.getLogger("mm_ros.stream")
# Bytes a message carries besides its data (header, sizes, CDR alignment): charged to the budget.
IMAGE_OVERHEAD_BYTES = 96
AUDIO_OVERHEAD_BYTES = 48
IMU_MESSAGE_BYTES = 352  # sensor_msgs/Imu: header + 37 float64
CAMERA_INFO_BYTES = 400  # sensor_msgs/CameraInfo: header, 5 + 9 + 9 + 12 float64, ROI


@dataclass(frozen=True)
class StreamConfig:
    """Where and how a headset streams; every topic is relative to ``namespace``."""

    connect: str = "tcp/127.0.0.1:7447"  # the robot's router
    node_name: str = "headset"
    # Zenoh shared memory only helps a process on the robot's own host; a headset is another
    # host, and a benchmark that emulates one must not let frames bypass the link through it.
    shared_memory: bool = False
    namespace: str = "/"
    transport: str = "compressed"  # compressed: JPEG CompressedImage; raw: rgb8 Image
    image_topic: str = "headset/camera/image_raw/compressed"
    camera_info_topic: str = "headset/camera/camera_info"  # with each frame, given a camera
    audio_topic: str = "headset/audio/audio_stamped"
    audio_info_topic: str = "headset/audio/audio_info"
    imu_topic: str = "headset/imu/data"
    camera_frame_id: str = "headset_camera"
    audio_frame_id: str = "headset_microphone"
    imu_frame_id: str = "headset_imu"
    sample_format: str = "S16LE"  # PCM on the wire
    jpeg_quality: int = 80  # start (and, without a budget, fixed) quality
    budget_mbps: float = 0.0  # everything sent, Mbit/s; 0: no limit
    max_fps: float = 30.0
    time_sync: bool = True  # False: stamps go out in the headset's own clock
    time_sync_period_s: float = 0.25  # 4 exchanges/s: a fit over 16 s of history
    # Wait this long at start for a first estimate, so stamps do not jump once it arrives;
    # without an answer (no time server), stamps go out in headset time, and diagnostics say so.
    time_sync_wait_s: float = 2.0
    time_request_topic: str = REQUEST_TOPIC
    time_response_topic: str = RESPONSE_TOPIC
    diagnostics_period_s: float = 1.0
    diagnostics_topic: str = "/diagnostics"

    def __post_init__(self) -> None:
        if self.transport not in ("compressed", "raw"):
            raise ConfigError(f"transport must be compressed or raw, found {self.transport!r}")
        if self.sample_format not in SampleFormat.__members__:
            raise ConfigError(f"sample_format must be one of {sorted(SampleFormat.__members__)}")

    def bandwidth(self) -> BandwidthConfig:
        """Return the budget settings for the frame controller."""
        quality = self.jpeg_quality
        return BandwidthConfig(
            self.budget_mbps, self.max_fps, quality, min(20, quality), max(95, quality)
        )


class HeadsetStreamer:
    """A Zenoh client-mode node that publishes a headset's sensors to a robot.

    ``send_*`` may be called from any thread (one lock serialises budget and publishing);
    each returns at once. Stamps are ns in the headset clock (``clock_ns``, default wall time);
    omitted stamps mean "now". Given ``camera`` (intrinsics), a ``CameraInfo`` with the frame's
    stamp follows every frame sent.
    """

    def __init__(
        self,
        connect: str | None = None,
        *,
        clock_ns: Callable[[], int] = time.time_ns,
        bus: Bus | None = None,
        camera: CameraModel | None = None,
        **settings: Any,
    ) -> None:
        known = {f.name for f in fields(StreamConfig)}
        unknown = sorted(set(settings) - known)
        if unknown:
            raise ConfigError(f"unknown HeadsetStreamer settings {unknown}; known: {sorted(known)}")
        config = replace(StreamConfig(), **settings)
        if connect is not None:
            config = replace(config, connect=connect)
        self.config = c = config
        self._clock_ns = clock_ns
        if bus is None:
            from mm_ros.bus.zenoh_bus import ZenohBus

            bus = ZenohBus(
                c.node_name,
                namespace=c.namespace,
                config=BusConfig(
                    connect=(c.connect,), mode="client", shared_memory=c.shared_memory
                ),
            )
        self.bus = bus
        self._lock = threading.Lock()
        self._budget = BandwidthController(c.bandwidth(), clock_ns())
        image_type = "CompressedImage" if c.transport == "compressed" else "Image"
        self._make = {t: bus.msg(f"sensor_msgs/msg/{t}") for t in (image_type, "Imu")}
        self._image_type = image_type
        self._make_audio = bus.msg("audio_common_msgs/msg/AudioDataStamped")
        self._make_info = bus.msg("audio_common_msgs/msg/AudioInfo")
        self._image = bus.create_publisher(
            c.image_topic, f"sensor_msgs/msg/{image_type}", SENSOR_DATA
        )
        self._audio = bus.create_publisher(
            c.audio_topic, "audio_common_msgs/msg/AudioDataStamped", SENSOR_DATA
        )
        self._audio_info = bus.create_publisher(
            c.audio_info_topic, "audio_common_msgs/msg/AudioInfo", LATCHED
        )
        self._imu = bus.create_publisher(c.imu_topic, "sensor_msgs/msg/Imu", SENSOR_DATA)
        self._camera_info = encode_camera_info(camera) if camera is not None else None
        self._info_pub = (
            bus.create_publisher(c.camera_info_topic, "sensor_msgs/msg/CameraInfo", SENSOR_DATA)
            if camera is not None
            else None
        )
        self._make_camera_info = bus.msg("sensor_msgs/msg/CameraInfo")
        self._info_sent: tuple[int, int] | None = None
        self._last_stamp: dict[str, int] = {}  # per stream, to keep stamps increasing
        self._stamp_lock = threading.Lock()
        self.clock = (
            ClockClient(
                bus,
                f"{bus.node_name}-{id(self):x}",
                clock_ns,
                c.time_sync_period_s,
                c.time_request_topic,
                c.time_response_topic,
            )
            if c.time_sync
            else None
        )
        self._diag = bus.create_publisher(
            c.diagnostics_topic, "diagnostic_msgs/msg/DiagnosticArray", RELIABLE
        )
        self._make_diag = bus.msg("diagnostic_msgs/msg/DiagnosticArray")
        self._timer = bus.create_timer(c.diagnostics_period_s, self.publish_diagnostics)
        self.sent = {"image": 0, "audio": 0, "imu": 0}
        if self.clock is not None and c.time_sync_wait_s > 0:
            try:
                self.wait_for_clock(c.time_sync_wait_s, min_samples=1)
            except BusTimeoutError as err:
                log.warning("%s; sending stamps in headset time until one answers", err)

    # -- clock -------------------------------------------------------------------------------

    def clock_estimate(self) -> ClockEstimate | None:
        """Robot clock as a function of the headset clock; None before the first exchange."""
        return self.clock.estimate() if self.clock is not None else None

    def wait_for_clock(self, timeout_s: float = 5.0, min_samples: int = 4) -> ClockEstimate:
        """Block until ``min_samples`` exchanges are in (`BusTimeoutError` if none answers)."""
        from mm_ros.bus.zenoh_bus import wait_until

        clock = self.clock
        if clock is None:
            raise ConfigError("wait_for_clock needs time_sync=True")
        try:
            wait_until(
                lambda: clock.estimate() is not None and len(clock.filter) >= min_samples,
                timeout_s,
                "clock exchanges",
            )
        except BusTimeoutError as err:
            raise BusTimeoutError(
                f"no clock estimate after {timeout_s} s: is a time server answering on "
                f"{self.config.time_request_topic}? (mm-ros run time_server on the robot)"
            ) from err
        estimate = clock.estimate()
        assert estimate is not None  # the wait saw one; estimates are never withdrawn
        return estimate

    def robot_stamp(self, local_ns: int | None) -> int:
        """Convert a headset stamp (None: now) to the robot clock when an estimate exists."""
        local = self._clock_ns() if local_ns is None else int(local_ns)
        estimate = self.clock_estimate()
        return estimate.to_remote(local) if estimate is not None else local

    def _stream_stamp(self, stream: str, local_ns: int | None) -> int:
        """Robot stamp for one stream, never at or before that stream's previous one.

        A new estimate may move the conversion back by up to its change (sub-ms once settled);
        robot-side windows need increasing stamps, so such a stamp is raised by that much.
        """
        with self._stamp_lock:
            stamp = max(self.robot_stamp(local_ns), self._last_stamp.get(stream, -1) + 1)
            self._last_stamp[stream] = stamp
            return stamp

    # -- sensors -----------------------------------------------------------------------------

    def send_frame(self, rgb: NDArray[np.uint8], stamp_ns: int | None = None) -> bool:
        """Publish an (H, W, 3) uint8 RGB frame; False when the budget dropped it."""
        c, now = self.config, self._clock_ns()
        frame = Frame(
            self._stream_stamp("image", stamp_ns), c.camera_frame_id, rgb, PixelFormat.RGB8
        )
        with self._lock:
            if not self._budget.want_frame(now):
                return False
            if self._image_type == "CompressedImage":
                data = encode_compressed_image(frame, "jpeg", self._budget.quality)
                fields_ = convert.compressed_image(data, "jpeg", frame.stamp_ns, c.camera_frame_id)
            else:
                encoded = encode_image(frame)
                data = encoded.data
                fields_ = convert.image(encoded, frame.stamp_ns, c.camera_frame_id)
            info_bytes = CAMERA_INFO_BYTES if self._camera_info is not None else 0
            if not self._budget.offer_frame(len(data) + IMAGE_OVERHEAD_BYTES + info_bytes, now):
                return False
            self._image.publish(self._make[self._image_type](**fields_))
            if self._info_pub is not None and self._camera_info is not None:
                info = convert.camera_info(self._camera_info, frame.stamp_ns, c.camera_frame_id)
                self._info_pub.publish(self._make_camera_info(**info))
            self.sent["image"] += 1
        return True

    def send_audio(self, samples: NDArray[Any], rate_hz: int, stamp_ns: int | None = None) -> None:
        """Publish (N,) or (N, C) samples (float in [-1, 1] or integer PCM) stamped at sample 0.

        Without a stamp the chunk is taken as just captured: sample 0 is its duration ago.
        """
        c = self.config
        block = pcm_to_float(np.asarray(samples))
        block = block.reshape(-1, 1) if block.ndim == 1 else block
        if stamp_ns is None:
            stamp_ns = self._clock_ns() - block.shape[0] * 1_000_000_000 // int(rate_hz)
        chunk = AudioChunk(self._stream_stamp("audio", stamp_ns), int(rate_hz), block)
        stamped, info = convert.audio_ros_drivers(
            encode_audio_ros_drivers(chunk, SampleFormat[c.sample_format]),
            chunk.stamp_ns,
            c.audio_frame_id,
        )
        with self._lock:
            self._budget.charge_small(
                len(stamped["audio"]["data"]) + AUDIO_OVERHEAD_BYTES, self._clock_ns()
            )
            if self._info_sent != (chunk.rate_hz, block.shape[1]):
                self._audio_info.publish(self._make_info(**info))
                self._info_sent = (chunk.rate_hz, block.shape[1])
            self._audio.publish(self._make_audio(**stamped))
            self.sent["audio"] += 1

    def send_imu(
        self,
        accel: tuple[float, float, float] | NDArray[Any] | None,
        gyro: tuple[float, float, float] | NDArray[Any] | None,
        stamp_ns: int | None = None,
        orientation_xyzw: tuple[float, float, float, float] | None = None,
    ) -> None:
        """Publish one IMU reading: accel m/s^2 and gyro rad/s in the IMU frame (None: absent)."""

        def vec(v: Any) -> tuple[float, float, float] | None:
            return None if v is None else (float(v[0]), float(v[1]), float(v[2]))

        sample = ImuSample(
            self._stream_stamp("imu", stamp_ns),
            self.config.imu_frame_id,
            vec(accel),
            vec(gyro),
            orientation_xyzw,
        )
        fields_ = convert.imu(encode_imu(sample), sample.stamp_ns, sample.frame_id)
        with self._lock:
            self._budget.charge_small(IMU_MESSAGE_BYTES, self._clock_ns())
            self._imu.publish(self._make["Imu"](**fields_))
            self.sent["imu"] += 1

    # -- diagnostics and life ----------------------------------------------------------------

    def status(self) -> dict[str, str]:
        """Figures for diagnostics: clock estimate and uncertainty, budget, counts."""
        values = {f"{k}_sent": str(v) for k, v in self.sent.items()}
        with self._lock:
            b = self._budget
            values |= {
                "jpeg_quality": str(b.quality),
                "frames_dropped": str(b.frames_dropped),
                "budget_mbps": str(self.config.budget_mbps),
            }
        estimate = self.clock_estimate()
        if estimate is not None:
            values |= {
                "clock_offset_ns": str(round(estimate.offset_at(self._clock_ns()))),
                "clock_drift_ppm": f"{estimate.drift_ppm:.3f}",
                "clock_uncertainty_ns": str(round(estimate.uncertainty_ns)),
                "clock_samples": str(estimate.samples),
            }
        return values

    def publish_diagnostics(self) -> None:
        """Publish one DiagnosticArray entry for this headset."""
        values = self.status()
        synced = "clock_offset_ns" in values or not self.config.time_sync
        now = self.bus.now_ns()
        self._diag.publish(
            self._make_diag(
                header=convert.header(now, ""),
                status=[
                    {
                        "level": 0 if synced else 1,
                        "name": f"{self.bus.node_name}: headset stream",
                        "message": "streaming"
                        if synced
                        else "no clock estimate yet: stamps in headset time",
                        "hardware_id": self.config.node_name,
                        "values": [{"key": k, "value": v} for k, v in values.items()],
                    }
                ],
            )
        )

    def close(self) -> None:
        """Close the connection (idempotent)."""
        self.bus.close()

    def __enter__(self) -> HeadsetStreamer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
