"""Clock offset and drift from request/response exchanges (pure, simulated clocks)."""

from __future__ import annotations

import numpy as np
import pytest

from mm_ros.core.clock_sync import ClockFilterConfig, ClockOffsetFilter, ClockSample

S = 1_000_000_000


def exchanges(offset_ns: float, drift: float, n: int, period_s: float, seed: int = 0):
    """Headset sends at local t1; the robot clock reads remote = local*(1+drift)+offset."""
    rng = np.random.default_rng(seed)
    t = 1_700_000_000 * S
    for _ in range(n):
        up, down = rng.exponential(300_000, 2) + 50_000  # one-way delays: 50 us + queueing
        t1 = t
        t2 = round(t1 + up + offset_ns + drift * (t1 + up - 1_700_000_000 * S))
        t3 = round(t1 + up + down)
        yield ClockSample(t1, t2, t3)
        t += round(period_s * S)


@pytest.mark.parametrize(
    ("offset_s", "drift_ppm"), [(2.5, 0.0), (2.5, 100.0), (-2.5, -40.0), (0.0, 300.0)]
)
def test_offset_and_drift_within_a_millisecond(offset_s: float, drift_ppm: float) -> None:
    f = ClockOffsetFilter()
    for sample in exchanges(offset_s * S, drift_ppm * 1e-6, 64, 0.25):
        f.add(sample)
    est = f.estimate()
    assert est is not None
    last_local = est.ref_local_ns
    true_offset = offset_s * S + drift_ppm * 1e-6 * (last_local - 1_700_000_000 * S)
    assert abs(est.offset_at(last_local) - true_offset) < 1e6  # 1 ms
    assert abs(est.drift_ppm - drift_ppm) < 20
    assert est.uncertainty_ns < 2e6
    assert est.to_remote(last_local) == last_local + round(est.offset_at(last_local))


def test_short_history_estimates_offset_only() -> None:
    f = ClockOffsetFilter(ClockFilterConfig(min_fit_span_s=2.0))
    for sample in exchanges(2.5 * S, 100e-6, 4, 0.1):
        f.add(sample)
    est = f.estimate()
    assert est is not None
    assert est.drift == 0.0
    assert abs(est.offset_ns - 2.5 * S) < 1e6


def test_min_rtt_selection_ignores_congested_exchanges() -> None:
    f = ClockOffsetFilter()
    t = 0
    for i in range(40):
        slow = i % 2 == 0  # half the exchanges queued 40 ms on the way back only: biased
        t3 = t + (41_000_000 if slow else 200_000)
        f.add(ClockSample(t, t + 100_000 + 5 * S, t3))
        t += S // 10
    est = f.estimate()
    assert est is not None
    assert abs(est.offset_at(t) - 5 * S) < 200_000
    assert est.best_rtt_ns == 200_000


def test_negative_round_trip_is_rejected_and_counted() -> None:
    f = ClockOffsetFilter()
    assert f.estimate() is None
    f.add(ClockSample(10, 5, 5))
    assert f.rejected == 1
    assert len(f) == 0


def test_config_is_validated() -> None:
    with pytest.raises(ValueError, match="keep_fraction"):
        ClockFilterConfig(keep_fraction=0)
