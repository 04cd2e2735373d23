"""The ROS 2 bus: one ``Bus`` protocol, a zenoh (rmw_zenoh wire format) and an rclpy backend."""

from __future__ import annotations

from mm_ros.bus.naming import LATCHED, RELIABLE, SENSOR_DATA, SERVICES, QoS
from mm_ros.bus.protocol import (
    Bus,
    BusConfig,
    BusError,
    BusTimeoutError,
    BusUnavailableError,
    GoalStatus,
)

__all__ = [
    "LATCHED",
    "RELIABLE",
    "SENSOR_DATA",
    "SERVICES",
    "Bus",
    "BusConfig",
    "BusError",
    "BusTimeoutError",
    "BusUnavailableError",
    "GoalStatus",
    "QoS",
]
