"""One model, many askers: a bounded FIFO of queries served by ``workers`` worker threads.

Policy (STYLE.md section 7): ``submit`` never blocks. At most ``workers`` queries run at once
(the model service sets it to ``max_batch``: each running query is one row of the decode batch);
the others wait in FIFO order. A query beyond ``max_queue`` waiting ones is refused at once with
an error naming the queue length; the caller answers it with an error result. Every accepted
query ends exactly once through its `Ticket`: with the worker's result, or with a failure result
for cancel, deadline, shutdown or an exception. Nothing is dropped silently, and a cancel or
deadline is checked while the query waits and while it runs.
"""

from __future__ import annotations

import collections
import itertools
import logging
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, TypeVar

from mm_ros.core.errors import ConfigError, QueryError

if TYPE_CHECKING:
    from collections.abc import Callable

Q = TypeVar("Q")
R = TypeVar("R")
log = logging.getLogger(__name__)

CANCELLED = "cancelled"
DEADLINE = "deadline"
QUEUE_FULL = "queue_full"
SHUTDOWN = "shutdown"
FAILED = "error"
QUERY_FAILURES = (CANCELLED, DEADLINE, QUEUE_FULL, SHUTDOWN, FAILED)


class Ticket(Generic[Q, R]):
    """One accepted query: cancel it, wait for its one result."""

    def __init__(self, number: int, query: Q, timeout_s: float) -> None:
        self.number = number
        self.query = query
        self.timeout_s = timeout_s
        self.submitted = time.monotonic()
        self.deadline = self.submitted + timeout_s  # monotonic s
        self.started: float | None = None
        self._cancel = threading.Event()
        self._done = threading.Event()
        self._result: R | None = None
        self._lock = threading.Lock()
        self._callbacks: list[Callable[[R], object]] = []

    def cancel(self) -> None:
        """Ask for the query to stop; it still ends with exactly one (failure) result."""
        self._cancel.set()

    @property
    def cancel_requested(self) -> bool:
        """True once ``cancel`` was called."""
        return self._cancel.is_set()

    def stop_reason(self) -> str | None:
        """Return ``cancelled`` / ``deadline`` when the query must stop now, else None."""
        if self._cancel.is_set():
            return CANCELLED
        if time.monotonic() >= self.deadline:
            return DEADLINE
        return None

    def finish(self, result: R) -> bool:
        """Set the result once and run the done callbacks; later calls are ignored (False)."""
        with self._lock:
            if self._done.is_set():
                return False
            self._result = result
            self._done.set()
            callbacks = list(self._callbacks)
        for callback in callbacks:
            try:
                callback(result)
            except Exception:  # a broken callback must not lose other results
                log.exception("done callback of query %d failed", self.number)
        return True

    def add_done_callback(self, callback: Callable[[R], object]) -> None:
        """Call ``callback(result)`` once the result is set (at once if it already is)."""
        with self._lock:
            if not self._done.is_set():
                self._callbacks.append(callback)
                return
            result = self._result
        callback(result)  # type: ignore[arg-type]  # set together with _done

    @property
    def done(self) -> bool:
        """True once the result is set."""
        return self._done.is_set()

    def wait(self, timeout_s: float | None = None) -> R | None:
        """Return the result, or None if it is not there within ``timeout_s``."""
        self._done.wait(timeout_s)
        return self._result


@dataclass(frozen=True)
class SchedulerStats:
    """Counters since start (for /diagnostics)."""

    waiting: int
    running: bool  # at least one query is running
    oldest_wait_s: float  # age of the oldest waiting query, 0 when none waits
    served: int  # ended with the worker's result
    failed: dict[str, int]  # ended with a failure, by reason (QUERY_FAILURES)
    running_count: int = 0  # queries running now (at most ``workers``)


class QueryScheduler(Generic[Q, R]):
    """Bounded FIFO + ``workers`` threads; ``run(query, stop_check) -> result`` does the work.

    ``fail(query, reason, message) -> result`` builds the failure result (an answer carrying an
    error), so the caller gets the same result type either way. ``run`` is called from up to
    ``workers`` threads at once.
    """

    def __init__(
        self,
        run: Callable[[Q, Callable[[], str | None]], R],
        fail: Callable[[Q, str, str], R],
        max_queue: int,
        name: str = "queries",
        workers: int = 1,
    ) -> None:
        if max_queue < 1:
            raise ConfigError(f"max_queue must be >= 1, found {max_queue}")
        if workers < 1:
            raise ConfigError(f"workers must be >= 1, found {workers}")
        self._run = run
        self._fail = fail
        self.max_queue = max_queue
        self.workers = workers
        self._queue: collections.deque[Ticket[Q, R]] = collections.deque()
        self._cond = threading.Condition()
        self._numbers = itertools.count(1)
        self._running: list[Ticket[Q, R]] = []
        self._closed = False
        self._served = 0
        self._failed = dict.fromkeys(QUERY_FAILURES, 0)
        self._threads = [
            threading.Thread(target=self._loop, name=f"{name}-{i}", daemon=True)
            for i in range(workers)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, query: Q, timeout_s: float) -> Ticket[Q, R]:
        """Queue ``query``; raise QueryError(queue_full / shutdown) at once when refused."""
        if timeout_s <= 0:
            raise ConfigError(f"query timeout must be > 0 s, found {timeout_s}")
        with self._cond:
            if self._closed:
                self._failed[SHUTDOWN] += 1
                raise QueryError(SHUTDOWN, "the model service is shutting down")
            if len(self._queue) >= self.max_queue:
                self._failed[QUEUE_FULL] += 1
                raise QueryError(
                    QUEUE_FULL,
                    f"queue full: {len(self._queue)} questions already wait (max_queue "
                    f"{self.max_queue}); ask again later",
                )
            ticket: Ticket[Q, R] = Ticket(next(self._numbers), query, timeout_s)
            self._queue.append(ticket)
            self._cond.notify_all()
        return ticket

    def _end(self, ticket: Ticket[Q, R], reason: str, message: str) -> None:
        if ticket.finish(self._fail(ticket.query, reason, message)):
            with self._cond:
                self._failed[reason] += 1

    def _next(self) -> Ticket[Q, R] | None:
        with self._cond:
            while not self._queue and not self._closed:
                self._cond.wait()
            if self._closed:
                return None
            ticket = self._queue.popleft()
            self._running.append(ticket)
            return ticket

    def _loop(self) -> None:
        while (ticket := self._next()) is not None:
            try:
                self._serve(ticket)
            finally:
                with self._cond:
                    self._running.remove(ticket)

    def _serve(self, ticket: Ticket[Q, R]) -> None:
        reason = ticket.stop_reason()
        if reason is not None:  # cancelled or out of time while waiting: never started
            waited = time.monotonic() - ticket.submitted
            self._end(ticket, reason, _stopped(reason, ticket.timeout_s, waited, started=False))
            return
        ticket.started = time.monotonic()
        try:
            result = self._run(ticket.query, ticket.stop_reason)
        except Exception as err:  # any failure still ends the query, with why
            log.exception("query %d failed", ticket.number)
            self._end(ticket, FAILED, f"{type(err).__name__}: {err}")
            return
        if ticket.finish(result):
            with self._cond:
                self._served += 1

    def stats(self) -> SchedulerStats:
        """Return the counters and the current depth."""
        with self._cond:
            oldest = time.monotonic() - self._queue[0].submitted if self._queue else 0.0
            return SchedulerStats(
                len(self._queue),
                bool(self._running),
                oldest,
                self._served,
                dict(self._failed),
                len(self._running),
            )

    def close(self, timeout_s: float = 5.0) -> None:
        """Refuse new queries, end every waiting and running one with a shutdown error now."""
        with self._cond:
            self._closed = True
            waiting = list(self._queue)
            self._queue.clear()
            running = list(self._running)
            self._cond.notify_all()
        for ticket in waiting:
            self._end(ticket, SHUTDOWN, "the model service shut down before this question ran")
        for ticket in running:  # its asker hears why now; its worker stops at the next token
            self._end(ticket, SHUTDOWN, "the model service shut down while answering")
            ticket.cancel()
        end = time.monotonic() + timeout_s
        for thread in self._threads:
            thread.join(max(end - time.monotonic(), 0.0))


def _stopped(reason: str, timeout_s: float, waited_s: float, *, started: bool) -> str:
    where = "while answering" if started else "while waiting in the queue"
    if reason == CANCELLED:
        return f"cancelled {where} after {waited_s:.2f} s"
    return f"deadline of {timeout_s:g} s passed {where} ({waited_s:.2f} s)"


def stop_message(reason: str, timeout_s: float, elapsed_s: float) -> str:
    """Say why a running query stopped (for the answer's error field)."""
    return _stopped(reason, timeout_s, elapsed_s, started=True)
