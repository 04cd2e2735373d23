"""Pick the bus implementation: ``MM_ROS_BUS=auto|zenoh|rclpy`` (default auto)."""

from __future__ import annotations

import importlib.util
import logging
import os
from typing import TYPE_CHECKING

from mm_ros.bus.protocol import BusConfig, BusUnavailableError
from mm_ros.core.errors import ConfigError

if TYPE_CHECKING:
    from mm_ros.bus.protocol import Bus
    from mm_ros.bus.ros_args import RosArgs

log = logging.getLogger("mm_ros.bus")


def choose_backend(requested: str | None = None) -> tuple[str, str]:
    """Return ``(backend, reason)``; ``auto`` picks rclpy only inside a ROS 2 with our types."""
    wanted = (requested or os.environ.get("MM_ROS_BUS") or "auto").lower()
    if wanted not in ("auto", "zenoh", "rclpy"):
        raise ConfigError(f"MM_ROS_BUS must be auto, zenoh or rclpy, found {wanted!r}")
    if wanted != "auto":
        return wanted, f"MM_ROS_BUS={wanted}"
    if not os.environ.get("AMENT_PREFIX_PATH"):
        return "zenoh", "no sourced ROS 2 environment (AMENT_PREFIX_PATH unset)"
    if importlib.util.find_spec("rclpy") is None:
        return "zenoh", "rclpy is not importable"
    try:
        built = importlib.util.find_spec("mm_ros.msg") is not None
    except ImportError:
        built = False
    if not built:
        return "zenoh", "mm_ros's interfaces are not built in this ROS 2 environment"
    return "rclpy", "sourced ROS 2 environment with mm_ros's interfaces"


def open_bus(
    node_name: str,
    *,
    namespace: str = "/",
    args: RosArgs | list[str] | None = None,
    config: BusConfig | None = None,
    backend: str | None = None,
) -> Bus:
    """Open a node on the chosen bus; log which one and why."""
    chosen, reason = choose_backend(backend)
    log.info("bus: %s (%s)", chosen, reason)
    if chosen == "rclpy":
        from mm_ros.bus.rclpy_bus import RclpyBus

        return RclpyBus(node_name, namespace=namespace, args=args)
    try:
        from mm_ros.bus.zenoh_bus import ZenohBus
    except ImportError as err:
        raise BusUnavailableError(f"eclipse-zenoh is not installed: {err}") from err
    return ZenohBus(node_name, namespace=namespace, args=args, config=config)
