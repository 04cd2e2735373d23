"""A synthetic egocentric episode: camera frames, IMU, audio and ground truth, all from a seed.

``World(config, start_ns).step(now_ns)`` returns every frame, IMU sample and audio chunk whose
time has come since the previous call, as core values with stamps ``start_ns + t``; a node
publishes them and ``frame_truth`` / ``SimFrame.truth`` on its ground-truth topic. Everything is
drawn from ``config.seed`` (one independent stream per part), so a seed always gives the same
episode, byte for byte.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from mm_ros.core.errors import ConfigError
from mm_ros.core.sensors import (
    AudioChunk,
    Bearing,
    CameraModel,
    Frame,
    ImuSample,
    PixelFormat,
    Side,
)
from mm_ros.sim.motion import Motion, MotionConfig, make_imu, make_trajectory
from mm_ros.sim.render import SHIFT, Box, Renderer, mask_box
from mm_ros.sim.scene import Colour, SceneConfig, Shape, make_scene
from mm_ros.sim.sound import Sound, SoundConfig, SoundEvent, make_soundtrack

NS_PER_S = 1_000_000_000


@dataclass(frozen=True)
class WorldConfig:
    """Everything that shapes an episode; the defaults are the demo's sensor set."""

    seed: int = 0
    duration_s: float = 60.0
    width_px: int = 640
    height_px: int = 480
    fps: int = 30
    focal_px: float = 400.0  # 77 deg horizontal field of view at 640 px: a headset's wide camera
    imu_rate_hz: int = 200  # must divide 1000 (the path is integrated on a 1 ms grid)
    audio_chunk_s: float = 0.02  # 20 ms chunks, as audio_capture publishes
    # Azimuth within +-10 deg of the optical axis is "centre": the middle quarter of the view.
    centre_half_width_deg: float = 10.0
    camera_frame_id: str = "sim_camera_optical"
    imu_frame_id: str = "sim_imu"
    scene: SceneConfig = field(default_factory=SceneConfig)
    motion: MotionConfig = field(default_factory=MotionConfig)
    sound: SoundConfig = field(default_factory=SoundConfig)

    def __post_init__(self) -> None:
        if self.duration_s <= 0:
            raise ConfigError(f"WorldConfig.duration_s must be > 0, found {self.duration_s}")
        if self.imu_rate_hz <= 0 or 1000 % self.imu_rate_hz:
            raise ConfigError(f"WorldConfig.imu_rate_hz must divide 1000, found {self.imu_rate_hz}")
        if self.fps <= 0 or self.width_px <= 0 or self.height_px <= 0:
            raise ConfigError(
                f"WorldConfig needs fps, width_px, height_px > 0, found "
                f"{self.fps}, {self.width_px}, {self.height_px}"
            )

    @property
    def duration_ns(self) -> int:
        """Episode length in ns."""
        return round(self.duration_s * NS_PER_S)


@dataclass(frozen=True)
class ObjectTruth:
    """One object as seen in one frame."""

    index: int
    name: str  # "red cube"
    shape: Shape
    colour: Colour
    position_m: tuple[float, float]  # world frame
    distance_m: float  # horizontal, camera to object centre
    azimuth_deg: float  # + = left of the optical axis (REP 103), also for objects out of view
    side: Side
    in_view: bool  # at least one pixel visible
    box_px: Box | None  # visible pixels (occlusion applied), (x0, y0, x1, y1)
    full_box_px: Box | None  # whole silhouette as if nothing were in front, inside the image
    visible_fraction: float  # visible pixels / silhouette pixels inside the image


@dataclass(frozen=True)
class FrameTruth:
    """What is true at one camera frame."""

    stamp_ns: int
    index: int
    motion: Motion
    pose: tuple[float, float, float, float]  # x, y, z (m), yaw (rad, + = left, unwrapped)
    objects: tuple[ObjectTruth, ...]
    last_sound: SoundEvent | None  # latest event with onset <= stamp, absolute stamps
    sound_now: Sound | None  # event playing at the stamp, None between events

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict (enums as their values)."""
        out: dict[str, Any] = _jsonable(self)
        return out

    def to_json(self) -> str:
        """Return the truth as compact JSON (the ``~/ground_truth`` std_msgs/String payload)."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True)
class SimFrame:
    """A rendered frame and its truth."""

    frame: Frame
    truth: FrameTruth


@dataclass(frozen=True)
class SimStep:
    """What became due in one ``step``."""

    frames: tuple[SimFrame, ...]
    imu: tuple[ImuSample, ...]
    audio: tuple[AudioChunk, ...]


def _jsonable(value: Any) -> Any:
    if hasattr(value, "__dataclass_fields__"):
        return {k: _jsonable(getattr(value, k)) for k in value.__dataclass_fields__}
    if isinstance(value, Shape | Colour | Motion | Sound | Side):
        return value.label if isinstance(value, Colour) else value.value
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    if isinstance(value, float):
        return round(value, 6)
    return value


class World:
    """One episode, generated at construction (pure computation, no I/O)."""

    def __init__(self, config: WorldConfig, start_ns: int = 0) -> None:
        self.config = config
        self.start_ns = start_ns
        seeds = np.random.SeedSequence(config.seed).spawn(4)
        rng_scene, rng_path, rng_imu, rng_sound = (np.random.default_rng(s) for s in seeds)
        cx, cy = (config.width_px - 1) / 2, (config.height_px - 1) / 2  # pixel centres at ints
        self.camera = CameraModel(
            width=config.width_px,
            height=config.height_px,
            k=(config.focal_px, 0.0, cx, 0.0, config.focal_px, cy, 0.0, 0.0, 1.0),
            distortion_model="plumb_bob",
            d=(0.0, 0.0, 0.0, 0.0, 0.0),
            frame_id=config.camera_frame_id,
        )
        duration = config.duration_ns
        self.scene = make_scene(config.scene, rng_scene)
        self.trajectory = make_trajectory(duration, self.scene, config.motion, rng_path)
        self.imu_series = make_imu(self.trajectory, config.imu_rate_hz, config.motion, rng_imu)
        self.audio, self.events = make_soundtrack(duration, config.sound, rng_sound)
        self.renderer = Renderer(self.camera, self.scene)
        self.frame_count = duration * config.fps // NS_PER_S
        self.chunk_frames = int(config.sound.rate_hz * config.audio_chunk_s)
        self._next_frame = self._next_imu = self._next_chunk = 0

    # -- time -------------------------------------------------------------------------------
    def frame_time_ns(self, index: int) -> int:
        """Time of frame ``index`` relative to the episode start."""
        return index * NS_PER_S // self.config.fps

    @property
    def end_ns(self) -> int:
        """Absolute stamp where the episode ends."""
        return self.start_ns + self.config.duration_ns

    @property
    def imu_variance(self) -> tuple[float, float, float]:
        """(orientation, gyro, accel) variances for ``encode_imu`` (the noise the sim adds)."""
        motion = self.config.motion
        return (1e-6, motion.gyro_noise_rps**2, motion.accel_noise_mps2**2)

    @property
    def finished(self) -> bool:
        """Whether every frame, IMU sample and audio chunk has been returned by ``step``."""
        return (
            self._next_frame >= self.frame_count
            and self._next_imu >= self.imu_series.t_ns.size
            and (self._next_chunk + 1) * self.chunk_frames > self.audio.size
        )

    def next_episode(self) -> World:
        """Return the following episode (seed + 1), starting where this one ends."""
        config = dataclasses.replace(self.config, seed=self.config.seed + 1)
        return World(config, start_ns=self.end_ns)

    def step(self, now_ns: int) -> SimStep:
        """Return everything stamped up to ``now_ns`` (absolute) not returned before."""
        t = now_ns - self.start_ns
        frames = []
        while self._next_frame < self.frame_count and self.frame_time_ns(self._next_frame) <= t:
            frames.append(self.frame(self._next_frame))
            self._next_frame += 1
        imu = []
        series = self.imu_series
        while self._next_imu < series.t_ns.size and series.t_ns[self._next_imu] <= t:
            imu.append(self.imu_sample(self._next_imu))
            self._next_imu += 1
        chunks = []
        rate = self.config.sound.rate_hz
        while True:
            end = (self._next_chunk + 1) * self.chunk_frames
            if end > self.audio.size or end * NS_PER_S // rate > t:
                break
            chunks.append(self.audio_chunk(self._next_chunk))
            self._next_chunk += 1
        return SimStep(tuple(frames), tuple(imu), tuple(chunks))

    # -- random access ----------------------------------------------------------------------
    def imu_sample(self, index: int) -> ImuSample:
        """IMU sample ``index`` as a core value."""
        s = self.imu_series
        ax, ay, az = (float(v) for v in s.accel_mps2[index])
        gx, gy, gz = (float(v) for v in s.gyro_rps[index])
        qx, qy, qz, qw = (float(v) for v in s.orientation_xyzw[index])
        return ImuSample(
            stamp_ns=self.start_ns + int(s.t_ns[index]),
            frame_id=self.config.imu_frame_id,
            linear_acceleration_mps2=(ax, ay, az),
            angular_velocity_rps=(gx, gy, gz),
            orientation_xyzw=(qx, qy, qz, qw),
        )

    def audio_chunk(self, index: int) -> AudioChunk:
        """Audio chunk ``index`` (mono) as a core value."""
        first = index * self.chunk_frames
        samples = self.audio[first : first + self.chunk_frames, None]
        stamp = self.start_ns + first * NS_PER_S // self.config.sound.rate_hz
        return AudioChunk(stamp_ns=stamp, rate_hz=self.config.sound.rate_hz, samples=samples)

    def frame(self, index: int) -> SimFrame:
        """Render frame ``index`` and compute its ground truth."""
        t = self.frame_time_ns(index)
        pose = self.trajectory.pose(t)
        rendered = self.renderer.render(pose)
        stamp = self.start_ns + t
        frame = Frame(
            stamp_ns=stamp,
            frame_id=self.config.camera_frame_id,
            pixels=rendered.image,
            pixel_format=PixelFormat.RGB8,
        )
        drawn = {p.index: p for p in rendered.projections}
        objects = []
        for obj in self.scene.objects:
            dx, dy = obj.x_m - pose[0], obj.y_m - pose[1]
            yaw = pose[3]
            forward = dx * math.cos(yaw) + dy * math.sin(yaw)
            left = -dx * math.sin(yaw) + dy * math.cos(yaw)
            bearing = Bearing(math.degrees(math.atan2(left, forward)), 0.0)
            box = full_box = None
            fraction = 0.0
            projection = drawn.get(obj.index)
            if projection is not None and projection.full_box is not None:
                box, full_box, fraction = self._visible(
                    rendered.labels, obj.index, projection.polygons
                )
            objects.append(
                ObjectTruth(
                    index=obj.index,
                    name=obj.name,
                    shape=obj.shape,
                    colour=obj.colour,
                    position_m=(obj.x_m, obj.y_m),
                    distance_m=math.hypot(dx, dy),
                    azimuth_deg=bearing.azimuth_deg,
                    side=bearing.side(self.config.centre_half_width_deg),
                    in_view=box is not None,
                    box_px=box,
                    full_box_px=full_box if box is not None else None,
                    visible_fraction=fraction,
                )
            )
        last = next((e for e in reversed(self.events) if e.onset_ns <= t), None)
        now = next((e.sound for e in self.events if e.onset_ns <= t < e.end_ns), None)
        truth = FrameTruth(
            stamp_ns=stamp,
            index=index,
            motion=self.trajectory.motion_at(t),
            pose=pose,
            objects=tuple(objects),
            last_sound=None
            if last is None
            else SoundEvent(
                last.sound, self.start_ns + last.onset_ns, self.start_ns + last.end_ns, last.peak
            ),
            sound_now=now,
        )
        return SimFrame(frame, truth)

    def _visible(
        self, labels: np.ndarray[Any, Any], index: int, polygons: tuple[np.ndarray[Any, Any], ...]
    ) -> tuple[Box | None, Box | None, float]:
        """Boxes of the object's visible and of all its silhouette pixels, visible share.

        Both boxes are measured on the raster (what the image shows), not on the continuous
        polygons, so small and border-cut objects get the box a labeller would draw.
        """
        h, w = labels.shape
        points = np.concatenate(polygons) >> SHIFT
        x0, y0 = np.clip(points.min(axis=0) - 1, 0, [w, h])
        x1, y1 = np.clip(points.max(axis=0) + 2, 0, [w, h])
        if x1 <= x0 or y1 <= y0:
            return None, None, 0.0
        crop = labels[y0:y1, x0:x1] == index
        box = mask_box(crop)
        if box is None:
            return None, None, 0.0
        alone = np.zeros(crop.shape, dtype=np.uint8)
        offset = np.array([x0, y0], dtype=np.int32) << SHIFT
        for polygon in polygons:
            cv2.fillConvexPoly(alone, polygon - offset, 1, cv2.LINE_8, SHIFT)
        fraction = float(crop.sum()) / max(int(alone.sum()), 1)
        full = mask_box(alone.astype(bool)) or box

        def shifted(b: Box) -> Box:
            return (b[0] + x0, b[1] + y0, b[2] + x0, b[3] + y0)

        return shifted(box), shifted(full), min(fraction, 1.0)
