"""Decode ``sensor_msgs/Imu`` fields into an `ImuSample` and encode one back."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, NamedTuple

from mm_ros.core.errors import InvalidValueError, SizeMismatchError
from mm_ros.core.sensors import ImuSample

if TYPE_CHECKING:
    from collections.abc import Sequence

NOT_PROVIDED = -1.0  # covariance[0] == -1: the sensor does not estimate this part (REP 145)
# |q| of a valid orientation; looser than float32 round-off so that drivers that normalise in
# float32 pass, tight enough to catch an unnormalised or garbage quaternion.
UNIT_QUATERNION_TOLERANCE = 1e-3


# Beyond these no IMU measures anything (shock-rated MEMS parts reach about 400 g and 2000 deg/s);
# such values are a broken driver, and would overflow the adapters' normalisation to inf.
MAX_ABS = {"linear_acceleration": 1e4, "angular_velocity": 1e3}  # m/s^2, rad/s


def _vector(name: str, values: Sequence[float], size: int) -> tuple[float, ...]:
    if len(values) != size:
        raise SizeMismatchError(
            f"Imu {name} has {len(values)} values != {size}",
            field=name,
            expected=size,
            found=len(values),
        )
    out = tuple(float(v) for v in values)
    bad = [v for v in out if not math.isfinite(v)]
    if bad:
        raise InvalidValueError(
            f"Imu {name} contains {bad[0]} (NaN/inf): {list(out)}",
            field=name,
            expected="finite values",
            found=list(out),
        )
    limit = MAX_ABS.get(name)
    if limit is not None and max(abs(v) for v in out) > limit:
        raise InvalidValueError(
            f"Imu {name} {list(out)} exceeds {limit:g} in magnitude: not a physical reading",
            field=name,
            expected=f"|value| <= {limit:g}",
            found=list(out),
        )
    return out


def _provided(name: str, covariance: Sequence[float]) -> bool:
    if len(covariance) != 9:  # noqa: PLR2004 - 3x3
        raise SizeMismatchError(
            f"Imu {name} has {len(covariance)} values != 9",
            field=name,
            expected=9,
            found=len(covariance),
        )
    return float(covariance[0]) != NOT_PROVIDED


def decode_imu(  # noqa: PLR0917 - the fields of sensor_msgs/Imu, in order
    orientation_xyzw: Sequence[float],
    orientation_covariance: Sequence[float],
    angular_velocity: Sequence[float],
    angular_velocity_covariance: Sequence[float],
    linear_acceleration: Sequence[float],
    linear_acceleration_covariance: Sequence[float],
    *,
    stamp_ns: int = 0,
    frame_id: str = "",
) -> ImuSample:
    """Validate the fields of a ``sensor_msgs/Imu`` and return an `ImuSample`.

    A part whose covariance[0] is -1 is ``None``; so is an all-zero quaternion, which drivers
    without an orientation filter often send while leaving the covariance at 0. Any NaN/inf in a
    provided part, or a quaternion that is not of unit length, raises `InvalidValueError`.
    """
    orientation: tuple[float, float, float, float] | None = None
    if _provided("orientation_covariance", orientation_covariance):
        x, y, z, w = _vector("orientation", orientation_xyzw, 4)
        norm = math.sqrt(x * x + y * y + z * z + w * w)
        if norm != 0.0:
            if abs(norm - 1.0) > UNIT_QUATERNION_TOLERANCE:
                raise InvalidValueError(
                    f"Imu orientation |q| = {norm:.6f} != 1",
                    field="orientation",
                    expected="unit quaternion",
                    found=(x, y, z, w),
                )
            orientation = (x, y, z, w)
    gyro: tuple[float, float, float] | None = None
    if _provided("angular_velocity_covariance", angular_velocity_covariance):
        gx, gy, gz = _vector("angular_velocity", angular_velocity, 3)
        gyro = (gx, gy, gz)
    accel: tuple[float, float, float] | None = None
    if _provided("linear_acceleration_covariance", linear_acceleration_covariance):
        ax, ay, az = _vector("linear_acceleration", linear_acceleration, 3)
        accel = (ax, ay, az)
    return ImuSample(
        stamp_ns=stamp_ns,
        frame_id=frame_id,
        linear_acceleration_mps2=accel,
        angular_velocity_rps=gyro,
        orientation_xyzw=orientation,
    )


class ImuFields(NamedTuple):
    """Field values of a ``sensor_msgs/Imu`` (covariance[0] = -1 where a part is missing)."""

    orientation_xyzw: tuple[float, float, float, float]
    orientation_covariance: tuple[float, ...]
    angular_velocity: tuple[float, float, float]
    angular_velocity_covariance: tuple[float, ...]
    linear_acceleration: tuple[float, float, float]
    linear_acceleration_covariance: tuple[float, ...]


def encode_imu(
    sample: ImuSample, variance: tuple[float, float, float] = (0.0, 0.0, 0.0)
) -> ImuFields:
    """Return ``sensor_msgs/Imu`` fields; ``variance`` = (orientation, gyro, accel) diagonal."""

    def cov(present: bool, var: float) -> tuple[float, ...]:
        if not present:
            return (NOT_PROVIDED,) + (0.0,) * 8
        return (var, 0.0, 0.0, 0.0, var, 0.0, 0.0, 0.0, var)

    return ImuFields(
        orientation_xyzw=sample.orientation_xyzw or (0.0, 0.0, 0.0, 1.0),
        orientation_covariance=cov(sample.orientation_xyzw is not None, variance[0]),
        angular_velocity=sample.angular_velocity_rps or (0.0, 0.0, 0.0),
        angular_velocity_covariance=cov(sample.angular_velocity_rps is not None, variance[1]),
        linear_acceleration=sample.linear_acceleration_mps2 or (0.0, 0.0, 0.0),
        linear_acceleration_covariance=cov(
            sample.linear_acceleration_mps2 is not None, variance[2]
        ),
    )
