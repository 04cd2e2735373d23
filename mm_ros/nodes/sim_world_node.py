"""``sim_world``: publish the synthetic egocentric world as a robot's or headset's sensors.

Camera (640x480 rgb8 @30 Hz) + CameraInfo, IMU @200 Hz, 16 kHz audio in 20 ms chunks (layout
chosen by ``audio_layout``) and per-frame ground truth as JSON on ``~/ground_truth``. Stamps
come from the node clock, so with ``use_sim_time`` the world follows ``/clock``.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mm_ros.bus.naming import LATCHED, RELIABLE, SENSOR_DATA
from mm_ros.core.audio import encode_audio_mgonzs13, encode_audio_ros_drivers
from mm_ros.core.camera import encode_camera_info
from mm_ros.core.errors import ConfigError
from mm_ros.core.images import encode_image
from mm_ros.core.imu import encode_imu
from mm_ros.nodes import convert
from mm_ros.nodes.params import AUDIO_LAYOUTS, check_choice, declare_config, param
from mm_ros.nodes.runner import run_node
from mm_ros.sim.world import World, WorldConfig

if TYPE_CHECKING:
    from mm_ros.bus.protocol import Bus
    from mm_ros.sim.world import SimFrame, SimStep


DESCRIPTION = __doc__ or ""
# AudioInfo is latched, but a reliable KEEP_LAST sample can still be dropped under congestion
# (rmw_zenoh's rule) and a bag replays it once: repeat it every second of audio, so a listener
# or a replay that lost it decodes the audio again within a second.
AUDIO_INFO_PERIOD_NS = 1_000_000_000
MAX_TICK_S = 0.1  # slower ticks would batch IMU samples into visible bursts


@dataclass(frozen=True)
class SimWorldConfig:
    """Parameters of ``sim_world``."""

    seed: int = param(0, "episode seed; the same seed gives the same bytes")
    episode_s: float = param(60.0, "episode length; the next episode (seed + 1) follows")
    loop: bool = param(True, "start the next episode when one ends (else stop publishing)")
    tick_s: float = param(0.005, "how often due samples are published (IMU is 200 Hz)")
    image_topic: str = param("camera/image_raw", "sensor_msgs/Image, rgb8")
    camera_info_topic: str = param("camera/camera_info", "sensor_msgs/CameraInfo")
    imu_topic: str = param("imu/data", "sensor_msgs/Imu")
    audio_layout: str = param("ros-drivers", "audio message layout: ros-drivers or mgonzs13")
    audio_topic: str = param("audio/audio_stamped", "AudioDataStamped or AudioStamped")
    audio_info_topic: str = param("audio/audio_info", "AudioInfo, latched (ros-drivers only)")
    ground_truth_topic: str = param("~/ground_truth", "std_msgs/String with per-frame JSON")

    def __post_init__(self) -> None:
        check_choice("audio_layout", self.audio_layout, AUDIO_LAYOUTS)
        if not 0 < self.tick_s <= MAX_TICK_S:
            raise ConfigError(f"tick_s must be in (0, 0.1], found {self.tick_s}")


class SimWorldNode:
    """Steps the world on a timer and publishes what became due."""

    name = "sim_world"
    description = DESCRIPTION
    Config = SimWorldConfig

    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self.config = declare_config(bus, SimWorldConfig)
        c = self.config
        bus.set_audio_layout(c.audio_layout)
        audio_type = (
            "audio_common_msgs/msg/AudioDataStamped"
            if c.audio_layout == "ros-drivers"
            else "audio_common_msgs/msg/AudioStamped"
        )
        self._image = bus.create_publisher(c.image_topic, "sensor_msgs/msg/Image", SENSOR_DATA)
        self._info = bus.create_publisher(
            c.camera_info_topic, "sensor_msgs/msg/CameraInfo", SENSOR_DATA
        )
        self._imu = bus.create_publisher(c.imu_topic, "sensor_msgs/msg/Imu", SENSOR_DATA)
        self._audio = bus.create_publisher(c.audio_topic, audio_type, SENSOR_DATA)
        self._audio_info = (
            bus.create_publisher(c.audio_info_topic, "audio_common_msgs/msg/AudioInfo", LATCHED)
            if c.audio_layout == "ros-drivers"
            else None
        )
        self._truth = bus.create_publisher(c.ground_truth_topic, "std_msgs/msg/String", RELIABLE)
        self._make = {
            t: bus.msg(t)
            for t in (
                "sensor_msgs/msg/Image",
                "sensor_msgs/msg/CameraInfo",
                "sensor_msgs/msg/Imu",
                audio_type,
                "std_msgs/msg/String",
            )
        }
        self._audio_type = audio_type
        self.world: World | None = World(
            WorldConfig(seed=c.seed, duration_s=c.episode_s), start_ns=bus.now_ns()
        )
        self.published: dict[str, int] = {"image": 0, "imu": 0, "audio": 0}
        self._info_stamp_ns: int | None = None  # stamp of the chunk the last AudioInfo preceded
        self._timer = bus.create_timer(c.tick_s, self._tick)

    def _tick(self) -> None:
        world = self.world
        if world is None:
            return
        if world.finished:
            self.world = world.next_episode() if self.config.loop else None
            return
        self._publish(world, world.step(self.bus.now_ns()))

    def _publish(self, world: World, step: SimStep) -> None:
        if step.frames:  # 30 Hz of a 200 Hz tick: CameraInfo is built only when a frame is due
            self._publish_frames(world, step.frames)
        for sample in step.imu:
            self._imu.publish(
                self._make["sensor_msgs/msg/Imu"](
                    **convert.imu(
                        encode_imu(sample, world.imu_variance), sample.stamp_ns, sample.frame_id
                    )
                )
            )
            self.published["imu"] += 1
        for chunk in step.audio:
            self._publish_audio(chunk)
            self.published["audio"] += 1

    def _publish_frames(self, world: World, frames: tuple[SimFrame, ...]) -> None:
        camera = world.config.camera_frame_id
        info = encode_camera_info(world.camera)
        for sim in frames:
            stamp = sim.frame.stamp_ns
            self._image.publish(
                self._make["sensor_msgs/msg/Image"](
                    **convert.image(encode_image(sim.frame), stamp, camera)
                )
            )
            self._info.publish(
                self._make["sensor_msgs/msg/CameraInfo"](**convert.camera_info(info, stamp, camera))
            )
            self._truth.publish(self._make["std_msgs/msg/String"](data=sim.truth.to_json()))
            self.published["image"] += 1

    def _publish_audio(self, chunk: Any) -> None:
        frame = "sim_microphone"
        if self._audio_info is not None:
            stamped, info = convert.audio_ros_drivers(
                encode_audio_ros_drivers(chunk), chunk.stamp_ns, frame
            )
            last = self._info_stamp_ns
            if last is None or chunk.stamp_ns - last >= AUDIO_INFO_PERIOD_NS:
                self._audio_info.publish(info)
                self._info_stamp_ns = chunk.stamp_ns
            self._audio.publish(self._make[self._audio_type](**stamped))
        else:
            self._audio.publish(
                self._make[self._audio_type](
                    **convert.audio_mgonzs13(encode_audio_mgonzs13(chunk), chunk.stamp_ns, frame)
                )
            )

    def close(self) -> None:
        """Stop stepping."""
        self._timer.cancel()


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``sim_world``."""
    return run_node(SimWorldNode, list(sys.argv[1:] if argv is None else argv))
