"""Health of one sensor input from its counters: what a diagnostics entry says about it.

Pure arithmetic on counters sampled once per diagnostics period, so it is tested without a bus.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

NS_PER_S = 1_000_000_000


class Level(enum.IntEnum):
    """``diagnostic_msgs/DiagnosticStatus`` levels."""

    OK = 0
    WARN = 1
    ERROR = 2
    STALE = 3


@dataclass(frozen=True)
class InputCounters:
    """Counters of one input at one instant (cumulative since start)."""

    accepted: int
    rejected: int
    rejected_by_error: dict[str, int] = field(default_factory=dict)
    last_error: str = ""
    newest_stamp_ns: int | None = None  # header stamp of the newest stored item


@dataclass(frozen=True)
class Health:
    """One diagnostics entry: level, a one-line message and key/value figures."""

    level: Level
    message: str
    values: dict[str, str]


def assess(
    now: InputCounters,
    before: InputCounters | None,
    period_s: float,
    clock_ns: int,
    stale_after_s: float,
) -> Health:
    """Judge an input: STALE without data, WARN on new rejects or old data, else OK."""
    prev_ok = before.accepted if before else 0
    prev_bad = before.rejected if before else 0
    rate_hz = (now.accepted - prev_ok) / period_s if period_s > 0 else 0.0
    new_rejects = now.rejected - prev_bad
    age_s = None if now.newest_stamp_ns is None else (clock_ns - now.newest_stamp_ns) / NS_PER_S
    values = {
        "accepted": str(now.accepted),
        "rejected": str(now.rejected),
        "rate_hz": f"{rate_hz:.1f}",
        "age_s": "none" if age_s is None else f"{age_s:.3f}",
    }
    values.update({f"rejected.{name}": str(n) for name, n in sorted(now.rejected_by_error.items())})
    if now.last_error:
        values["last_error"] = now.last_error
    if now.accepted == 0:
        level, message = Level.STALE, "no valid message yet"
        if now.rejected:
            level, message = Level.ERROR, f"every message rejected ({now.rejected})"
    elif age_s is not None and age_s > stale_after_s:
        level, message = Level.WARN, f"newest data is {age_s:.1f} s old (> {stale_after_s:g} s)"
    elif new_rejects > 0:
        level, message = Level.WARN, f"{new_rejects} message(s) rejected in the last period"
    else:
        level, message = Level.OK, f"{rate_hz:.1f} Hz"
    return Health(level, message, values)
