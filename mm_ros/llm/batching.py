"""Continuous batching: one thread decodes every running question, one token each per step.

A question handed to :meth:`DecodeLoop.generate` joins the batch at the next step: its prompt is
prefilled alone (through the prefix cache, so questions about one snapshot share the prefix),
then it takes one token per step together with the others, and it leaves the batch when it
stops (EOS, stop string, ``max_new_tokens``, cancel, deadline) without stopping the rest. Its
answer is the one :meth:`Generator.generate` gives it alone, token for token: the step is
row-exact (:mod:`mm_ros.llm.rows`).

Back-pressure: none here. The caller bounds the rows (the model service runs ``max_batch``
scheduler workers, each waiting in ``generate`` for one question). The hooks of a question
(``on_text``, ``should_stop``, ``on_prefill``) run on the loop thread between steps, so they
must be quick: every row waits for them.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mm_ros.core.errors import QueryError
from mm_ros.core.scheduler import SHUTDOWN

if TYPE_CHECKING:
    from collections.abc import Callable, Hashable

    from mm_ros.llm.assembly import Assembled
    from mm_ros.llm.generation import Decoding, Generated, GenerationConfig, Generator


@dataclass(frozen=True)
class DecodeStats:
    """Counters since start (the node turns differences into rates for /diagnostics)."""

    rows: int  # questions in the batch now
    steps: int  # decode steps run
    row_steps: int  # sum over steps of the rows in each (mean batch = row_steps / steps)
    tokens: int  # answer tokens chosen (EOS not counted; first tokens from prefills are)
    prefills: int
    busy_s: float  # seconds spent in prefills and steps
    step: str  # the decode formulation in use (rows.DecodeStep.description), "" before any


@dataclass(eq=False)
class _Request:
    assembled: Assembled
    config: GenerationConfig
    prefix_key: Hashable | None
    on_text: Callable[[str, int], None] | None
    should_stop: Callable[[], str | None] | None
    on_prefill: Callable[[], None] | None
    asked: float = field(default_factory=time.perf_counter)
    done: threading.Event = field(default_factory=threading.Event)
    result: Generated | None = None
    error: Exception | None = None

    def end(self, decoding: Decoding) -> None:
        try:
            self.result = decoding.result()
        except Exception as err:  # noqa: BLE001 - handed to the asker's thread, raised there
            self.error = err
        self.done.set()

    def fail(self, error: Exception) -> None:
        self.error = error
        self.done.set()


class DecodeLoop:
    """One decode thread for many askers (started by the first question)."""

    def __init__(self, generator: Generator, name: str = "decode") -> None:
        self.generator = generator
        self.name = name
        self._cond = threading.Condition()
        self._arrivals: list[_Request] = []
        self._closed = False
        self._thread: threading.Thread | None = None
        self._rows = self._steps = self._row_steps = self._tokens = self._prefills = 0
        self._busy_s = 0.0

    def generate(
        self,
        assembled: Assembled,
        config: GenerationConfig,
        *,
        prefix_key: Hashable | None = None,
        on_text: Callable[[str, int], None] | None = None,
        should_stop: Callable[[], str | None] | None = None,
        on_prefill: Callable[[], None] | None = None,
    ) -> Generated:
        """Decode one question in the shared batch; block until it is over.

        Arguments as :meth:`Generator.generate`, plus ``on_prefill()`` called when its prefill
        starts. Raises what its decoding raised (a hook's error, the model's), or QueryError
        (shutdown) when the loop closes first.
        """
        request = _Request(assembled, config, prefix_key, on_text, should_stop, on_prefill)
        with self._cond:
            if self._closed:
                raise QueryError(SHUTDOWN, "the decode loop is closed")
            self._arrivals.append(request)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
                self._thread.start()
            self._cond.notify_all()
        request.done.wait()
        if request.error is not None:
            raise request.error
        assert request.result is not None  # set together with done
        return request.result

    def _run(self) -> None:
        live: list[tuple[_Request, Decoding]] = []
        while True:
            with self._cond:
                while not self._arrivals and not live and not self._closed:
                    self._cond.wait()
                arrivals, self._arrivals = self._arrivals, []
                closed = self._closed
            if closed:
                gone = QueryError(SHUTDOWN, "the model service shut down while answering")
                for request in [*arrivals, *(r for r, _ in live)]:
                    request.fail(gone)
                return
            t0 = time.perf_counter()
            for request in arrivals:  # join at this step: prefill alone, then decode with all
                live.append((request, self._start(request)))
            running = [d for _, d in live if not d.over]
            if running:
                before = sum(len(d.tokens) for d in running)
                stepped = 0
                try:
                    stepped = self.generator.advance(running)
                except Exception as err:  # noqa: BLE001 - the model failed: every row ends with it
                    for decoding in running:
                        decoding.fail(err)
                with self._cond:
                    self._steps += int(stepped > 0)
                    self._row_steps += stepped
                    self._tokens += sum(len(d.tokens) for d in running) - before
            still = []
            for request, decoding in live:
                if decoding.over:
                    request.end(decoding)
                else:
                    still.append((request, decoding))
            live = still
            with self._cond:
                self._rows = len(live)
                self._busy_s += time.perf_counter() - t0

    def _start(self, request: _Request) -> Decoding:
        decoding = self.generator.start(
            request.assembled,
            request.config,
            prefix_key=request.prefix_key,
            on_text=request.on_text,
            should_stop=request.should_stop,
            on_prefill=request.on_prefill,
            started=request.asked,
        )
        with self._cond:
            self._prefills += int(decoding.prefill_s > 0)
            self._tokens += len(decoding.tokens)
        return decoding

    def stats(self) -> DecodeStats:
        """Return the counters and the batch size now."""
        step = self.generator.built_step
        with self._cond:
            return DecodeStats(
                self._rows,
                self._steps,
                self._row_steps,
                self._tokens,
                self._prefills,
                self._busy_s,
                step.description if step is not None else "",
            )

    def close(self, timeout_s: float = 5.0) -> None:
        """End every question in the loop with a shutdown error after the current step."""
        with self._cond:
            self._closed = True
            thread = self._thread
            self._cond.notify_all()
        if thread is not None:
            thread.join(timeout_s)
