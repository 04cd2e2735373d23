"""Decode-and-store for one input topic: bad messages are counted and reported, never raised.

A subscription callback hands ``Intake.offer`` a function that decodes the message's fields; a
`DecodeError` is counted by class, remembered for diagnostics and passed to ``on_reject`` as
``(topic, error class, message)`` (the node's `DropLog`, which throttles the log lines), and the
callback returns normally so the node keeps serving.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, TypeVar

from mm_ros.core.errors import DecodeError

if TYPE_CHECKING:
    from collections.abc import Callable

T = TypeVar("T")


@dataclass(frozen=True)
class IntakeStats:
    """Counters of one topic since start (for diagnostics)."""

    accepted: int
    rejected: int
    rejected_by_error: dict[str, int]  # error class name -> count
    last_error: str  # "" until the first rejection


class Intake(Generic[T]):
    """Decodes with a caller's function and stores the value; thread-safe counters."""

    def __init__(
        self,
        topic: str,
        store: Callable[[T], object],
        on_reject: Callable[[str, str, str], None] | None = None,
    ) -> None:
        self.topic = topic
        self._store = store
        self._on_reject = on_reject
        self._lock = threading.Lock()
        self._accepted = 0
        self._rejected: dict[str, int] = {}
        self._last_error = ""

    def offer(self, decode: Callable[[], T]) -> T | None:
        """Run ``decode`` and store its value; on `DecodeError` count it and return None."""
        try:
            value = decode()
        except DecodeError as err:
            text = f"rejected message on {self.topic}: {err}"
            with self._lock:
                name = type(err).__name__
                self._rejected[name] = self._rejected.get(name, 0) + 1
                self._last_error = text
            if self._on_reject is not None:
                self._on_reject(self.topic, name, str(err))
            return None
        self._store(value)
        with self._lock:
            self._accepted += 1
        return value

    def stats(self) -> IntakeStats:
        """Return the counters."""
        with self._lock:
            return IntakeStats(
                accepted=self._accepted,
                rejected=sum(self._rejected.values()),
                rejected_by_error=dict(self._rejected),
                last_error=self._last_error,
            )
