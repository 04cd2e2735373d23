"""DropLog: the first drop per topic and cause in full, then a count per period; diagnostics."""

from __future__ import annotations

from mm_ros.core.diagnostics import drops_health
from mm_ros.core.drops import DropLog
from mm_ros.core.health import Level


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_flood_is_one_line_then_a_count_per_period_per_topic_and_cause() -> None:
    lines: list[str] = []
    clock = Clock()
    drops = DropLog(lines.append, period_s=5.0, clock=clock)
    for i in range(1000):
        drops.drop("/camera/image_raw", "cdr", f"sample {i} truncated")
        clock.now += 0.01  # 100 Hz for 10 s
    drops.drop("/imu/data", "InvalidValueError", "orientation is NaN")
    assert drops.counts() == {
        ("/camera/image_raw", "cdr"): 1000,
        ("/imu/data", "InvalidValueError"): 1,
    }
    assert lines[0] == "dropped input on /camera/image_raw (cdr): sample 0 truncated"
    camera = [line for line in lines if "/camera/image_raw" in line]
    assert len(camera) == 2  # the first, then one count after 5 s (the next one is not due yet)
    assert camera[1].startswith("dropped 500 more on /camera/image_raw (cdr) in the last 5.0 s")
    assert "501 in all; newest: sample 500 truncated" in camera[1]
    assert lines[-1] == "dropped input on /imu/data (InvalidValueError): orientation is NaN"
    drops.flush()  # the rest of the flood, counted when it stopped
    assert lines[-1].startswith("dropped 499 more on /camera/image_raw (cdr)")
    assert "1000 in all; newest: sample 999 truncated" in lines[-1]
    drops.flush()
    assert len(lines) == 4  # nothing pending: nothing written


def test_drops_health_warns_only_for_a_period_with_new_drops() -> None:
    first = {("/camera/image_raw", "cdr"): 3}
    health = drops_health(first, None)
    assert health.level is Level.WARN
    assert "dropped 3 input sample(s)" in health.message
    assert "/camera/image_raw cdr 3" in health.message
    assert health.values == {"/camera/image_raw: cdr": "3"}
    quiet = drops_health(first, first)
    assert quiet.level is Level.OK
    assert "(3 since start)" in quiet.message
    assert drops_health({}, None).level is Level.OK
