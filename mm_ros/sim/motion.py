"""The camera's path: segments of still / walking forward / turning, and the IMU it implies.

The path is integrated on a 1 ms grid from smooth speed and yaw-rate profiles, so that the pose
the renderer uses and the IMU readings (200 Hz = every 5th grid point) come from one source:
accelerations are finite differences of the same positions, gyro z is the same yaw rate.
Body / IMU frame (REP 103): x forward, y left, z up; the accelerometer reads specific force
(+9.81 m/s^2 on z at rest).
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from mm_ros.core.errors import ConfigError

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from mm_ros.sim.scene import Scene

GRID_NS = 1_000_000  # 1 ms integration step
GRAVITY_MPS2 = 9.80665


class Motion(enum.Enum):
    """What the wearer is doing."""

    STILL = "still"
    FORWARD = "walking forward"
    TURN_LEFT = "turning left"
    TURN_RIGHT = "turning right"


# still, forward, left, right: walking is the most common and the most often refused (an object
# or the edge of the scene is in the way), so it is drawn most often.
MOTION_WEIGHTS = (0.2, 0.4, 0.2, 0.2)


@dataclass(frozen=True)
class MotionConfig:
    """Speeds, durations and sensor noise of the path and the IMU."""

    eye_height_m: float = 1.5
    walk_speed_mps: tuple[float, float] = (0.8, 1.5)  # normal walking
    turn_rate_dps: tuple[float, float] = (30.0, 70.0)  # a head/body turn, clearly not "still"
    segment_s: tuple[float, float] = (1.2, 3.0)
    # Speed and yaw rate blend into a new segment over this time (raised cosine): finite
    # accelerations, and still short against a segment so the label is right most of the time.
    ramp_s: float = 0.25
    step_hz: float = 1.8  # walking cadence of the head bob
    bob_m: float = 0.025  # head bob amplitude while walking at full speed
    stay_within_m: float = 7.0  # the path turns back before leaving the middle of the scene
    keep_off_m: float = 1.0  # never walk closer than this to an object's footprint
    accel_noise_mps2: float = 0.04  # white noise per sample, a consumer MEMS IMU
    gyro_noise_rps: float = 0.003
    # Constant gyro bias per episode, drawn in +-gyro_bias_rps: yaw integrated from the gyro
    # drifts by at most gyro_bias_rps * duration (0.9 deg over 30 s).
    gyro_bias_rps: float = 0.0005

    def __post_init__(self) -> None:
        for name in ("walk_speed_mps", "turn_rate_dps", "segment_s"):
            low, high = getattr(self, name)
            if not 0 < low <= high:
                raise ConfigError(f"MotionConfig.{name} needs 0 < low <= high, found {low}, {high}")
        if not 0 <= self.ramp_s < self.segment_s[0] / 2:
            raise ConfigError(
                f"MotionConfig.ramp_s must be in [0, segment_s[0] / 2), found {self.ramp_s}"
            )


@dataclass(frozen=True)
class Segment:
    """One motion segment on [start_ns, end_ns) relative to the episode start."""

    motion: Motion
    start_ns: int
    end_ns: int
    speed_mps: float
    yaw_rate_rps: float  # + = turning left (counter-clockwise seen from above)


@dataclass(frozen=True)
class Trajectory:
    """Path sampled on the 1 ms grid; index i is at i * GRID_NS."""

    segments: tuple[Segment, ...]
    x_m: NDArray[np.float64]  # (G,)
    y_m: NDArray[np.float64]  # (G,)
    z_m: NDArray[np.float64]  # (G,) eye height incl. head bob
    yaw_rad: NDArray[np.float64]  # (G,) unwrapped, + = left
    yaw_rate_rps: NDArray[np.float64]  # (G,)
    accel_body_mps2: NDArray[np.float64]  # (G, 3) specific force in the body frame

    def pose(self, t_ns: int) -> tuple[float, float, float, float]:
        """Return (x, y, z, yaw) at ``t_ns``, linearly interpolated on the grid."""
        pos = min(max(t_ns / GRID_NS, 0.0), self.x_m.size - 1.0)
        i = min(int(pos), self.x_m.size - 2)
        f = pos - i
        return (
            float(self.x_m[i] * (1 - f) + self.x_m[i + 1] * f),
            float(self.y_m[i] * (1 - f) + self.y_m[i + 1] * f),
            float(self.z_m[i] * (1 - f) + self.z_m[i + 1] * f),
            float(self.yaw_rad[i] * (1 - f) + self.yaw_rad[i + 1] * f),
        )

    def motion_at(self, t_ns: int) -> Motion:
        """Return the motion label of the segment containing ``t_ns``."""
        for segment in self.segments:
            if segment.start_ns <= t_ns < segment.end_ns:
                return segment.motion
        return self.segments[-1].motion


def _path_is_clear(  # noqa: PLR0917 - a pose, a distance and the context
    x: float, y: float, yaw: float, distance: float, scene: Scene, config: MotionConfig
) -> bool:
    for step in np.linspace(0.0, distance, 12):
        px, py = x + step * math.cos(yaw), y + step * math.sin(yaw)
        if math.hypot(px, py) > config.stay_within_m:
            return False
        for obj in scene.objects:
            if math.hypot(px - obj.x_m, py - obj.y_m) < obj.radius_m + config.keep_off_m:
                return False
    return True


def _plan(
    duration_ns: int, scene: Scene, config: MotionConfig, rng: np.random.Generator
) -> list[Segment]:
    """Draw segments; a forward walk is chosen only when its straight path stays clear."""
    segments: list[Segment] = []
    t = 0
    x = y = yaw = 0.0
    while t < duration_ns:
        length_ns = int(rng.uniform(*config.segment_s) * 1e9)
        length_s = length_ns / 1e9
        choice = Motion(rng.choice([m.value for m in Motion], p=MOTION_WEIGHTS))
        speed = float(rng.uniform(*config.walk_speed_mps))
        rate = math.radians(float(rng.uniform(*config.turn_rate_dps)))
        if choice is Motion.FORWARD:
            # walk as far as the way is clear (shorter segments first), else turn away
            for share in (1.0, 0.7, 0.45):
                if _path_is_clear(
                    x, y, yaw, speed * length_s * share + config.keep_off_m, scene, config
                ):
                    length_ns = max(int(length_ns * share), 800_000_000)
                    length_s = length_ns / 1e9
                    break
            else:
                choice = Motion.TURN_LEFT if rng.random() < 0.5 else Motion.TURN_RIGHT  # noqa: PLR2004
        if segments and choice is segments[-1].motion is Motion.STILL:
            choice = Motion.TURN_LEFT  # two stills in a row read as one long one
        speed = speed if choice is Motion.FORWARD else 0.0
        rate = {Motion.TURN_LEFT: rate, Motion.TURN_RIGHT: -rate}.get(choice, 0.0)
        segments.append(Segment(choice, t, t + length_ns, speed, rate))
        # where the segment ends: the blend from the previous targets is a raised cosine over
        # ramp_s, whose integral is the mean of the two targets times ramp_s
        prev_speed = segments[-2].speed_mps if len(segments) > 1 else 0.0
        prev_rate = segments[-2].yaw_rate_rps if len(segments) > 1 else 0.0
        walked = speed * length_s + (prev_speed - speed) * config.ramp_s / 2
        x += walked * math.cos(yaw)
        y += walked * math.sin(yaw)
        yaw += rate * length_s + (prev_rate - rate) * config.ramp_s / 2
        t += length_ns
    return segments


def _blend(segments: list[Segment], count: int, attr: str, ramp_ns: int) -> NDArray[np.float64]:
    """Piecewise-constant targets blended over ``ramp_ns`` with a raised cosine."""
    out = np.zeros(count)
    previous = 0.0
    t = np.arange(count, dtype=np.int64) * GRID_NS
    for segment in segments:
        target = float(getattr(segment, attr))
        inside = (t >= segment.start_ns) & (t < segment.end_ns)
        phase = np.clip((t[inside] - segment.start_ns) / ramp_ns, 0.0, 1.0)
        weight = 0.5 - 0.5 * np.cos(np.pi * phase)
        out[inside] = previous + (target - previous) * weight
        previous = target
    return out


def make_trajectory(
    duration_ns: int, scene: Scene, config: MotionConfig, rng: np.random.Generator
) -> Trajectory:
    """Plan segments and integrate the path on the 1 ms grid."""
    segments = _plan(duration_ns, scene, config, rng)
    count = duration_ns // GRID_NS + 2
    dt = GRID_NS / 1e9
    ramp_ns = int(config.ramp_s * 1e9)
    speed = _blend(segments, count, "speed_mps", ramp_ns)
    rate = _blend(segments, count, "yaw_rate_rps", ramp_ns)
    yaw = np.concatenate([[0.0], np.cumsum((rate[1:] + rate[:-1]) * 0.5 * dt)])
    vx, vy = speed * np.cos(yaw), speed * np.sin(yaw)
    x = np.concatenate([[0.0], np.cumsum((vx[1:] + vx[:-1]) * 0.5 * dt)])
    y = np.concatenate([[0.0], np.cumsum((vy[1:] + vy[:-1]) * 0.5 * dt)])
    walk = speed / max(config.walk_speed_mps[1], 1e-9)
    t_s = np.arange(count) * dt
    z = config.eye_height_m + config.bob_m * walk * np.sin(2 * np.pi * config.step_hz * t_s)
    ax, ay = np.gradient(vx, dt), np.gradient(vy, dt)
    az = np.gradient(np.gradient(z, dt), dt)
    cos_y, sin_y = np.cos(yaw), np.sin(yaw)
    accel_body = np.stack(
        [cos_y * ax + sin_y * ay, -sin_y * ax + cos_y * ay, az + GRAVITY_MPS2], axis=1
    )
    return Trajectory(tuple(segments), x, y, z, yaw, rate, accel_body)


@dataclass(frozen=True)
class ImuSeries:
    """IMU readings of an episode: what a 200 Hz sensor on the head would report."""

    t_ns: NDArray[np.int64]  # (M,) relative to the episode start
    accel_mps2: NDArray[np.float64]  # (M, 3) body frame, with gravity and noise
    gyro_rps: NDArray[np.float64]  # (M, 3) with bias and noise
    orientation_xyzw: NDArray[np.float64]  # (M, 4) yaw-only unit quaternions (noise-free)


def make_imu(
    trajectory: Trajectory,
    rate_hz: int,
    config: MotionConfig,
    rng: np.random.Generator,
) -> ImuSeries:
    """Sample the trajectory at ``rate_hz`` (a divisor of 1000) and add bias and noise."""
    step = 1000 // rate_hz
    # samples at t < duration (the grid has two points past it), so a following episode that
    # starts at the end stamp never repeats a stamp
    index = np.arange(0, trajectory.x_m.size - 2, step)
    count = index.size
    bias = rng.uniform(-config.gyro_bias_rps, config.gyro_bias_rps, size=3)
    accel = trajectory.accel_body_mps2[index] + rng.normal(0, config.accel_noise_mps2, (count, 3))
    gyro = np.zeros((count, 3))
    gyro[:, 2] = trajectory.yaw_rate_rps[index]
    gyro += bias + rng.normal(0, config.gyro_noise_rps, (count, 3))
    half = trajectory.yaw_rad[index] / 2
    zeros = np.zeros(count)
    orientation = np.stack([zeros, zeros, np.sin(half), np.cos(half)], axis=1)
    return ImuSeries(index.astype(np.int64) * GRID_NS, accel, gyro, orientation)
