"""Back-pressure primitives between callbacks (producers) and workers (consumers).

Callbacks never block (STYLE.md section 7): ``put`` on both containers returns at once and, when
there is no room, drops something and counts it. Workers ``get`` with a timeout.
"""

from __future__ import annotations

import collections
import threading
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class QueueStats:
    """Counters since creation (for diagnostics)."""

    put: int  # items offered
    taken: int  # items handed to a consumer
    dropped: int  # items discarded to make room (never seen by a consumer)
    rejected: int  # items refused because the container was closed
    depth: int  # items waiting now


class _Counted:
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._put = self._taken = self._dropped = self._rejected = 0
        self._closed = False

    def close(self) -> None:
        """Refuse further puts and wake every waiting consumer (their ``get`` returns None)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        """Whether `close` was called."""
        return self._closed

    def _admit_locked(self) -> bool:
        """Count an offered item; False (and counted as rejected) once closed."""
        self._put += 1
        if self._closed:
            self._rejected += 1
        return not self._closed

    def _stats(self, depth: int) -> QueueStats:
        return QueueStats(self._put, self._taken, self._dropped, self._rejected, depth)


class LatestSlot(_Counted, Generic[T]):
    """Holds only the newest item: ``put`` replaces an item nobody took (counted as dropped).

    For frames that feed a model: a worker always sees the freshest frame, never a backlog.
    ``put`` never blocks; ``get`` blocks up to ``timeout_s`` and empties the slot.
    """

    def __init__(self) -> None:
        super().__init__()
        self._item: T | None = None
        self._full = False

    def put(self, item: T) -> bool:
        """Store ``item``, replacing an untaken one; return False if the slot is closed."""
        with self._cond:
            if not self._admit_locked():
                return False
            if self._full:
                self._dropped += 1
            self._item, self._full = item, True
            self._cond.notify()
            return True

    def get(self, timeout_s: float | None = None) -> T | None:
        """Take the item, waiting up to ``timeout_s`` (None: forever); None on timeout/close."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._full or self._closed, timeout_s):
                return None
            if not self._full:
                return None
            item, self._item, self._full = self._item, None, False
            self._taken += 1
            return item

    def peek(self) -> T | None:
        """Return the waiting item without taking it (None if empty)."""
        with self._cond:
            return self._item

    def stats(self) -> QueueStats:
        """Return the counters."""
        with self._cond:
            return self._stats(int(self._full))


class DropOldestQueue(_Counted, Generic[T]):
    """FIFO of at most ``maxlen`` items; ``put`` on a full queue drops the OLDEST (counted).

    For streams where recent items matter most (audio chunks, IMU batches, questions with a
    deadline). ``put`` never blocks; ``get`` blocks up to ``timeout_s``.
    """

    def __init__(self, maxlen: int) -> None:
        if maxlen < 1:
            raise ValueError(f"DropOldestQueue maxlen must be >= 1, found {maxlen}")
        super().__init__()
        self._items: collections.deque[T] = collections.deque()
        self.maxlen = maxlen

    def put(self, item: T) -> bool:
        """Append ``item``, dropping the oldest one if full; return False if closed."""
        with self._cond:
            if not self._admit_locked():
                return False
            if len(self._items) >= self.maxlen:
                self._items.popleft()
                self._dropped += 1
            self._items.append(item)
            self._cond.notify()
            return True

    def get(self, timeout_s: float | None = None) -> T | None:
        """Take the oldest item, waiting up to ``timeout_s``; None on timeout or when closed."""
        with self._cond:
            if not self._cond.wait_for(lambda: bool(self._items) or self._closed, timeout_s):
                return None
            if not self._items:
                return None
            self._taken += 1
            return self._items.popleft()

    def drain(self) -> list[T]:
        """Take every waiting item at once, oldest first."""
        with self._cond:
            items = list(self._items)
            self._items.clear()
            self._taken += len(items)
            return items

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)

    def stats(self) -> QueueStats:
        """Return the counters."""
        with self._cond:
            return self._stats(len(self._items))
