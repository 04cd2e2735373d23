"""sensor_msgs/Imu fields to ImuSample: parts not provided, NaN/inf, sizes, round trip."""

from __future__ import annotations

import math

import pytest

from mm_ros.core.errors import InvalidValueError, SizeMismatchError
from mm_ros.core.imu import decode_imu, encode_imu

Q = (0.0, 0.0, math.sin(0.25), math.cos(0.25))
COV = (0.01, 0, 0, 0, 0.01, 0, 0, 0, 0.01)
MISSING = (-1.0,) + (0.0,) * 8


def fields(**over):
    base = {
        "orientation_xyzw": Q,
        "orientation_covariance": COV,
        "angular_velocity": (0.1, 0.2, 0.3),
        "angular_velocity_covariance": COV,
        "linear_acceleration": (0.0, 0.1, 9.81),
        "linear_acceleration_covariance": COV,
    }
    return {**base, **over}


def test_full_sample_and_round_trip() -> None:
    sample = decode_imu(**fields(), stamp_ns=9, frame_id="imu")
    assert sample.orientation_xyzw == Q
    assert sample.angular_velocity_rps == (0.1, 0.2, 0.3)
    assert sample.linear_acceleration_mps2 == (0.0, 0.1, 9.81)
    assert (sample.stamp_ns, sample.frame_id) == (9, "imu")
    again = decode_imu(*encode_imu(sample, (0.01, 0.01, 0.01)), stamp_ns=9, frame_id="imu")
    assert again == sample


@pytest.mark.parametrize(
    ("cov_field", "attr"),
    [("orientation_covariance", "orientation_xyzw"),
     ("angular_velocity_covariance", "angular_velocity_rps"),
     ("linear_acceleration_covariance", "linear_acceleration_mps2")],
)  # fmt: skip
def test_covariance_minus_one_means_not_provided(cov_field: str, attr: str) -> None:
    # the values of a part that is not provided are ignored, even NaN
    value_field = {"orientation_covariance": "orientation_xyzw",
                   "angular_velocity_covariance": "angular_velocity",
                   "linear_acceleration_covariance": "linear_acceleration"}[cov_field]  # fmt: skip
    size = 4 if value_field == "orientation_xyzw" else 3
    sample = decode_imu(**fields(**{cov_field: MISSING, value_field: (math.nan,) * size}))
    assert getattr(sample, attr) is None
    back = encode_imu(sample)
    assert getattr(back, cov_field)[0] == -1.0


def test_zero_quaternion_is_not_provided() -> None:
    assert decode_imu(**fields(orientation_xyzw=(0, 0, 0, 0))).orientation_xyzw is None


@pytest.mark.parametrize(
    ("over", "error", "field"),
    [
        ({"angular_velocity": (0.0, math.nan, 0.0)}, InvalidValueError, "angular_velocity"),
        ({"linear_acceleration": (math.inf, 0.0, 0.0)}, InvalidValueError,
         "linear_acceleration"),
        ({"orientation_xyzw": (0.0, 0.0, 0.0, -math.inf)}, InvalidValueError, "orientation"),
        ({"orientation_xyzw": (0.0, 0.0, 0.5, 0.5)}, InvalidValueError, "orientation"),
        ({"angular_velocity": (0.0, 0.0)}, SizeMismatchError, "angular_velocity"),
        ({"linear_acceleration": (0.0, 0.0, 1e308)}, InvalidValueError, "linear_acceleration"),
        ({"angular_velocity": (-2e3, 0.0, 0.0)}, InvalidValueError, "angular_velocity"),
        ({"linear_acceleration_covariance": (0.0,) * 6}, SizeMismatchError,
         "linear_acceleration_covariance"),
    ],
)  # fmt: skip
def test_malformed_imu(over, error, field) -> None:
    with pytest.raises(error) as info:
        decode_imu(**fields(**over))
    assert info.value.field == field
    assert "Imu" in str(info.value)
