"""Health assessment of one sensor input (what sensor_monitor reports on /diagnostics)."""

from __future__ import annotations

import pytest

from mm_ros.core.health import InputCounters, Level, assess

NS = 1_000_000_000


@pytest.mark.parametrize(
    ("now", "before", "level", "message"),
    [
        (InputCounters(0, 0), None, Level.STALE, "no valid message yet"),
        (
            InputCounters(0, 4, {"SizeMismatchError": 4}, "step"),
            None,
            Level.ERROR,
            "every message rejected (4)",
        ),
        (
            InputCounters(60, 2, {"InvalidValueError": 2}, "nan", 10 * NS),
            InputCounters(30, 1, {}, "", 9 * NS),
            Level.WARN,
            "1 message(s) rejected",
        ),
        (
            InputCounters(60, 0, {}, "", 7 * NS),
            InputCounters(30, 0),
            Level.WARN,
            "newest data is 3.0 s old",
        ),
        (
            InputCounters(60, 0, {}, "", 10 * NS - 10_000_000),
            InputCounters(30, 0),
            Level.OK,
            "30.0 Hz",
        ),
    ],
)
def test_levels(
    now: InputCounters, before: InputCounters | None, level: Level, message: str
) -> None:
    health = assess(now, before, period_s=1.0, clock_ns=10 * NS, stale_after_s=1.0)
    assert health.level is level
    assert health.message.startswith(message)


def test_values_name_every_reject_reason_and_the_last_error() -> None:
    health = assess(
        InputCounters(
            5,
            3,
            {"SizeMismatchError": 2, "InvalidValueError": 1},
            "Image step 10 != width*3 (30)",
            2 * NS,
        ),
        None,
        1.0,
        2 * NS,
        1.0,
    )
    assert health.values["rejected.SizeMismatchError"] == "2"
    assert health.values["rejected.InvalidValueError"] == "1"
    assert health.values["last_error"] == "Image step 10 != width*3 (30)"
    assert health.values["rate_hz"] == "5.0"
