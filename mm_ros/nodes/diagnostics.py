"""Publish ``mm_ros.core.diagnostics`` entries as ``diagnostic_msgs/DiagnosticArray``.

Node-facing API::

    diagnostics = DiagnosticsPublisher(bus, "/diagnostics")
    dropped = DroppedInput(bus.node_name, bus.drops)
    diagnostics.publish([*model_service_entries(...), dropped.entry()])  # stamped bus.now_ns()
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mm_ros.bus.naming import RELIABLE
from mm_ros.core.diagnostics import Entry, drops_health

if TYPE_CHECKING:
    from collections.abc import Sequence

    from mm_ros.bus.protocol import Bus
    from mm_ros.core.drops import DropLog

NS_PER_S = 1_000_000_000


def diagnostic_array(entries: Sequence[Entry], stamp_ns: int) -> dict[str, Any]:
    """Return the fields of one DiagnosticArray (a dict any bus publishes)."""
    return {
        "header": {"stamp": {"sec": stamp_ns // NS_PER_S, "nanosec": stamp_ns % NS_PER_S}},
        "status": [
            {
                "level": int(e.health.level),
                "name": e.name,
                "message": e.health.message,
                "hardware_id": e.hardware_id,
                "values": [{"key": k, "value": v} for k, v in e.health.values.items()],
            }
            for e in entries
        ],
    }


class DiagnosticsPublisher:
    """One reliable ``DiagnosticArray`` publisher."""

    def __init__(self, bus: Bus, topic: str = "/diagnostics") -> None:
        self._bus = bus
        self._publisher = bus.create_publisher(
            topic, "diagnostic_msgs/msg/DiagnosticArray", RELIABLE
        )

    def publish(self, entries: Sequence[Entry]) -> None:
        """Publish ``entries`` stamped with the node's clock (sim time in replay)."""
        self._publisher.publish(diagnostic_array(entries, self._bus.now_ns()))


class DroppedInput:
    """A node's "dropped input" entry: drops per topic and cause, WARN after a period with any."""

    def __init__(self, node: str, drops: DropLog) -> None:
        self._name = f"{node}: dropped input"
        self._drops = drops
        self._before: dict[tuple[str, str], int] | None = None

    def entry(self) -> Entry:
        """Return this period's entry; write the log's pending drop counts (``DropLog.flush``)."""
        counts = self._drops.counts()
        self._drops.flush()  # a flood that stopped still gets its count in the log
        health = drops_health(counts, self._before)
        self._before = counts
        return Entry(self._name, "", health)
