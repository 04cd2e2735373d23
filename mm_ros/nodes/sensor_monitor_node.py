"""``sensor_monitor``: report the health of the camera, IMU and audio inputs on /diagnostics.

It takes the sensors exactly as the model service does and reports rates, age of the newest
data and rejected messages by reason, and what the node dropped per topic and cause.

The field answer to "are my sensors reaching mm_ros, and in what shape?" Malformed messages
are counted per error class, logged (the first in full, then a count every few seconds) and
dropped; the node keeps serving.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mm_ros.bus.naming import RELIABLE
from mm_ros.core.errors import ConfigError
from mm_ros.core.health import InputCounters, assess
from mm_ros.nodes.diagnostics import DroppedInput
from mm_ros.nodes.params import declare_config, param
from mm_ros.nodes.runner import run_node
from mm_ros.nodes.sensor_inputs import SensorInputs, SensorInputsConfig

if TYPE_CHECKING:
    from mm_ros.bus.protocol import Bus

DESCRIPTION = __doc__ or ""


@dataclass(frozen=True)
class SensorMonitorConfig(SensorInputsConfig):
    """Parameters of ``sensor_monitor``: the sensor inputs plus how to report."""

    period_s: float = param(1.0, "seconds between /diagnostics messages", live=True)
    stale_after_s: float = param(1.0, "data older than this is reported as WARN", live=True)
    diagnostics_topic: str = param("/diagnostics", "diagnostic_msgs/DiagnosticArray")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.period_s <= 0 or self.stale_after_s <= 0:
            msg = (
                f"period_s and stale_after_s must be > 0, found {self.period_s}, "
                f"{self.stale_after_s}"
            )
            raise ConfigError(msg)


class SensorMonitorNode:
    """Sensor intake plus a diagnostics timer."""

    name = "sensor_monitor"
    description = DESCRIPTION
    Config = SensorMonitorConfig

    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self.config = declare_config(bus, SensorMonitorConfig, self._reconfigure)
        self.inputs = SensorInputs(bus, self.config, bus.drops)
        self._dropped = DroppedInput(bus.node_name, bus.drops)
        self._diagnostics = bus.create_publisher(
            self.config.diagnostics_topic, "diagnostic_msgs/msg/DiagnosticArray", RELIABLE
        )
        self._make = bus.msg("diagnostic_msgs/msg/DiagnosticArray")
        self._before: dict[str, InputCounters] = {}
        self._timer = bus.create_timer(self.config.period_s, self.report)

    def _reconfigure(self, config: SensorMonitorConfig) -> None:
        """Take a new ``period_s`` / ``stale_after_s`` (``ros2 param set``) from now on."""
        if config.period_s != self.config.period_s:
            self._timer.cancel()
            self._timer = self.bus.create_timer(config.period_s, self.report)
        self.config = config

    def report(self) -> None:
        """Publish one DiagnosticArray: a status per input."""
        now_ns = self.bus.now_ns()
        counters = self.inputs.counters()
        topics = {
            "image": self.config.image_topic,
            "imu": self.config.imu_topic,
            "audio": self.config.audio_topic,
        }
        status = []
        for name, now in counters.items():
            health = assess(
                now, self._before.get(name), self.config.period_s, now_ns, self.config.stale_after_s
            )
            status.append(
                {
                    "level": int(health.level),
                    "name": f"{self.bus.node_name}: {name} ({topics[name]})",
                    "message": health.message,
                    "hardware_id": topics[name],
                    "values": [{"key": k, "value": v} for k, v in health.values.items()],
                }
            )
        self._before = counters
        dropped = self._dropped.entry()
        status.append(
            {
                "level": int(dropped.health.level),
                "name": dropped.name,
                "message": dropped.health.message,
                "hardware_id": dropped.hardware_id,
                "values": [{"key": k, "value": v} for k, v in dropped.health.values.items()],
            }
        )
        header: dict[str, Any] = {"stamp": {"sec": now_ns // 10**9, "nanosec": now_ns % 10**9}}
        self._diagnostics.publish(self._make(header=header, status=status))

    def close(self) -> None:
        """Stop reporting."""
        self._timer.cancel()


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``sensor_monitor``."""
    return run_node(SensorMonitorNode, list(sys.argv[1:] if argv is None else argv))
