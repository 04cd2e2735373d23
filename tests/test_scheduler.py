"""QueryScheduler: bounded queue, one worker, exactly one result per accepted query."""

from __future__ import annotations

import threading
from collections import Counter
from typing import TYPE_CHECKING

import pytest

from mm_ros.core.errors import ConfigError, QueryError
from mm_ros.core.scheduler import QUEUE_FULL, QueryScheduler

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

WAIT_S = 10.0


def fail(query: str, reason: str, message: str) -> str:
    return f"error:{reason}:{query}:{message}"


class Gate:
    """A run function that blocks until released, so tests control what is running."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.started = threading.Event()
        self.seen: list[str] = []

    def run(self, query: str, stop: Callable[[], str | None]) -> str:
        self.seen.append(query)
        self.started.set()
        while not self.release.wait(0.01):
            reason = stop()
            if reason:
                return f"stopped:{reason}:{query}"
        if query == "boom":
            raise ValueError("model exploded")
        return f"answer:{query}"


@pytest.fixture
def gate() -> Iterator[Gate]:
    g = Gate()
    yield g
    g.release.set()


def test_fifty_concurrent_queries_end_once_each(gate: Gate) -> None:
    scheduler: QueryScheduler[str, str] = QueryScheduler(gate.run, fail, max_queue=64)
    gate.release.set()
    tickets = []
    lock = threading.Lock()

    def ask(i: int) -> None:
        t = scheduler.submit(f"q{i}", timeout_s=WAIT_S)
        with lock:
            tickets.append(t)

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    results = [t.wait(WAIT_S) for t in tickets]
    assert sorted(results) == sorted(f"answer:q{i}" for i in range(50))
    assert Counter(gate.seen) == Counter(f"q{i}" for i in range(50))  # each ran exactly once
    assert scheduler.stats().served == 50
    scheduler.close()


def test_full_queue_refuses_at_once_naming_the_length(gate: Gate) -> None:
    scheduler: QueryScheduler[str, str] = QueryScheduler(gate.run, fail, max_queue=2)
    running = scheduler.submit("running", WAIT_S)
    assert gate.started.wait(WAIT_S)
    waiting = [scheduler.submit(f"w{i}", WAIT_S) for i in range(2)]
    with pytest.raises(QueryError, match=r"2 questions already wait \(max_queue 2\)") as err:
        scheduler.submit("one too many", WAIT_S)
    assert err.value.reason == QUEUE_FULL
    gate.release.set()
    assert running.wait(WAIT_S) == "answer:running"
    assert [w.wait(WAIT_S) for w in waiting] == ["answer:w0", "answer:w1"]
    assert scheduler.stats().failed[QUEUE_FULL] == 1
    scheduler.close()


def test_cancel_while_waiting_and_while_running(gate: Gate) -> None:
    scheduler: QueryScheduler[str, str] = QueryScheduler(gate.run, fail, max_queue=4)
    running = scheduler.submit("a", WAIT_S)
    assert gate.started.wait(WAIT_S)
    queued = scheduler.submit("b", WAIT_S)
    queued.cancel()
    running.cancel()
    assert running.wait(WAIT_S) == "stopped:cancelled:a"
    result = queued.wait(WAIT_S)
    assert result is not None
    assert result.startswith("error:cancelled:b:cancelled while waiting in the queue")
    assert "b" not in gate.seen  # a cancelled waiting query never reaches the model
    scheduler.close()


def test_deadline_in_queue_and_while_running(gate: Gate) -> None:
    scheduler: QueryScheduler[str, str] = QueryScheduler(gate.run, fail, max_queue=4)
    slow = scheduler.submit("slow", timeout_s=0.2)
    queued = scheduler.submit("late", timeout_s=0.1)
    assert slow.wait(WAIT_S) == "stopped:deadline:slow"
    result = queued.wait(WAIT_S)
    assert result is not None
    assert result.startswith("error:deadline:late:deadline of 0.1 s passed while waiting")
    scheduler.close()


def test_exception_becomes_one_error_result(gate: Gate) -> None:
    scheduler: QueryScheduler[str, str] = QueryScheduler(gate.run, fail, max_queue=4)
    gate.release.set()
    assert scheduler.submit("boom", WAIT_S).wait(WAIT_S) == (
        "error:error:boom:ValueError: model exploded"
    )
    assert scheduler.submit("fine", WAIT_S).wait(WAIT_S) == "answer:fine"  # worker survived
    scheduler.close()


def test_close_ends_waiting_and_running_queries(gate: Gate) -> None:
    scheduler: QueryScheduler[str, str] = QueryScheduler(gate.run, fail, max_queue=4)
    running = scheduler.submit("a", WAIT_S)
    assert gate.started.wait(WAIT_S)
    waiting = scheduler.submit("b", WAIT_S)
    scheduler.close()
    ended = running.wait(WAIT_S)
    assert ended is not None
    assert ended.startswith("error:shutdown:a:the model service shut down while answering")
    assert running.cancel_requested  # and the worker was told to stop: close joined it
    assert scheduler.stats().running is False
    result = waiting.wait(WAIT_S)
    assert result is not None
    assert result.startswith("error:shutdown:b")
    with pytest.raises(QueryError, match="shutting down"):
        scheduler.submit("c", WAIT_S)


def test_bad_settings_are_refused(gate: Gate) -> None:
    with pytest.raises(ConfigError, match="max_queue must be >= 1, found 0"):
        QueryScheduler(gate.run, fail, max_queue=0)
    scheduler: QueryScheduler[str, str] = QueryScheduler(gate.run, fail, max_queue=1)
    with pytest.raises(ConfigError, match="timeout must be > 0"):
        scheduler.submit("x", 0)
    scheduler.close()


class Gates:
    """A run function whose queries each block until released by name."""

    def __init__(self) -> None:
        self.release: dict[str, threading.Event] = {}
        self.started: dict[str, threading.Event] = {}
        self.lock = threading.Lock()

    def _event(self, table: dict[str, threading.Event], query: str) -> threading.Event:
        with self.lock:
            return table.setdefault(query, threading.Event())

    def run(self, query: str, stop: Callable[[], str | None]) -> str:
        self._event(self.started, query).set()
        while not self._event(self.release, query).wait(0.01):
            reason = stop()
            if reason:
                return f"stopped:{reason}:{query}"
        return f"answer:{query}"

    def wait_started(self, query: str) -> bool:
        return self._event(self.started, query).wait(WAIT_S)

    def is_started(self, query: str) -> bool:
        return self._event(self.started, query).is_set()

    def finish(self, query: str) -> None:
        self._event(self.release, query).set()


def test_workers_run_that_many_queries_at_once_and_queue_the_rest() -> None:
    gates = Gates()
    scheduler: QueryScheduler[str, str] = QueryScheduler(gates.run, fail, max_queue=4, workers=3)
    tickets = {q: scheduler.submit(q, WAIT_S) for q in ("a", "b", "c", "d")}
    assert all(gates.wait_started(q) for q in ("a", "b", "c"))
    stats = scheduler.stats()
    assert (stats.running, stats.running_count, stats.waiting) == (True, 3, 1)
    assert not gates.is_started("d")  # beyond the workers it waits, as one worker's queue did
    gates.finish("b")
    assert tickets["b"].wait(WAIT_S) == "answer:b"
    assert gates.wait_started("d")  # the freed worker takes the next in line
    for q in ("a", "c", "d"):
        gates.finish(q)
        assert tickets[q].wait(WAIT_S) == f"answer:{q}"
    assert scheduler.stats().served == 4
    scheduler.close()


def test_close_ends_every_running_query_at_once() -> None:
    gates = Gates()
    scheduler: QueryScheduler[str, str] = QueryScheduler(gates.run, fail, max_queue=4, workers=2)
    running = [scheduler.submit(q, WAIT_S) for q in ("a", "b")]
    assert gates.wait_started("a")
    assert gates.wait_started("b")
    waiting = scheduler.submit("c", WAIT_S)
    scheduler.close()
    for ticket, query in zip(running, ("a", "b"), strict=True):
        ended = ticket.wait(0)  # set by close itself, before the workers stop
        assert ended is not None
        assert ended.startswith(f"error:shutdown:{query}:the model service shut down while")
        assert ticket.cancel_requested
    assert scheduler.stats().running_count == 0
    result = waiting.wait(0)
    assert result is not None
    assert result.startswith("error:shutdown:c")


def test_workers_must_be_positive(gate: Gate) -> None:
    with pytest.raises(ConfigError, match="workers must be >= 1, found 0"):
        QueryScheduler(gate.run, fail, max_queue=1, workers=0)
