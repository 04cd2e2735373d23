"""Keep a sensor stream under a bit-rate budget: a token bucket that frames wait for.

Every message is charged to one bucket that refills at the budget. Audio and IMU are charged
but never refused (they are small and time-critical; the bucket may go negative and the next
frames wait). A frame is sent only if the bucket holds its whole size, so over any interval T
the bytes sent are at most ``depth + budget * T`` plus the small messages' excess. JPEG quality
follows the size the budget leaves per frame at the wanted rate; when quality is at its floor
and frames are still too big, the bucket drops frames: the frame rate is what gives way last.
"""

from __future__ import annotations

from dataclasses import dataclass

NS_PER_S = 1_000_000_000


@dataclass(frozen=True)
class BandwidthConfig:
    """A budget and the ranges the controller may move quality and frame rate in."""

    budget_mbps: float = 0.0  # Mbit/s for everything sent; 0: no limit
    max_fps: float = 30.0  # frames offered faster than this are dropped before encoding
    quality: int = 80  # JPEG quality to start from, and to stay at without a budget
    min_quality: int = 20  # below this JPEG blocks hide small objects; drop frames instead
    max_quality: int = 95
    headroom: float = 0.9  # aim frames at 90 % of what is left, so size jitter stays under
    burst_s: float = 0.25  # bucket depth in seconds of budget: one large frame must fit

    def __post_init__(self) -> None:
        if self.budget_mbps < 0:
            raise ValueError(f"budget_mbps must be >= 0, found {self.budget_mbps}")
        if self.max_fps <= 0:
            raise ValueError(f"max_fps must be > 0, found {self.max_fps}")
        if not 1 <= self.min_quality <= self.quality <= self.max_quality <= 100:  # noqa: PLR2004
            raise ValueError(
                "need 1 <= min_quality <= quality <= max_quality <= 100, found "
                f"{self.min_quality}, {self.quality}, {self.max_quality}"
            )
        if self.burst_s <= 0:
            raise ValueError(f"burst_s must be > 0, found {self.burst_s}")

    @property
    def budget_bytes_per_s(self) -> float:
        """The budget in bytes per second (0: no limit)."""
        return self.budget_mbps * 1e6 / 8


class BandwidthController:
    """Decides which frames go out and at what JPEG quality; counts what it sent and dropped.

    Not thread-safe: the streamer calls it under its own lock.
    """

    def __init__(self, config: BandwidthConfig, now_ns: int) -> None:
        self.config = config
        rate = config.budget_bytes_per_s
        self._depth = rate * config.burst_s
        self._tokens = 0.0  # start empty: bytes sent since start never exceed budget * elapsed
        self._last_ns = now_ns
        self._last_frame_ns: int | None = None
        self._small_rate = 0.0  # bytes/s of audio + IMU, smoothed
        self._small_bytes = 0  # since _small_since_ns
        self._small_since_ns = now_ns
        self.quality = config.quality
        self.sent_bytes = 0
        self.frames_sent = 0
        self.frames_dropped = 0  # by the budget or max_fps

    @property
    def limited(self) -> bool:
        """True when a budget is set."""
        return self.config.budget_mbps > 0

    def _refill(self, now_ns: int) -> None:
        dt_s = max(0, now_ns - self._last_ns) / NS_PER_S
        self._last_ns = max(self._last_ns, now_ns)
        self._tokens = min(self._depth, self._tokens + dt_s * self.config.budget_bytes_per_s)

    def charge_small(self, size_bytes: int, now_ns: int) -> None:
        """Account for an audio or IMU message; it is always sent."""
        self.sent_bytes += size_bytes
        if not self.limited:
            return
        self._refill(now_ns)
        self._tokens -= size_bytes
        self._small_bytes += size_bytes
        elapsed_s = (now_ns - self._small_since_ns) / NS_PER_S
        if elapsed_s >= 0.5:  # noqa: PLR2004 - re-measure the small streams twice a second
            measured = self._small_bytes / elapsed_s
            previous = self._small_rate or measured
            self._small_rate = 0.5 * (previous + measured)
            self._small_bytes, self._small_since_ns = 0, now_ns

    def want_frame(self, now_ns: int) -> bool:
        """Whether a frame offered now is worth encoding (rate cap and an empty bucket say no)."""
        period_ns = NS_PER_S / self.config.max_fps
        if self._last_frame_ns is not None and now_ns - self._last_frame_ns < 0.95 * period_ns:
            self.frames_dropped += 1
            return False
        if self.limited:
            self._refill(now_ns)
            if self._tokens <= 0:
                self.frames_dropped += 1
                return False
        return True

    def target_frame_bytes(self) -> float:
        """Frame size the budget leaves at ``max_fps`` after audio and IMU (inf: no budget)."""
        if not self.limited:
            return float("inf")
        c = self.config
        left = max(0.0, c.budget_bytes_per_s * c.headroom - self._small_rate)
        return left / c.max_fps

    def offer_frame(self, size_bytes: int, now_ns: int) -> bool:
        """Charge an encoded frame if the bucket holds it (True: send it); adapt quality."""
        if self.limited:
            self._refill(now_ns)
            self._adapt_quality(size_bytes)
            if self._tokens < size_bytes:
                self.frames_dropped += 1
                return False
            self._tokens -= size_bytes
        self._last_frame_ns = now_ns
        self.sent_bytes += size_bytes
        self.frames_sent += 1
        return True

    def _adapt_quality(self, size_bytes: int) -> None:
        c = self.config
        ratio = self.target_frame_bytes() / max(1, size_bytes)
        if ratio < 1.0:  # too big: step down, further the further off
            step = max(1, min(15, round((1.0 - ratio) * 30)))
            self.quality = max(c.min_quality, self.quality - step)
        elif ratio > 1.4:  # noqa: PLR2004 - well under: creep back up slowly
            self.quality = min(c.max_quality, self.quality + 2)
