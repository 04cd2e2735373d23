"""Windows: property tests with jittered multi-rate streams, bounds, ordering, clock jumps."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mm_ros.core.errors import ConfigError
from mm_ros.core.sensors import AudioChunk, Frame, ImuSample, Modality, PixelFormat
from mm_ros.core.windows import (
    Added,
    AudioWindow,
    FrameWindow,
    ImuWindow,
    SensorWindows,
    WindowConfig,
    find_gaps,
)

MS = 1_000_000
S = 1_000_000_000
PIXELS = np.zeros((2, 2, 3), dtype=np.uint8)
RATE = 16_000
CHUNK = 320  # 20 ms


def frame(stamp: int) -> Frame:
    return Frame(stamp, "cam", PIXELS, PixelFormat.RGB8)


def imu(stamp: int) -> ImuSample:
    return ImuSample(stamp, "imu", (0.0, 0.0, 9.8), (0.0, 0.0, stamp / S), None)


def audio(index: int, stamp: int) -> AudioChunk:
    # each sample holds its own global index (exact in float32 below 2**24)
    values = np.arange(index * CHUNK, (index + 1) * CHUNK, dtype=np.float32)
    return AudioChunk(stamp, RATE, values[:, None])


def windows(span_s: float = 4.0) -> SensorWindows:
    span = int(span_s * S)
    return SensorWindows(
        image=FrameWindow(WindowConfig(span_ns=span, max_items=1000)),
        audio=AudioWindow(WindowConfig(span_ns=span, max_items=1000)),
        imu=ImuWindow(WindowConfig(span_ns=span, max_items=10_000)),
    )


@st.composite
def streams(draw):
    """(arrival-ordered events, jitter) for 30 Hz frames, 200 Hz IMU, 20 ms audio chunks."""
    jitter = draw(st.integers(0, 2 * MS))
    seconds = draw(st.floats(1.0, 3.0))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    base = draw(st.integers(0, 10**6)) * S
    events = []
    for period, kind in ((S // 30, "image"), (5 * MS, "imu"), (20 * MS, "audio")):
        count = int(seconds * S / period)
        nominal = base + np.arange(count, dtype=np.int64) * period
        stamps = nominal + rng.integers(-jitter, jitter + 1, count)
        # arrival: stamp + transport delay up to 3 periods, so streams interleave out of order
        arrival = stamps + rng.integers(0, 3 * period, count)
        events += [
            (int(a), kind, i, int(s)) for i, (a, s) in enumerate(zip(arrival, stamps, strict=True))
        ]
    events.sort()
    return events, jitter, base, seconds


@settings(max_examples=40, deadline=None, database=None)
@given(streams(), st.floats(0.2, 0.95), st.floats(0.1, 0.9))
def test_snapshot_alignment_bounds(stream, where: float, span_s: float) -> None:
    events, jitter, base, seconds = stream
    win = windows()
    for _arrival, kind, index, stamp in events:
        if kind == "image":
            assert win.image.add(frame(stamp)) in (Added.STORED, Added.OUT_OF_ORDER)
        elif kind == "imu":
            assert win.imu.add(imu(stamp)) in (Added.STORED, Added.OUT_OF_ORDER)
        else:
            assert win.audio.add(audio(index, stamp)) in (Added.STORED, Added.OUT_OF_ORDER)
    at = base + int(where * seconds * S)
    span = int(span_s * S)
    snap = win.snapshot(at, {Modality.IMAGE: span, Modality.IMU: span, Modality.AUDIO: span})
    # frames: exactly the stamps in [at - span, at], strictly increasing
    expected = sorted(s for _, k, _, s in events if k == "image" and at - span <= s <= at)
    assert [f.stamp_ns for f in snap.image.frames] == expected
    # alignment: the newest sample is at most one period + 2 jitter old
    assert 0 <= snap.image.staleness_ns <= S // 30 + 2 * jitter
    assert 0 <= snap.imu.staleness_ns <= 5 * MS + 2 * jitter
    stamps = snap.imu.stamps_ns
    assert (np.diff(stamps) > 0).all()
    assert stamps[0] >= at - span
    assert stamps[-1] <= at
    # audio: sample i of the view is the stream's sample at start + i / rate, within the jitter
    view = snap.audio
    assert view.samples.size == span * RATE // S
    assert view.staleness_ns <= 20 * MS + jitter
    covered = np.ones(view.samples.size, dtype=bool)
    for a, b in view.gaps:
        covered[(a - view.start_ns) * RATE // S : (b - view.start_ns) * RATE // S] = False
    times = view.start_ns + np.arange(view.samples.size) * S // RATE
    truth = (times - base) * RATE / S  # global index at that time
    error = np.abs(view.samples[covered] - truth[covered])
    assert error.size == 0 or error.max() <= jitter * RATE / S + 1
    # gaps are only at the ends (the stream has none inside)
    for a, b in view.gaps:
        assert a == view.start_ns or b >= at - 20 * MS - jitter


@settings(max_examples=25, deadline=None, database=None)
@given(
    st.integers(1, 50),  # period, ms
    st.integers(1, 3000),  # span, ms
    st.integers(1, 400),  # max items
)
def test_memory_stays_bounded_under_an_endless_stream(period_ms, span_ms, max_items) -> None:
    window = ImuWindow(WindowConfig(span_ns=span_ms * MS, max_items=max_items))
    bound = min(max_items, span_ms // period_ms + 1)
    for i in range(3000):
        window.add(imu(i * period_ms * MS))
        assert len(window) <= bound
    stats = window.stats()
    assert stats.items == bound
    assert stats.stored == 3000
    assert stats.evicted == 3000 - bound


@settings(max_examples=30, deadline=None, database=None)
@given(st.lists(st.integers(0, 999), min_size=1, max_size=200))
def test_out_of_order_and_duplicates(order) -> None:
    window = FrameWindow(WindowConfig(span_ns=10 * S, max_items=1000))
    outcomes = [window.add(frame(i * MS)) for i in order]
    unique = sorted(set(order))
    view = window.view(999 * MS, 10 * S)
    assert [f.stamp_ns for f in view.frames] == [i * MS for i in unique]
    stats = window.stats()
    assert stats.duplicates == len(order) - len(unique) == outcomes.count(Added.DUPLICATE)
    assert stats.out_of_order == outcomes.count(Added.OUT_OF_ORDER)


def test_too_old_is_dropped() -> None:
    window = FrameWindow(WindowConfig(span_ns=100 * MS, max_items=10, backjump_ns=S))
    window.add(frame(500 * MS))
    assert window.add(frame(300 * MS)) is Added.TOO_OLD
    assert window.stats().too_old == 1
    assert len(window) == 1


@pytest.mark.parametrize("jump_back_s", [2, 100, 10**6])
def test_clock_jump_back_resets(jump_back_s: int) -> None:
    win = windows()
    late = jump_back_s * S + 10 * S
    for i in range(100):
        win.image.add(frame(late + i * 33 * MS))
        win.imu.add(imu(late + i * 5 * MS))
        win.audio.add(audio(i, late + i * 20 * MS))
    start = late - jump_back_s * S  # bag loop / sim restart
    assert win.image.add(frame(start)) is Added.RESET
    assert win.imu.add(imu(start)) is Added.RESET
    assert win.audio.add(audio(0, start)) is Added.RESET
    for w in (win.image, win.imu, win.audio):
        stats = w.stats()
        assert (stats.resets, stats.items, stats.newest_ns is not None) == (1, 1, True)
    snap = win.snapshot(None, {Modality.IMAGE: S, Modality.IMU: S, Modality.AUDIO: S})
    assert [f.stamp_ns for f in snap.image.frames] == [start]
    assert snap.imu.stamps_ns.tolist() == [start]
    assert snap.at_ns == start  # every stream has reached it (the audio chunk ends 20 ms later)


def test_a_snapshot_of_now_is_cut_where_every_live_stream_has_arrived() -> None:
    win = windows()
    spans = {Modality.IMAGE: S, Modality.IMU: S, Modality.AUDIO: 300 * MS}
    for i in range(40):  # 2 s of IMU and frames, but the audio lags 400 ms (its own channel)
        win.imu.add(imu(i * 50 * MS))
        win.image.add(frame(i * 50 * MS))
    for i in range(80):
        win.audio.add(audio(i, i * 20 * MS))  # the last chunk ends at 1.6 s
    assert win.newest_ns() == 1950 * MS
    assert win.aligned_ns() == 1600 * MS
    snap = win.snapshot(None, spans)
    assert snap.at_ns == 1600 * MS
    assert snap.audio.coverage == 1.0  # cut at the newest frame, this clip would be empty
    assert snap.image.frames[-1].stamp_ns == 1600 * MS
    assert int(snap.imu.stamps_ns[-1]) == 1600 * MS
    # a stream more than a second behind is stalled and no longer holds "now" back
    for i in range(40, 80):
        win.imu.add(imu(i * 50 * MS))
        win.image.add(frame(i * 50 * MS))
    assert win.aligned_ns() == 3950 * MS
    assert win.snapshot(None, spans).audio.coverage == 0.0
    assert win.aligned_ns([Modality.AUDIO]) == 1600 * MS


def test_audio_gap_and_rate_change() -> None:
    window = AudioWindow(WindowConfig(span_ns=2 * S, max_items=1000))
    for i in range(10):
        window.add(audio(i, i * 20 * MS))
    for i in range(20, 30):  # 200 ms hole
        window.add(audio(i, i * 20 * MS))
    view = window.view(600 * MS, 600 * MS)
    assert view.gaps == ((200 * MS, 400 * MS),)
    assert view.coverage == pytest.approx(1 - 200 / 600)
    assert view.staleness_ns == 0
    resampled = window.view(600 * MS, 600 * MS, rate_hz=8000)
    assert resampled.samples.size == 4800
    assert resampled.rate_hz == 8000
    other_rate = AudioChunk(600 * MS, 8000, np.zeros((160, 1), np.float32))
    window.add(other_rate)
    assert window.stats().resets == 1
    assert window.view(620 * MS, 20 * MS).rate_hz == 8000


def test_imu_view_resampled_to_a_fixed_rate() -> None:
    window = ImuWindow(WindowConfig(span_ns=2 * S, max_items=1000))
    for i in range(200):
        window.add(imu(i * 5 * MS + (MS if i % 2 else 0)))  # jittered 200 Hz
    view = window.view(900 * MS, 500 * MS)
    grid, values = view.resampled(100.0)
    assert grid[-1] == 900 * MS
    assert np.all(np.diff(grid) == 10 * MS)
    np.testing.assert_allclose(values[:, 5], grid / S, atol=1e-9)  # gyro z holds the stamp
    assert view.gaps == ()


def test_find_gaps_flags_a_stalled_sensor() -> None:
    stamps = np.array([0, 10, 20, 30, 100, 110], dtype=np.int64)
    assert find_gaps(stamps, 0, 110, 2.5) == [(30, 100)]
    assert find_gaps(np.array([], dtype=np.int64), 0, 5, 2.5) == [(0, 5)]


def test_snapshot_needs_configured_windows() -> None:
    only_image = SensorWindows(image=FrameWindow(WindowConfig(span_ns=S, max_items=3)))
    with pytest.raises(ConfigError, match="no audio window"):
        only_image.snapshot(0, {Modality.AUDIO: S})
    with pytest.raises(ConfigError):
        WindowConfig(span_ns=0, max_items=1)


def test_concurrent_add_and_snapshot() -> None:
    win = windows(span_s=1.0)
    done = threading.Event()
    errors: list[BaseException] = []

    def produce() -> None:
        try:
            for i in range(3000):
                win.imu.add(imu(i * 5 * MS))
                if i % 4 == 0:
                    win.audio.add(audio(i // 4, i * 5 * MS))
                if i % 7 == 0:
                    win.image.add(frame(i * 5 * MS))
        except BaseException as err:  # noqa: BLE001 - re-raised in the test thread
            errors.append(err)
        finally:
            done.set()

    thread = threading.Thread(target=produce)
    thread.start()
    spans = {Modality.IMAGE: S // 2, Modality.IMU: S // 2, Modality.AUDIO: S // 2}
    snapshots = 0
    while not done.is_set() or snapshots == 0:
        snap = win.snapshot(None, spans)
        assert (np.diff(snap.imu.stamps_ns) > 0).all()
        assert snap.audio.samples.size == RATE // 2
        snapshots += 1
    thread.join(timeout=30)
    assert not errors
    assert win.imu.stats().stored == 3000
