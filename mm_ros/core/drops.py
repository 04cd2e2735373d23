"""Dropped input, counted per topic and cause, logged without flooding the log.

A misbehaving driver can send thousands of bad samples a minute; one warning line each buries
everything else in the log (ROS 2 nodes throttle such warnings). `DropLog` writes the first drop
of each (topic, cause) in full, then at most one line per ``period_s`` with the count since the
last line and the newest detail, and keeps the totals for ``/diagnostics``.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mm_ros.core.errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Callable

# A drop summary at most this often per (topic, cause): often enough that an operator watching
# the log sees the flood continue, rare enough that 10 000 bad samples cost a handful of lines.
DROP_LOG_PERIOD_S = 5.0


@dataclass
class _Cause:
    total: int = 0
    unlogged: int = 0  # drops since the last line written
    last_line_at: float = 0.0  # clock() when the last line was written
    last_detail: str = ""


class DropLog:
    """Counts drops per (topic, cause); logs the first in full, then a count per period.

    Thread-safe: transports call ``drop`` from their own threads. ``flush`` writes the pending
    counts (a node calls it from its diagnostics timer, so a flood that stopped is still
    summed up in the log).
    """

    def __init__(
        self,
        warn: Callable[[str], None],
        period_s: float = DROP_LOG_PERIOD_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if period_s <= 0:
            raise ConfigError(f"drop log period must be > 0 s, found {period_s}")
        self._warn = warn
        self._period_s = period_s
        self._clock = clock
        self._lock = threading.Lock()
        self._causes: dict[tuple[str, str], _Cause] = {}

    def drop(self, topic: str, cause: str, detail: str) -> None:
        """Count one dropped sample on ``topic`` for ``cause`` (e.g. ``cdr``, an error class)."""
        now = self._clock()
        with self._lock:
            entry = self._causes.setdefault((topic, cause), _Cause())
            entry.total += 1
            entry.last_detail = detail
            if entry.total == 1:
                entry.last_line_at = now
                line = f"dropped input on {topic} ({cause}): {detail}"
            elif now - entry.last_line_at >= self._period_s:
                line = self._summary(topic, cause, entry, now, pending=1)
            else:
                entry.unlogged += 1
                return
        self._warn(line)

    def flush(self) -> None:
        """Write a count line for every (topic, cause) with drops not yet logged."""
        now = self._clock()
        with self._lock:
            lines = [
                self._summary(topic, cause, entry, now)
                for (topic, cause), entry in self._causes.items()
                if entry.unlogged
            ]
        for line in lines:
            self._warn(line)

    def _summary(self, topic: str, cause: str, entry: _Cause, now: float, pending: int = 0) -> str:
        count = entry.unlogged + pending
        since = now - entry.last_line_at
        entry.unlogged, entry.last_line_at = 0, now
        return (
            f"dropped {count} more on {topic} ({cause}) in the last {since:.1f} s, "
            f"{entry.total} in all; newest: {entry.last_detail}"
        )

    def counts(self) -> dict[tuple[str, str], int]:
        """Return the drops since start per (topic, cause)."""
        with self._lock:
            return {key: entry.total for key, entry in self._causes.items()}
