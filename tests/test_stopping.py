"""StopFlag: the stop request signal handlers make (no lock taken in the handler)."""

from __future__ import annotations

import os
import signal
import threading
import time

from mm_ros.core.stopping import StopFlag


def test_wait_times_out_unset_and_returns_once_set() -> None:
    flag = StopFlag()
    started = time.monotonic()
    assert flag.wait(0.2) is False
    assert time.monotonic() - started >= 0.2
    threading.Timer(0.1, flag.set).start()
    assert flag.wait(10) is True
    assert flag.is_set()
    assert flag.wait(0) is True


def test_a_signal_handler_sets_it_while_the_main_thread_waits() -> None:
    flag = StopFlag()
    previous = signal.signal(signal.SIGUSR1, lambda *_: flag.set())
    try:
        threading.Timer(0.2, lambda: os.kill(os.getpid(), signal.SIGUSR1)).start()
        started = time.monotonic()
        assert flag.wait(30) is True  # the handler ran in this (the main) thread
        assert time.monotonic() - started < 10
    finally:
        signal.signal(signal.SIGUSR1, previous)
