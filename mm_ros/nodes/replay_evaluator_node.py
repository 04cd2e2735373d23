"""``replay_evaluator``: ask scripted questions about a replayed bag and score them against truth.

Subscribes the synthetic world's per-frame truth (``ground_truth_topic``); every ``every_s`` of
bag time it asks spatial, grounding, audio and motion questions through the model service's Ask
action with ``stamp`` = that truth's stamp, so the service answers from the windows of that very
moment. When no truth came for ``idle_s`` (the bag ended), or at shutdown, it writes
``evaluation.json`` and ``evaluation.md`` into ``output_dir``, logs a summary and exits.
Run it with ``use_sim_time:=true`` next to ``bag_player`` (replay.launch.yaml).
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mm_ros.bus.naming import QoS
from mm_ros.core.errors import ConfigError
from mm_ros.nodes.params import declare_config, param
from mm_ros.nodes.runner import run_node

if TYPE_CHECKING:
    from mm_ros.bus.protocol import Bus
    from mm_ros.core.answers import AnswerValue
    from mm_ros.train.replay import ReplayQuestion

DESCRIPTION = __doc__ or ""
log = logging.getLogger("mm_ros.replay_evaluator")
NS = 1_000_000_000
TRUTH_DEPTH = 1000  # a few seconds of 30 Hz truth: none may be dropped while a question runs
STOP_POLL_S = 0.2  # how often a wait for the Ask server looks whether the node is stopping
JOIN_S = 2.0  # at close, how long the worker threads get to end (they are daemons)


@dataclass(frozen=True)
class ReplayEvaluatorConfig:
    """Parameters of ``replay_evaluator``."""

    ground_truth_topic: str = param("/sim_world/ground_truth", "std_msgs/String, FrameTruth JSON")
    ask_action: str = param("/mm/ask", "the model service's mm_ros/action/Ask")
    every_s: float = param(1.0, "bag seconds between the moments asked about")
    warmup_s: float = param(2.0, "bag seconds at the start not asked about (longer than "
                            "the model's windows: the first messages may be lost)")  # fmt: skip
    settle_s: float = param(0.2, "ask once truth this much newer arrived (sensors caught up)")
    idle_s: float = param(3.0, "wall seconds without truth that end the replay")
    answer_timeout_s: float = param(60.0, "per-question deadline (goal timeout_s)")
    max_new_tokens: int = param(0, "answer length limit; 0 = the service's default")
    output_dir: str = param("replay_eval", "folder for evaluation.json and evaluation.md")
    bag: str = param("", "the bag's name, written into the report")

    def __post_init__(self) -> None:
        if self.every_s <= 0 or self.idle_s <= 0 or self.answer_timeout_s <= 0:
            raise ConfigError(
                f"every_s, idle_s and answer_timeout_s must be > 0, found "
                f"{self.every_s}, {self.idle_s}, {self.answer_timeout_s}"
            )
        if self.settle_s < 0 or self.warmup_s < 0 or self.max_new_tokens < 0:
            raise ConfigError(
                f"settle_s, warmup_s and max_new_tokens must be >= 0, found "
                f"{self.settle_s}, {self.warmup_s}, {self.max_new_tokens}"
            )
        if not self.output_dir:
            raise ConfigError("output_dir must name a folder, found ''")


class ReplayEvaluatorNode:
    """Truth in, questions out on a worker thread, the report at the end; then closes its bus."""

    name = "replay_evaluator"
    description = DESCRIPTION
    Config = ReplayEvaluatorConfig

    def __init__(self, bus: Bus) -> None:
        from mm_ros.train.replay import MomentSchedule, ReplayReport

        self.bus = bus
        self.config = declare_config(bus, ReplayEvaluatorConfig)
        self.report = ReplayReport(bag=self.config.bag)
        self.written: tuple[Path, Path] | None = None
        self.finished = threading.Event()
        self._schedule = MomentSchedule(self.config.every_s, self.config.warmup_s)
        self._pending: list[dict[str, Any]] = []  # moments waiting for newer truth (settle)
        self._ready: queue.SimpleQueue[dict[str, Any] | None] = queue.SimpleQueue()
        self._heard = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._in_flight: Any = None  # the goal being answered, cancelled at close
        self._client = bus.create_action_client(self.config.ask_action, "mm_ros/action/Ask")
        bus.create_subscription(self.config.ground_truth_topic, "std_msgs/msg/String",
                                self._on_truth, QoS(depth=TRUTH_DEPTH))  # fmt: skip
        self._threads = [
            threading.Thread(target=self._ask_loop, name="ask", daemon=True),
            threading.Thread(target=self._watch, name="idle", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def _on_truth(self, message: Any) -> None:
        """Keep moments on the schedule; release those that newer truth has settled."""
        truth = json.loads(message.data)
        stamp = int(truth["stamp_ns"])
        settle_ns = round(self.config.settle_s * NS)
        with self._lock:
            while self._pending and self._pending[0]["stamp_ns"] + settle_ns <= stamp:
                self._ready.put(self._pending.pop(0))
            if self._schedule.take(stamp):
                self._pending.append(truth)
        self._heard.set()

    def _watch(self) -> None:
        """End the replay when truth stopped coming for ``idle_s`` after it started."""
        self._heard.wait()
        while not self._stop.is_set():
            self._heard.clear()
            if not self._heard.wait(self.config.idle_s):
                break
        if self._stop.is_set():
            return
        with self._lock:  # the bag ended: what waits for settling is as settled as it gets
            for truth in self._pending:
                self._ready.put(truth)
            self._pending.clear()
        self._ready.put(None)

    def _ask_loop(self) -> None:
        from mm_ros.train.replay import questions_at

        while (truth := self._ready.get()) is not None and not self._stop.is_set():
            for question in questions_at(truth):
                if self._stop.is_set():
                    return
                started = time.monotonic()
                answer = self._ask(question)
                self.report.add(question, answer, time.monotonic() - started)
        if not self._stop.is_set():
            self._finish()
            log.info("replay ended; closing")
            self.bus.request_shutdown()  # spin returns: the process exits 0, report written

    def _ask(self, question: ReplayQuestion) -> AnswerValue:
        from mm_ros.core.answers import AnswerValue
        from mm_ros.nodes.convert import answer_value

        cfg = self.config
        if not self._wait_for_server(cfg.answer_timeout_s):
            error = f"no Ask server on {cfg.ask_action} after {cfg.answer_timeout_s} s"
            return AnswerValue(question.text, question.task, error=error)
        goal = {
            "question": question.text,
            "task": question.task,
            "stamp": {"sec": question.stamp_ns // NS, "nanosec": question.stamp_ns % NS},
            "timeout_s": cfg.answer_timeout_s,
            "max_new_tokens": cfg.max_new_tokens,
        }
        try:
            handle = self._client.send_goal(goal, timeout_s=cfg.answer_timeout_s)
            self._in_flight = handle
            _, result = handle.result(cfg.answer_timeout_s + 5)
        except Exception as err:  # noqa: BLE001 - any failure is a failed row, never a crash
            return AnswerValue(question.text, question.task, error=f"Ask failed: {err}")
        finally:
            self._in_flight = None
        return answer_value(result.answer)

    def _wait_for_server(self, timeout_s: float) -> bool:
        """Wait for the Ask server, ``timeout_s`` at most, less if the node is stopping."""
        deadline = time.monotonic() + timeout_s
        while not self._stop.is_set() and (left := deadline - time.monotonic()) > 0:
            if self._client.wait_for_server(min(left, STOP_POLL_S)):
                return True
        return False

    def _finish(self) -> None:
        """Write the report once and log its summary."""
        with self._lock:
            if self.written is not None:
                return
            self.written = self.report.write(Path(self.config.output_dir))
        log.info("replay evaluation: %s; wrote %s", self.report.summary(), self.written[0])
        self.finished.set()

    def close(self) -> None:
        """Stop asking (the question in flight is cancelled) and write what was answered."""
        self._stop.set()
        self._ready.put(None)
        self._heard.set()
        in_flight = self._in_flight
        if in_flight is not None:
            with contextlib.suppress(Exception):  # the server may be gone: nothing to cancel
                in_flight.cancel(timeout_s=1.0)
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout=JOIN_S)
        self._finish()


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``replay_evaluator``."""
    return run_node(ReplayEvaluatorNode, list(sys.argv[1:] if argv is None else argv))
