"""SIGINT and SIGTERM as a shutdown request, the same on every bus.

A node ends on Ctrl-C (SIGINT) and on the SIGTERM that ``ros2 launch``, systemd and container
runtimes send, in the same way: ``spin`` returns, the node answers what it still holds (an
``Ask`` goal in flight gets an error result), and only then the bus closes. Handlers are Python
ones in the main thread, so the bus stays usable while the node winds down (rclpy's own handler
would shut the context down at once and every later publish would fail).

A handler only sets a flag (``mm_ros.core.stopping``): it runs between two bytecodes of whatever
the main thread was doing, so taking a lock there (``Event.set``, a log line) can wait for ever
on a lock the interrupted code holds.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from mm_ros.core.stopping import StopFlag

SHUTDOWN_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_DEFAULTS = (signal.SIG_DFL, signal.default_int_handler, None)


@contextlib.contextmanager
def stop_on_signals(stop: Callable[[], None]) -> Iterator[None]:
    """While inside, SIGINT/SIGTERM call ``stop()``; handlers set by the program win.

    Only handlers still at Python's defaults are replaced (``run_node`` installs its own for
    the whole life of a node), and they are put back on the way out. Outside the main thread
    this does nothing: Python delivers signals to the main thread only.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    replaced: dict[int, Any] = {}
    for sig in SHUTDOWN_SIGNALS:
        if signal.getsignal(sig) in _DEFAULTS:
            replaced[sig] = signal.signal(sig, lambda *_: stop())
    try:
        yield
    finally:
        for signum, previous in replaced.items():
            signal.signal(signum, signal.SIG_DFL if previous is None else previous)


class SpinUntilStopped:
    """``spin`` / ``request_shutdown`` / ``shutdown_requested`` of a bus, on one `StopFlag`.

    A bus sets ``self._stopping = StopFlag()`` in its constructor and sets it again in close.
    """

    _stopping: StopFlag

    def spin(self, timeout_s: float | None = None) -> None:
        """Block until SIGINT/SIGTERM, ``request_shutdown``, ``close`` or the timeout."""
        with stop_on_signals(self.request_shutdown):
            self._stopping.wait(timeout_s)

    def request_shutdown(self) -> None:
        """Make ``spin`` return; everything keeps working until ``close`` (signal-safe)."""
        self._stopping.set()

    @property
    def shutdown_requested(self) -> bool:
        """True once a shutdown signal arrived, ``request_shutdown`` or ``close`` ran."""
        return self._stopping.is_set()
