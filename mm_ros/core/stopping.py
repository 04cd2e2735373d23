"""A stop request that a signal handler may make.

A Python signal handler runs in the main thread between two bytecodes of whatever it was doing.
If that code holds a lock (``threading.Event.wait`` holds its condition's lock around each
wake-up), a handler that takes the same lock (``Event.set``) waits for itself for ever. So
handlers only set a plain attribute, and waiters look at it in short sleeps.
"""

from __future__ import annotations

import time

POLL_S = 0.05  # how soon a waiter sees the request


class StopFlag:
    """``set`` from anywhere, signal handlers included; ``wait`` / ``is_set`` as on an Event."""

    def __init__(self) -> None:
        self._set = False

    def set(self) -> None:
        """Request the stop (takes no lock)."""
        self._set = True

    def is_set(self) -> bool:
        """Return True once ``set`` ran."""
        return self._set

    def wait(self, timeout_s: float | None = None) -> bool:
        """Sleep until set or ``timeout_s`` has passed; return whether it is set."""
        end = None if timeout_s is None else time.monotonic() + timeout_s
        while not self._set:
            left = POLL_S if end is None else min(POLL_S, end - time.monotonic())
            if left <= 0:
                break
            time.sleep(left)
        return self._set
