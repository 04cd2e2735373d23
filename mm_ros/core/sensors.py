"""Immutable sensor values that cross layers: frames, audio chunks, IMU samples, camera models.

Every stamp is an ``int`` in nanoseconds on the clock of the message header (sim time in replay).
Arrays inside these values may be read-only views of a message buffer: never write into them.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

if TYPE_CHECKING:
    from numpy.typing import NDArray


class Modality(enum.Enum):
    """The sensor streams a question can draw on."""

    IMAGE = "image"
    AUDIO = "audio"
    IMU = "imu"


class PixelFormat(enum.Enum):
    """Layout of ``Frame.pixels`` after decoding (every colour encoding becomes RGB8)."""

    RGB8 = "rgb8"  # (H, W, 3) uint8, R G B
    MONO8 = "mono8"  # (H, W) uint8
    MONO16 = "mono16"  # (H, W) uint16, native byte order


@dataclass(frozen=True)
class Frame:
    """One camera image as decoded pixels.

    ``pixels`` may be a strided, read-only view into the message buffer (bgr8 and rgba8 decode
    without a copy), so call ``np.ascontiguousarray`` before handing it to code that needs that.
    """

    stamp_ns: int  # header stamp, ns
    frame_id: str
    pixels: NDArray[Any]  # (H, W, 3) uint8 RGB8, (H, W) uint8 MONO8 or (H, W) uint16 MONO16
    pixel_format: PixelFormat

    @property
    def width(self) -> int:
        """Width in pixels."""
        return int(self.pixels.shape[1])

    @property
    def height(self) -> int:
        """Height in pixels."""
        return int(self.pixels.shape[0])

    def rgb(self) -> NDArray[np.uint8]:
        """Return the image as (H, W, 3) uint8 RGB (mono16 keeps its 8 most significant bits)."""
        if self.pixel_format is PixelFormat.RGB8:
            return self.pixels.astype(np.uint8, copy=False)
        mono = self.pixels
        if self.pixel_format is PixelFormat.MONO16:
            mono = (mono >> 8).astype(np.uint8)
        return np.repeat(mono.astype(np.uint8, copy=False)[:, :, None], 3, axis=2)


@dataclass(frozen=True)
class AudioChunk:
    """Consecutive audio samples; ``stamp_ns`` is the capture time of the first sample."""

    stamp_ns: int  # capture time of samples[0], ns
    rate_hz: int
    samples: NDArray[np.float32]  # (N, C) float32 in [-1, 1], channels de-interleaved

    def __post_init__(self) -> None:
        if self.samples.ndim != 2:  # noqa: PLR2004 - (N, C)
            raise ValueError(f"AudioChunk.samples must be (N, C), found shape {self.samples.shape}")

    @property
    def frames(self) -> int:
        """Number of sample frames (samples per channel)."""
        return int(self.samples.shape[0])

    @property
    def channels(self) -> int:
        """Number of channels."""
        return int(self.samples.shape[1])

    @property
    def duration_ns(self) -> int:
        """Time covered by the chunk, ns."""
        return self.frames * 1_000_000_000 // self.rate_hz

    @property
    def end_ns(self) -> int:
        """Stamp one sample period after the last sample, ns."""
        return self.stamp_ns + self.duration_ns

    def mono(self) -> NDArray[np.float32]:
        """Return (N,) float32: the mean of the channels."""
        if self.channels == 1:
            return self.samples[:, 0]
        mean: NDArray[np.float32] = self.samples.mean(axis=1, dtype=np.float32)
        return mean


@dataclass(frozen=True)
class ImuSample:
    """One IMU reading; a part the sensor does not provide is ``None``."""

    stamp_ns: int  # header stamp, ns
    frame_id: str
    linear_acceleration_mps2: tuple[float, float, float] | None  # body frame, includes gravity
    angular_velocity_rps: tuple[float, float, float] | None  # body frame, rad/s
    orientation_xyzw: tuple[float, float, float, float] | None  # unit quaternion


class Side(enum.Enum):
    """Coarse horizontal direction of a bearing, as `mm_ros/msg/Bearing` names it."""

    LEFT = "left"
    CENTRE = "centre"
    RIGHT = "right"


class Bearing(NamedTuple):
    """Direction of a pixel from the optical axis (REP 103: + azimuth = left, + elevation = up)."""

    azimuth_deg: float
    elevation_deg: float

    def side(self, centre_half_width_deg: float = 10.0) -> Side:
        """Return LEFT / CENTRE / RIGHT; CENTRE within +-``centre_half_width_deg``."""
        if self.azimuth_deg > centre_half_width_deg:
            return Side.LEFT
        if self.azimuth_deg < -centre_half_width_deg:
            return Side.RIGHT
        return Side.CENTRE


@dataclass(frozen=True)
class CameraModel:
    """Intrinsics from ``sensor_msgs/CameraInfo``: size, K, distortion model and coefficients."""

    width: int
    height: int
    k: tuple[float, float, float, float, float, float, float, float, float]  # row-major 3x3
    distortion_model: str  # "plumb_bob", "rational_polynomial", "equidistant" or "" (none)
    d: tuple[float, ...]
    frame_id: str = ""

    @property
    def fx(self) -> float:
        """Focal length along x, pixels."""
        return self.k[0]

    @property
    def fy(self) -> float:
        """Focal length along y, pixels."""
        return self.k[4]

    @property
    def cx(self) -> float:
        """Principal point x, pixels."""
        return self.k[2]

    @property
    def cy(self) -> float:
        """Principal point y, pixels."""
        return self.k[5]

    def bearing(self, u: float, v: float) -> Bearing:
        """Return the bearing of pixel (u, v), ignoring lens distortion.

        Distortion is small near the centre of the usual robot cameras; callers that need it
        undistort the point first (OpenCV's ``undistortPoints`` with ``k`` and ``d``).
        """
        x = (u - self.cx) / self.fx  # right, on the normalised image plane
        y = (v - self.cy) / self.fy  # down
        azimuth = -math.degrees(math.atan(x))
        elevation = -math.degrees(math.atan2(y, math.hypot(1.0, x)))
        return Bearing(azimuth, elevation)

    def pixel(self, bearing: Bearing) -> tuple[float, float]:
        """Return the pixel (u, v) seen in direction ``bearing`` (inverse of ``bearing``)."""
        x = math.tan(math.radians(-bearing.azimuth_deg))
        y = -math.tan(math.radians(bearing.elevation_deg)) * math.hypot(1.0, x)
        return self.cx + self.fx * x, self.cy + self.fy * y
