"""Bounded, time-indexed windows per modality and aligned snapshots across them.

Callbacks ``add`` decoded values (one thread); workers take a ``view`` or a `SensorWindows`
``snapshot`` (another thread); every method is thread-safe and ``add`` never blocks for long.
Stamps are header stamps in int ns, so replay with sim time is deterministic.

Policies, shared by every window (all counted in `WindowStats`):
- memory: items older than ``span_ns`` behind the newest stamp are evicted, and never more than
  ``max_items`` are kept (the oldest go first), so an endless stream stays bounded;
- out of order: a late item still inside the span is inserted in stamp order;
- duplicate stamp: the later arrival is dropped (the first one is already in views);
- too old: an item older than the span behind the newest is dropped;
- clock jumped back: an item more than ``backjump_ns`` behind the newest (bag loop, sim restart)
  empties the window, which then starts again from that item.
"""

from __future__ import annotations

import bisect
import enum
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, TypeVar

import numpy as np

from mm_ros.core.audio import resample
from mm_ros.core.errors import ConfigError
from mm_ros.core.sensors import AudioChunk, Frame, ImuSample, Modality

if TYPE_CHECKING:
    from collections.abc import Mapping

    from numpy.typing import NDArray

T = TypeVar("T")
NS_PER_S = 1_000_000_000
# A stream this far behind the newest one is stalled: snapshots of "now" no longer wait for it.
ALIGN_MAX_LAG_NS = NS_PER_S


@dataclass(frozen=True)
class WindowConfig:
    """Bounds and policies of one window."""

    span_ns: int  # keep this much history behind the newest stamp
    max_items: int  # hard cap on stored items (frames, chunks or samples), oldest evicted
    # A stamp this far behind the newest means the clock restarted, not a late message: 1 s is
    # far beyond any transport delay yet far below a bag loop or sim restart.
    backjump_ns: int = NS_PER_S
    # A spacing this many times the median spacing is reported as a gap: 2.5 tolerates jitter
    # and one lost message at 30 Hz/200 Hz, and still flags a stalled sensor.
    gap_factor: float = 2.5

    def __post_init__(self) -> None:
        if self.span_ns <= 0:
            raise ConfigError(f"WindowConfig.span_ns must be > 0, found {self.span_ns}")
        if self.max_items < 1:
            raise ConfigError(f"WindowConfig.max_items must be >= 1, found {self.max_items}")
        if self.backjump_ns <= 0:
            raise ConfigError(f"WindowConfig.backjump_ns must be > 0, found {self.backjump_ns}")
        if self.gap_factor <= 1.0:
            raise ConfigError(f"WindowConfig.gap_factor must be > 1, found {self.gap_factor}")


class Added(enum.Enum):
    """What ``add`` did with an item."""

    STORED = "stored"
    OUT_OF_ORDER = "out_of_order"  # stored, in stamp order
    RESET = "reset"  # clock jumped back: window emptied, item stored
    DUPLICATE = "duplicate"  # dropped
    TOO_OLD = "too_old"  # dropped


@dataclass(frozen=True)
class WindowStats:
    """Counters since creation (for diagnostics) and the current fill."""

    stored: int
    out_of_order: int
    duplicates: int
    too_old: int
    resets: int
    evicted: int
    items: int  # held now
    newest_ns: int | None


Gap = tuple[int, int]  # [start_ns, end_ns) with no data


class _TimeIndex(Generic[T]):
    """Items sorted by stamp, bounded by span and count; the locking base of every window."""

    def __init__(self, config: WindowConfig) -> None:
        self.config = config
        self._lock = threading.Lock()
        self._stamps: list[int] = []
        self._items: list[T] = []
        self._counts = dict.fromkeys(("stored", "out_of_order", "duplicates", "too_old"), 0)
        self._resets = self._evicted = 0

    def _add(self, stamp_ns: int, item: T) -> Added:
        with self._lock:
            stamps = self._stamps
            outcome = Added.STORED
            if stamps and stamp_ns <= stamps[-1]:
                newest = stamps[-1]
                if newest - stamp_ns > self.config.backjump_ns:
                    self._reset_locked()
                    outcome = Added.RESET
                elif newest - stamp_ns > self.config.span_ns:
                    self._counts["too_old"] += 1
                    return Added.TOO_OLD
                else:
                    at = bisect.bisect_left(stamps, stamp_ns)
                    if at < len(stamps) and stamps[at] == stamp_ns:
                        self._counts["duplicates"] += 1
                        return Added.DUPLICATE
                    stamps.insert(at, stamp_ns)
                    self._items.insert(at, item)
                    self._counts["out_of_order"] += 1
                    self._counts["stored"] += 1
                    self._evict_locked()
                    return Added.OUT_OF_ORDER
            stamps.append(stamp_ns)
            self._items.append(item)
            self._counts["stored"] += 1
            self._evict_locked()
            return outcome

    def _evict_locked(self) -> None:
        oldest_kept = self._stamps[-1] - self.config.span_ns
        cut = bisect.bisect_left(self._stamps, oldest_kept)
        cut = max(cut, len(self._stamps) - self.config.max_items)
        if cut > 0:
            del self._stamps[:cut]
            del self._items[:cut]
            self._evicted += cut

    def _reset_locked(self) -> None:
        self._evicted += len(self._stamps)
        self._stamps.clear()
        self._items.clear()
        self._resets += 1

    def reset(self) -> None:
        """Empty the window (counted as a reset)."""
        with self._lock:
            self._reset_locked()

    def _between(self, start_ns: int, end_ns: int) -> list[T]:
        """Items with start_ns <= stamp <= end_ns, oldest first."""
        with self._lock:
            lo = bisect.bisect_left(self._stamps, start_ns)
            hi = bisect.bisect_right(self._stamps, end_ns)
            return self._items[lo:hi]

    def newest_ns(self) -> int | None:
        """Newest stamp held, or None when empty."""
        with self._lock:
            return self._stamps[-1] if self._stamps else None

    def __len__(self) -> int:
        with self._lock:
            return len(self._stamps)

    def stats(self) -> WindowStats:
        """Return the counters."""
        with self._lock:
            return WindowStats(
                stored=self._counts["stored"],
                out_of_order=self._counts["out_of_order"],
                duplicates=self._counts["duplicates"],
                too_old=self._counts["too_old"],
                resets=self._resets,
                evicted=self._evicted,
                items=len(self._stamps),
                newest_ns=self._stamps[-1] if self._stamps else None,
            )


def find_gaps(
    stamps: NDArray[np.int64], start_ns: int, end_ns: int, gap_factor: float
) -> list[Gap]:
    """Return spans in [start_ns, end_ns] without samples, longer than gap_factor x median spacing.

    Needs at least 3 stamps to know the spacing; with fewer, only an empty view is a gap.
    """
    if stamps.size == 0:
        return [(start_ns, end_ns)] if end_ns > start_ns else []
    if stamps.size < 3:  # noqa: PLR2004 - two spacings give a median
        return []
    edges = np.concatenate([[start_ns], stamps, [end_ns]]).astype(np.int64)
    spacing = np.diff(edges)
    limit = gap_factor * float(np.median(np.diff(stamps)))
    return [(int(edges[i]), int(edges[i + 1])) for i in np.flatnonzero(spacing > limit)]


@dataclass(frozen=True)
class FrameView:
    """Frames in [start_ns, at_ns], oldest first."""

    at_ns: int
    start_ns: int
    frames: tuple[Frame, ...]
    staleness_ns: int | None  # at_ns - newest frame's stamp; None without frames
    gaps: tuple[Gap, ...]


class FrameWindow(_TimeIndex[Frame]):
    """The last ``max_items`` frames within ``span_ns``."""

    def add(self, frame: Frame) -> Added:
        """Store a frame by its stamp (see the module docstring for the policies)."""
        return self._add(frame.stamp_ns, frame)

    def view(self, at_ns: int, span_ns: int, max_frames: int | None = None) -> FrameView:
        """Return the frames stamped in [at_ns - span_ns, at_ns], at most the newest max_frames."""
        start = at_ns - span_ns
        frames = self._between(start, at_ns)
        if max_frames is not None:
            frames = frames[-max_frames:] if max_frames > 0 else []
        stamps = np.array([f.stamp_ns for f in frames], dtype=np.int64)
        return FrameView(
            at_ns=at_ns,
            start_ns=start,
            frames=tuple(frames),
            staleness_ns=at_ns - frames[-1].stamp_ns if frames else None,
            gaps=tuple(find_gaps(stamps, start, at_ns, self.config.gap_factor)),
        )

    def latest(self) -> Frame | None:
        """Return the newest frame, or None."""
        with self._lock:
            return self._items[-1] if self._items else None


@dataclass(frozen=True)
class ImuView:
    """IMU samples in [start_ns, at_ns] as arrays; NaN where a sample lacks a part."""

    at_ns: int
    start_ns: int
    stamps_ns: NDArray[np.int64]  # (N,)
    linear_acceleration_mps2: NDArray[np.float64]  # (N, 3)
    angular_velocity_rps: NDArray[np.float64]  # (N, 3)
    orientation_xyzw: NDArray[np.float64]  # (N, 4)
    staleness_ns: int | None
    gaps: tuple[Gap, ...]

    def resampled(self, rate_hz: float) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
        """Return (K,) stamps on a uniform grid ending at at_ns and (K, 6) accel+gyro on it.

        Linear interpolation between samples, held constant beyond the first/last one; NaN
        everywhere if the view is empty.
        """
        period_ns = NS_PER_S / rate_hz
        count = int((self.at_ns - self.start_ns) / period_ns) + 1
        grid = (self.at_ns - np.arange(count - 1, -1, -1) * period_ns).astype(np.int64)
        values = np.concatenate([self.linear_acceleration_mps2, self.angular_velocity_rps], axis=1)
        out = np.full((count, 6), np.nan)
        if self.stamps_ns.size:
            for axis in range(6):
                out[:, axis] = np.interp(grid, self.stamps_ns, values[:, axis])
        return grid, out


class ImuWindow(_TimeIndex[ImuSample]):
    """The last ``span_ns`` of IMU samples (at most ``max_items``)."""

    def add(self, sample: ImuSample) -> Added:
        """Store a sample by its stamp (see the module docstring for the policies)."""
        return self._add(sample.stamp_ns, sample)

    def view(self, at_ns: int, span_ns: int) -> ImuView:
        """Return the samples stamped in [at_ns - span_ns, at_ns] as arrays."""
        start = at_ns - span_ns
        samples = self._between(start, at_ns)
        nan3, nan4 = (np.nan,) * 3, (np.nan,) * 4
        stamps = np.array([s.stamp_ns for s in samples], dtype=np.int64)
        return ImuView(
            at_ns=at_ns,
            start_ns=start,
            stamps_ns=stamps,
            linear_acceleration_mps2=np.array(
                [s.linear_acceleration_mps2 or nan3 for s in samples], dtype=np.float64
            ).reshape(-1, 3),
            angular_velocity_rps=np.array(
                [s.angular_velocity_rps or nan3 for s in samples], dtype=np.float64
            ).reshape(-1, 3),
            orientation_xyzw=np.array(
                [s.orientation_xyzw or nan4 for s in samples], dtype=np.float64
            ).reshape(-1, 4),
            staleness_ns=at_ns - samples[-1].stamp_ns if samples else None,
            gaps=tuple(find_gaps(stamps, start, at_ns, self.config.gap_factor)),
        )


@dataclass(frozen=True)
class AudioView:
    """Mono audio covering exactly [start_ns, at_ns): zeros where no chunk supplied samples."""

    at_ns: int
    start_ns: int
    rate_hz: int
    samples: NDArray[np.float32]  # (span * rate_hz,) mono; sample i is at start_ns + i / rate
    staleness_ns: int | None  # at_ns - end of the newest chunk (0 when data reaches at_ns)
    gaps: tuple[Gap, ...]  # spans in the view with no audio

    @property
    def coverage(self) -> float:
        """Fraction of the view backed by audio."""
        span = self.at_ns - self.start_ns
        return 1.0 - sum(b - a for a, b in self.gaps) / span if span > 0 else 0.0


class AudioWindow(_TimeIndex[AudioChunk]):
    """The last ``span_ns`` of audio, stored as mono chunks at the source rate.

    Chunks whose stamp is within ``jitter_ns`` of the previous chunk's end are treated as
    contiguous (capture stamps jitter, the sample clock does not); a larger distance is a gap
    (or an overlap, where the later chunk wins). A change of sample rate resets the window.
    """

    def __init__(self, config: WindowConfig, jitter_ns: int = 5_000_000) -> None:
        # 5 ms: more than the jitter of a capture thread's wake-up, less than one 10 ms chunk.
        super().__init__(config)
        self.jitter_ns = jitter_ns
        self._rate_hz: int | None = None

    def add(self, chunk: AudioChunk) -> Added:
        """Store the chunk as mono (see the module docstring for the policies)."""
        mono = AudioChunk(chunk.stamp_ns, chunk.rate_hz, chunk.mono()[:, None])
        if self._rate_hz is not None and chunk.rate_hz != self._rate_hz:
            self.reset()
        self._rate_hz = chunk.rate_hz
        return self._add(chunk.stamp_ns, mono)

    def newest_ns(self) -> int | None:
        """End of the newest chunk (one sample period after its last sample), or None."""
        with self._lock:
            return self._items[-1].end_ns if self._items else None

    def view(self, at_ns: int, span_ns: int, rate_hz: int | None = None) -> AudioView:
        """Return the audio in [at_ns - span_ns, at_ns), resampled to ``rate_hz`` if given."""
        start = at_ns - span_ns
        with self._lock:
            lo = max(0, bisect.bisect_left(self._stamps, start) - 1)  # may start before `start`
            hi = bisect.bisect_left(self._stamps, at_ns)
            chunks = self._items[lo:hi]
        source_hz = chunks[0].rate_hz if chunks else (rate_hz or 16_000)
        count = span_ns * source_hz // NS_PER_S
        out = np.zeros(count, dtype=np.float32)
        covered = np.zeros(count, dtype=bool)
        cursor: int | None = None  # where the previous chunk ended, ns
        for chunk in chunks:
            begin = chunk.stamp_ns
            if cursor is not None and abs(begin - cursor) <= self.jitter_ns:
                begin = cursor  # contiguous with the previous chunk
            cursor = begin + chunk.duration_ns
            first = round((begin - start) * source_hz / NS_PER_S)
            samples = chunk.samples[:, 0]
            a, b = max(first, 0), min(first + samples.size, count)
            if a < b:
                out[a:b] = samples[a - first : b - first]
                covered[a:b] = True
        staleness = None if cursor is None else max(0, at_ns - cursor)
        gaps = _uncovered(covered, start, source_hz)
        if rate_hz is not None and rate_hz != source_hz:
            out = resample(out, source_hz, rate_hz)
        return AudioView(
            at_ns=at_ns,
            start_ns=start,
            rate_hz=rate_hz or source_hz,
            samples=out,
            staleness_ns=staleness,
            gaps=tuple(gaps),
        )


def _uncovered(covered: NDArray[np.bool_], start_ns: int, rate_hz: int) -> list[Gap]:
    edges = np.diff(np.concatenate([[1], covered.astype(np.int8), [1]]))
    begins, ends = np.flatnonzero(edges == -1), np.flatnonzero(edges == 1)
    return [
        (start_ns + int(b) * NS_PER_S // rate_hz, start_ns + int(e) * NS_PER_S // rate_hz)
        for b, e in zip(begins, ends, strict=True)
    ]


@dataclass(frozen=True)
class Snapshot:
    """Aligned views of every requested modality at one instant."""

    at_ns: int
    image: FrameView | None
    audio: AudioView | None
    imu: ImuView | None

    def staleness_ns(self) -> dict[Modality, int | None]:
        """Staleness per modality present in the snapshot."""
        views = {Modality.IMAGE: self.image, Modality.AUDIO: self.audio, Modality.IMU: self.imu}
        return {m: v.staleness_ns for m, v in views.items() if v is not None}


class SensorWindows:
    """One window per modality; ``snapshot`` cuts aligned views for a question."""

    def __init__(
        self,
        image: FrameWindow | None = None,
        audio: AudioWindow | None = None,
        imu: ImuWindow | None = None,
    ) -> None:
        self.image = image
        self.audio = audio
        self.imu = imu

    def _window(self, modality: Modality) -> _TimeIndex[Frame] | AudioWindow | ImuWindow:
        window = {Modality.IMAGE: self.image, Modality.AUDIO: self.audio, Modality.IMU: self.imu}[
            modality
        ]
        if window is None:
            raise ConfigError(f"no {modality.value} window configured; have {self.modalities()}")
        return window

    def modalities(self) -> list[Modality]:
        """Modalities with a window."""
        views = {Modality.IMAGE: self.image, Modality.AUDIO: self.audio, Modality.IMU: self.imu}
        return [m for m, w in views.items() if w is not None]

    def _newest_each(self, modalities: list[Modality] | None) -> dict[Modality, int]:
        """Newest stamp of each given (default: every) window that holds data."""
        stamps = {m: self._window(m).newest_ns() for m in modalities or self.modalities()}
        return {m: s for m, s in stamps.items() if s is not None}

    def newest_ns(self, modalities: list[Modality] | None = None) -> int | None:
        """Newest stamp over the given (default: all) windows, or None if all are empty."""
        return max(self._newest_each(modalities).values(), default=None)

    def behind(self, at_ns: int, modalities: list[Modality] | None = None) -> list[Modality]:
        """Return the given (default: all) streams holding data, none of it at ``at_ns`` yet."""
        return [m for m, s in self._newest_each(modalities).items() if s < at_ns]

    def aligned_ns(
        self, modalities: list[Modality] | None = None, max_lag_ns: int = ALIGN_MAX_LAG_NS
    ) -> int | None:
        """Return the newest instant every live stream has reached, or None if all are empty.

        Streams arrive on their own channels, so their newest stamps differ by up to a period
        (more on a loaded machine). Cutting every view at the newest stamp of any one stream
        leaves the others short: an audio clip that must end at the cut is empty when the
        audio lags by more than its length. The oldest of the newest stamps is the latest
        instant all streams have covered. A stream more than ``max_lag_ns`` behind the newest
        counts as stalled and does not hold the cut back.
        """
        present = self._newest_each(modalities).values()
        if not present:
            return None
        newest = max(present)
        return min(s for s in present if newest - s <= max_lag_ns)

    def snapshot(
        self,
        at_ns: int | None,
        spans_ns: Mapping[Modality, int],
        *,
        max_frames: int | None = None,
        audio_rate_hz: int | None = None,
    ) -> Snapshot:
        """Return views of each modality in ``spans_ns`` ending at ``at_ns``.

        None: at the newest instant every live stream has reached (`aligned_ns`).
        """
        for modality in spans_ns:
            self._window(modality)
        if at_ns is None:
            at_ns = self.aligned_ns(list(spans_ns)) or 0
        image = audio = imu = None
        if Modality.IMAGE in spans_ns and self.image is not None:
            image = self.image.view(at_ns, spans_ns[Modality.IMAGE], max_frames)
        if Modality.AUDIO in spans_ns and self.audio is not None:
            audio = self.audio.view(at_ns, spans_ns[Modality.AUDIO], audio_rate_hz)
        if Modality.IMU in spans_ns and self.imu is not None:
            imu = self.imu.view(at_ns, spans_ns[Modality.IMU])
        return Snapshot(at_ns=at_ns, image=image, audio=audio, imu=imu)
