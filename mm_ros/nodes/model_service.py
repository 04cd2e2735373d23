"""The model service without the bus: parameters, model loading, the question queue, remote tokens.

`ServiceCore` is what ``model_service_node`` delegates to: it loads the backend (in
``configure``, never in a constructor), queues questions (one model, many askers), cuts a
snapshot of the sensor windows for each one, merges tokens from remote adapter nodes, and builds
the diagnostics and the annotated image. Tests drive it directly.
"""

from __future__ import annotations

import collections
import math
import threading
import time
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from mm_ros.core.answers import QUEUED, AnswerValue, ImageRef
from mm_ros.core.diagnostics import (
    BatchFigures,
    Entry,
    GpuMemory,
    LastAnswer,
    ModelFigures,
    QueueFigures,
    WordFigures,
    counted_words,
    model_service_entries,
)
from mm_ros.core.embeddings import decode_tokens
from mm_ros.core.errors import ConfigError, DecodeError, QueryError, TokenSpaceMismatchError
from mm_ros.core.images import encode_image
from mm_ros.core.preprocessing import ImageTransform
from mm_ros.core.scheduler import FAILED, QueryScheduler, SchedulerStats, Ticket
from mm_ros.core.sensors import Frame, PixelFormat
from mm_ros.nodes.lifecycle import ManagedConfig
from mm_ros.nodes.params import check_choice, param
from mm_ros.nodes.sensor_inputs import SensorInputsConfig, stamp_ns

if TYPE_CHECKING:
    import logging
    from collections.abc import Callable

    from mm_ros.core.sensors import Modality
    from mm_ros.llm.backends.base import BackendConfig
    from mm_ros.llm.service import AnswerEngine, Block, Query, ServiceSettings
    from mm_ros.nodes.sensor_inputs import SensorInputs

NS = 1_000_000_000
WAIT_SLICE_S = 0.05  # how often a waiting action goal looks for a cancel request
CATCH_UP_POLL_S = 0.005  # how often a stamped question looks whether late data has arrived
REMOTE_KEPT = 64  # TokenEmbeddings kept per modality (a few seconds at adapter rates)
MODALITIES = ("image", "audio", "imu", "video")


def _names(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


@dataclass(frozen=True)
class ModelServiceConfig(SensorInputsConfig, ManagedConfig):
    """Parameters of ``model_service`` (lists are comma-separated strings)."""

    backend: str = param("composed", "composed (adapters + causal LM) or hf-vlm")
    model_dir: str = param("", "model folder; empty = the embedded default mm-tiny")
    device: str = param("auto", "LM and adapters: auto (cuda when visible), cpu, cuda, cuda:N")
    dtype: str = param("float32", "language-model weights: float32, float16, bfloat16")
    box_format: str = param("", "box syntax the model writes; empty = the model folder's")
    box_scale: str = param("", "what box numbers mean; empty = the format's usual scale")
    runtimes: str = param("tensorrt,onnxruntime,torch", "adapter runtimes, fastest first")
    engine_cache_dir: str = param("engines/cache", "TensorRT engine cache folder")
    remote_modalities: str = param("", "modalities encoded by adapter nodes, e.g. image,imu")
    max_queue: int = param(8, "questions waiting at most; beyond it an immediate error")
    # 8: on the 0.5B-shape benchmark model a step of 8 rows costs about what a step of one does
    # (the weights are read once for all rows), while each row holds its own KV cache and every
    # row's next token waits for the whole step; more askers than this wait in the queue.
    max_batch: int = param(8, "questions decoded together at most (continuous batching)")
    timeout_s: float = param(30.0, "default per-question deadline (goal timeout_s 0)", live=True)
    stamp_wait_s: float = param(
        1.0,
        "a question with a stamp waits this long at most for streams behind it (late data)",
        live=True,
    )
    max_new_tokens: int = param(48, "default answer length limit in tokens", live=True)
    max_new_tokens_limit: int = param(1024, "a question asking for more new tokens is refused")
    max_question_chars: int = param(4096, "a longer question is refused with an error")
    stale_after_s: float = param(
        1.0, "data older than this (before the question's stamp, or now) is named in warnings"
    )
    temperature: float = param(0.0, "0 = greedy (deterministic); > 0 samples", live=True)
    top_p: float = param(1.0, "nucleus sampling mass (temperature > 0)", live=True)
    seed: int = param(0, "sampling seed")
    stop_strings: str = param("", "comma-separated strings that end an answer", live=True)
    centre_half_width_deg: float = param(10.0, "|azimuth| below this is 'centre'", live=True)
    publish_annotated: bool = param(True, "draw boxes on ~/annotated", live=True)
    diagnostics_period_s: float = param(1.0, "seconds between /diagnostics messages")
    diagnostics_topic: str = param("/diagnostics", "diagnostic_msgs/DiagnosticArray")

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in _names(self.remote_modalities):
            check_choice("remote_modalities entry", name, MODALITIES)
        if min(self.max_queue, self.max_batch, self.max_new_tokens) < 1 or self.timeout_s <= 0:
            raise ConfigError(
                f"need max_queue >= 1, max_batch >= 1, timeout_s > 0, max_new_tokens >= 1; "
                f"found {self.max_queue}, {self.max_batch}, {self.timeout_s}, "
                f"{self.max_new_tokens}"
            )
        if not self.max_new_tokens <= self.max_new_tokens_limit or self.max_question_chars < 1:
            raise ConfigError(
                f"need max_new_tokens <= max_new_tokens_limit and max_question_chars >= 1; "
                f"found {self.max_new_tokens}, {self.max_new_tokens_limit}, "
                f"{self.max_question_chars}"
            )
        if self.stamp_wait_s < 0:
            raise ConfigError(f"stamp_wait_s must be >= 0, found {self.stamp_wait_s}")
        if self.diagnostics_period_s <= 0:
            raise ConfigError(
                f"diagnostics_period_s must be > 0, found {self.diagnostics_period_s}"
            )
        self.backend_config()  # validates backend, dtype, box settings, runtimes
        self.settings()

    def remote(self) -> tuple[str, ...]:
        """Modalities whose tokens come from adapter nodes."""
        return _names(self.remote_modalities)

    def backend_config(self) -> BackendConfig:
        """Return the backend part of the parameters."""
        from mm_ros.engines.runtimes.base import RuntimeKind
        from mm_ros.engines.selection import EngineConfig
        from mm_ros.llm.backends.base import BackendConfig

        kinds = []
        for name in _names(self.runtimes):
            check_choice("runtimes entry", name, tuple(k.value for k in RuntimeKind))
            kinds.append(RuntimeKind(name))
        device = "cuda" if self.device.startswith("cuda") else self.device  # auto | cpu | cuda
        engine = EngineConfig(
            preference=tuple(kinds), device=device, engine_cache_dir=self.engine_cache_dir
        )
        return BackendConfig(
            self.backend,
            self.model_dir,
            self.device,
            self.dtype,
            self.box_format,
            self.box_scale,
            engine,
        )

    def settings(self) -> ServiceSettings:
        """Return the answering part of the parameters."""
        from mm_ros.llm.generation import GenerationConfig
        from mm_ros.llm.service import ServiceSettings

        generation = GenerationConfig(
            max_new_tokens=self.max_new_tokens,
            do_sample=self.temperature > 0,
            temperature=self.temperature if self.temperature > 0 else 1.0,
            top_p=self.top_p,
            seed=self.seed,
            stop_strings=_names(self.stop_strings),
        )
        return ServiceSettings(
            generation, self.centre_half_width_deg, self.stale_after_s, max_batch=self.max_batch
        )


def query_from_goal(request: Any, config: ModelServiceConfig) -> Query:
    """Turn an Ask goal (or a plain question string) into a Query with defaults filled in."""
    from mm_ros.llm.service import Query

    if isinstance(request, str):
        return Query(request, timeout_s=config.timeout_s)
    at_ns = int(request.stamp.sec) * NS + int(request.stamp.nanosec)
    return Query(
        question=request.question,
        task=request.task,
        modalities=tuple(request.modalities),
        at_ns=at_ns or None,
        window_s=float(request.window_s),
        timeout_s=float(request.timeout_s) or config.timeout_s,
        max_new_tokens=int(request.max_new_tokens),
    )


def query_problem(query: Query, config: ModelServiceConfig) -> str | None:
    """Say what is wrong with a query's limits (None when nothing is); checked before queueing."""
    if len(query.question) > config.max_question_chars:
        return (
            f"question is {len(query.question)} characters long; at most "
            f"{config.max_question_chars} are taken (max_question_chars)"
        )
    if not (math.isfinite(query.timeout_s) and query.timeout_s > 0):
        return (
            f"timeout_s must be a finite number of seconds >= 0 (0 = the service default, "
            f"{config.timeout_s:g} s), found {query.timeout_s}"
        )
    if not (math.isfinite(query.window_s) and query.window_s >= 0):
        return (
            "window_s must be a finite number of seconds >= 0 (0 = what each adapter was "
            f"trained on), found {query.window_s}"
        )
    if not 0 <= query.max_new_tokens <= config.max_new_tokens_limit:
        return (
            f"max_new_tokens must be 0 (the default, {config.max_new_tokens}) to "
            f"{config.max_new_tokens_limit} (max_new_tokens_limit), found {query.max_new_tokens}"
        )
    return None


@dataclass
class Job:
    """A queued question with its streaming hook."""

    query: Query
    feedback: Callable[[str, int, str], None] | None
    submitted: float = field(default_factory=time.monotonic)


class ServiceCore:
    """Model + queue + remote token store behind the model_service node."""

    def __init__(
        self,
        config: ModelServiceConfig,
        inputs: SensorInputs,
        log: logging.Logger,
        now_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self.config = config
        self.inputs = inputs
        self.log = log
        self.now_ns = now_ns  # the node's clock (sim time in replay): how old the data is
        self.remote_modalities = config.remote()
        self.engine: AnswerEngine | None = None
        self.scheduler: QueryScheduler[Job, AnswerValue] | None = None
        self._remote: dict[str, collections.deque[Block]] = {
            m: collections.deque(maxlen=REMOTE_KEPT) for m in self.remote_modalities
        }
        self.remote_rejected: collections.Counter[str] = collections.Counter()
        self.last_answer: AnswerValue | None = None
        self.words = WordFigures(0, 0)  # unknown question words, for /diagnostics
        self._closed_stats: SchedulerStats | None = None
        self._queue_before: QueueFigures | None = None
        self._batch_before: BatchFigures | None = None
        self._lock = threading.Lock()

    # -- life --------------------------------------------------------------------------------

    def configure(self) -> None:
        """Load the model (lifecycle configure)."""
        from mm_ros.llm.backends.base import load_backend
        from mm_ros.llm.service import AnswerEngine

        backend = load_backend(self.config.backend_config())
        engine = AnswerEngine(backend, self.config.settings())
        unknown = [m for m in self.remote_modalities if m not in engine.modalities()]
        if unknown:
            engine.close()
            raise ConfigError(
                f"remote_modalities {unknown}: model {engine.model_id} has adapters for "
                f"{', '.join(engine.modalities())} only"
            )
        self.log.info("decode step: %s", engine.prepare())
        if backend.random_init:
            self.log.warning(
                "model %s has RANDOM weights: answers are noise until a trained model is given "
                "(model_dir)",
                engine.model_id,
            )
        self.engine = engine

    def reconfigure(self, config: ModelServiceConfig) -> None:
        """Answer the questions that start from now with ``config``'s answering settings."""
        self.config = config
        engine = self.engine
        if engine is not None:
            settings = config.settings()
            engine.settings = replace(
                engine.settings,
                generation=settings.generation,
                centre_half_width_deg=settings.centre_half_width_deg,
            )

    def activate(self) -> None:
        """Start answering (lifecycle activate)."""
        # one worker per batch row: each waits in the decode loop for its question's tokens
        self.scheduler = QueryScheduler(
            self._run, self._fail, self.config.max_queue, "answers", self.config.max_batch
        )

    def deactivate(self) -> None:
        """Stop answering; waiting questions end with an error; the model stays loaded."""
        if self.scheduler is not None:
            self._closed_stats = self.scheduler.stats()
            self.scheduler.close()
            self.scheduler = None

    def cleanup(self) -> None:
        """Release the model (lifecycle cleanup)."""
        self.deactivate()
        if self.engine is not None:
            self.engine.close()
            self.engine = None

    def close(self) -> None:
        """End every waiting question with an error, then release the model."""
        self.cleanup()

    def lm_device(self) -> str:
        """Return the language model's torch device once loaded (auto resolved), else ""."""
        return "" if self.engine is None else str(self.engine.backend.device)

    def describe(self) -> str:
        """One line: model id and the runtime of every adapter."""
        if self.engine is None:
            return "no model loaded"
        runtimes = ", ".join(
            f"{m}: {s.runtime.describe()}" for m, s in self.engine.backend.selections.items()
        )
        remote = f"; remote: {', '.join(self.remote_modalities)}" if self.remote_modalities else ""
        return f"{self.engine.model_id}, LM on {self.lm_device()} ({runtimes}{remote})"

    # -- questions ---------------------------------------------------------------------------

    def failure(self, query: Query, message: str) -> AnswerValue:
        """Return an answer that carries only an error."""
        model_id = self.engine.model_id if self.engine is not None else ""
        return AnswerValue(query.question, query.task, model_id=model_id, error=message)

    def submit(
        self,
        query: Query,
        feedback: Callable[[str, int, str], None] | None,
        on_done: Callable[[AnswerValue], Any] | None = None,
    ) -> Ticket[Job, AnswerValue]:
        """Queue a question; QueryError when it is malformed, the queue full or nothing loaded."""
        problem = query_problem(query, self.config)
        if problem is not None:
            raise QueryError(FAILED, problem)
        if self.scheduler is None:
            state = "unconfigured" if self.engine is None else "inactive"
            raise QueryError(
                "shutdown",
                f"the model service is {state}, not active: it answers again after the "
                f"lifecycle transition activate (`ros2 lifecycle set NODE activate`)",
            )
        if feedback is not None:  # before its worker can say "encode"; a refusal follows at once
            feedback("", 0, QUEUED)
        ticket = self.scheduler.submit(Job(query, feedback), query.timeout_s)
        if on_done is not None:
            ticket.add_done_callback(on_done)
        return ticket

    def ask(
        self,
        query: Query,
        feedback: Callable[[str, int, str], None] | None,
        cancel_requested: Callable[[], bool],
    ) -> AnswerValue:
        """Queue a question and wait for its one result, passing a cancel request on."""
        try:
            ticket = self.submit(query, feedback)
        except QueryError as err:
            return self.failure(query, str(err))
        while (result := ticket.wait(WAIT_SLICE_S)) is None:
            if cancel_requested() and not ticket.cancel_requested:
                ticket.cancel()
        return result

    def _fail(self, job: Job, reason: str, message: str) -> AnswerValue:
        del reason  # the message says it
        return self.failure(job.query, message)

    def _run(self, job: Job, stop: Callable[[], str | None]) -> AnswerValue:
        engine = self.engine
        if engine is None:
            return self.failure(job.query, "the model was unloaded")
        queued_s = time.monotonic() - job.submitted
        query = job.query
        local = tuple(m for m in engine.modalities() if m not in self.remote_modalities)
        # Remote modalities arrive as tokens only: never cut (so never encode) them here, also
        # when every modality is remote (an empty tuple would mean "all" to spans_ns).
        wanted = tuple(m for m in (query.modalities or local) if m in local)
        spans = engine.spans_ns(replace(query, modalities=wanted)) if wanted else {}
        remote = [
            m for m in self.remote_modalities if not query.modalities or m in query.modalities
        ]
        waited_s = self._catch_up(query.at_ns, list(spans), remote, stop)
        t0 = time.perf_counter()
        snapshot = self.inputs.windows.snapshot(query.at_ns, spans)
        blocks = self._remote_blocks(query.at_ns)
        snapshot_s = time.perf_counter() - t0
        answer = engine.answer(
            query,
            snapshot,
            self.inputs.camera,
            blocks=blocks,
            on_partial=job.feedback,
            should_stop=stop,
            now_ns=self.now_ns(),
        )
        answer = replace(
            answer,
            latency_s=(
                ("queue", queued_s),
                *((("stamp_wait", waited_s),) if query.at_ns is not None else ()),
                ("snapshot", snapshot_s),
                *answer.latency_s,
            ),
        )
        with self._lock:
            self.last_answer = answer
            self.words = counted_words(self.words, answer.unknown_words)
        return answer

    def _catch_up(
        self,
        at_ns: int | None,
        modalities: list[Modality],
        remote: list[str],
        stop: Callable[[], str | None],
    ) -> float:
        """Wait (``stamp_wait_s`` at most) until every stream that has data reaches ``at_ns``.

        A question about stamp T must see the samples stamped up to T, and those may still be
        on their way (a replay, a loaded machine, a slow link); without the wait the answer
        would come from whatever had arrived, and two replays of one bag could differ. The
        streams are the local ``modalities`` and the ``remote`` ones (token blocks from adapter
        nodes: the block covering T may come after a block that ends before it). A stream that
        never delivered anything is not waited for. Returns the seconds waited.
        """
        started = time.perf_counter()
        if at_ns is None or not (modalities or remote):
            return 0.0
        deadline = time.monotonic() + self.config.stamp_wait_s
        while (late := self._behind(at_ns, modalities, remote)) and stop() is None:
            if time.monotonic() >= deadline:
                self.log.warning(
                    "answering about stamp %d without waiting longer: %s data still older "
                    "after stamp_wait_s %.2f s",
                    at_ns,
                    ", ".join(late),
                    self.config.stamp_wait_s,
                )
                break
            time.sleep(CATCH_UP_POLL_S)
        return time.perf_counter() - started

    def _behind(self, at_ns: int, modalities: list[Modality], remote: list[str]) -> list[str]:
        """Names of the streams that hold data but none of it at ``at_ns`` yet."""
        late = (
            [m.value for m in self.inputs.windows.behind(at_ns, modalities)] if modalities else []
        )
        with self._lock:
            for name in remote:
                kept = self._remote[name]
                if kept and max(b.stamp_ns for b in kept) < at_ns:
                    late.append(f"remote {name}")
        return late

    # -- remote adapters ---------------------------------------------------------------------

    def on_embeddings(self, message: Any) -> None:
        """Store a TokenEmbeddings message; refuse other token spaces and malformed data."""
        from mm_ros.llm.service import Block

        modality = str(message.modality)
        engine = self.engine
        try:
            if modality not in self._remote:
                raise ConfigError(
                    f"TokenEmbeddings for {modality!r}: not in remote_modalities "
                    f"{list(self._remote)}"
                )
            if engine is not None:
                engine.check_remote(modality, message.adapter_id, message.checkpoint_sha256)
            tokens = decode_tokens(message.shape, message.dtype, message.data)
        except (TokenSpaceMismatchError, DecodeError, ConfigError) as err:
            self.remote_rejected[type(err).__name__] += 1
            self.inputs.drops.drop(f"embeddings/{modality}", type(err).__name__, str(err))
            return
        stamp = stamp_ns(message.header)
        start = int(message.window_start.sec) * NS + int(message.window_start.nanosec)
        transform = image = None
        if modality == "image" and message.source_width:
            a, b, c, d = (float(v) for v in message.input_to_source)
            size = self._input_size(engine)
            transform = ImageTransform(
                a, b, c, d, int(message.source_width), int(message.source_height), size
            )
            image = ImageRef(
                stamp,
                message.header.frame_id,
                int(message.source_width),
                int(message.source_height),
            )
        block = Block(
            modality,
            tokens,
            stamp,
            start or stamp,
            message.header.frame_id,
            f"remote {message.adapter_id}",
            0.0,
            transform,
            image,
        )
        with self._lock:
            self._remote[modality].append(block)

    @staticmethod
    def _input_size(engine: AnswerEngine | None) -> int:
        if engine is None or "image" not in engine.backend.sessions:
            return 1
        pre = engine.backend.sessions["image"].spec.image
        return pre.size_px if pre is not None else 1

    def _remote_blocks(self, at_ns: int | None) -> dict[str, Block]:
        out: dict[str, Block] = {}
        with self._lock:
            for modality, kept in self._remote.items():
                usable = [b for b in kept if at_ns is None or b.stamp_ns <= at_ns]
                if usable:
                    out[modality] = max(usable, key=lambda b: b.stamp_ns)
        return out

    # -- outputs -----------------------------------------------------------------------------

    def annotated(self, answer: AnswerValue) -> dict[str, Any] | None:
        """Return the source image with the answer's boxes drawn (sensor_msgs/Image fields)."""
        from mm_ros.llm.annotate import annotate
        from mm_ros.nodes import convert

        window = self.inputs.windows.image
        if answer.image is None or not answer.detections or window is None:
            return None
        view = window.view(answer.image.stamp_ns, 1)
        frames = [f for f in view.frames if f.stamp_ns == answer.image.stamp_ns]
        if not frames:
            return None
        drawn = annotate(frames[-1].rgb(), answer.detections, answer.bearings, answer.text)
        frame = Frame(answer.image.stamp_ns, answer.image.frame_id, drawn, PixelFormat.RGB8)
        return convert.image(encode_image(frame), frame.stamp_ns, frame.frame_id)

    def diagnostics(self, node: str, gpu: GpuMemory | None = None) -> list[Entry]:
        """Return this period's /diagnostics entries (model, adapters, queue, latency)."""
        engine = self.engine
        model = adapters = batch = None
        if engine is not None:
            model = ModelFigures(engine.model_id, engine.backend.random_init)
            adapters = {m: s.diagnostics() for m, s in engine.backend.selections.items()}
            batch = BatchFigures.from_stats(
                time.monotonic(), engine.decode_stats(), self.config.max_batch
            )
        stats = self.scheduler.stats() if self.scheduler is not None else self._closed_stats
        queue = QueueFigures.from_scheduler(stats, self.config.max_queue) if stats else None
        if queue is not None and self.remote_rejected:
            rejected = {
                **queue.rejected,
                **{f"embeddings.{k}": v for k, v in self.remote_rejected.items()},
            }
            queue = replace(queue, rejected=rejected)
        with self._lock:
            last, words = self.last_answer, self.words
        entries = model_service_entries(
            node,
            model=model,
            adapters=adapters or {},
            queue=queue,
            queue_before=self._queue_before,
            batch=batch,
            batch_before=self._batch_before,
            gpu=gpu,
            last_answer=LastAnswer.from_answer(last) if last is not None else None,
            words=words,
        )
        self._queue_before = queue
        self._batch_before = batch
        return entries
