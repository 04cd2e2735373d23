"""Diagnostics of the model service: pure builders from figures to ``/diagnostics`` entries.

Each builder turns plain numbers into a ``Health`` (level, one-line message that says what to
fix, key/value figures). Nothing here reads a clock, a GPU or a bus: the node samples the
figures once per period and passes them in, so every level is a table test.

Node-facing API (names as in nodes/model_service.py)::

    entries = model_service_entries(
        "model_service",
        model=ModelFigures(backend.model_id, backend.random_init),
        adapters={m: sel.diagnostics() for m, sel in backend.selections.items()},
        queue=QueueFigures.from_scheduler(scheduler.stats(), config.max_queue),
        queue_before=previous_queue_figures,                # None on the first period
        batch=BatchFigures.from_stats(monotonic_s, engine.decode_stats(), config.max_batch),
        batch_before=previous_batch_figures,                # None on the first period
        gpu=GpuMemory("cuda:0", allocated, reserved, total, free),  # torch.cuda; None on CPU
        last_answer=LastAnswer.from_answer(last_answer) if last_answer else None,
        words=WordFigures(questions, with_unknown, recent_unknown, last_unknown),
        limits=DiagnosticLimits(),
    )
    # -> list[Entry]; nodes.diagnostics.diagnostic_array(entries, now_ns) -> DiagnosticArray
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mm_ros.core.errors import ConfigError
from mm_ros.core.health import Health, Level
from mm_ros.core.scheduler import (
    CANCELLED,
    DEADLINE,
    FAILED,
    QUEUE_FULL,
    SHUTDOWN,
    SchedulerStats,
)

if TYPE_CHECKING:
    from mm_ros.core.answers import AnswerValue

GIB = 1 << 30
SKIPPED = "skipped."  # key prefix of a skipped runtime in Selection.diagnostics()
BENIGN_REJECTIONS = frozenset({CANCELLED, SHUTDOWN})  # the asker's or operator's choice
ONE_ROW = "one row at a time"  # how llm.rows describes its unbatched fallback step

RUNTIME_FIXES = {  # what makes a skipped runtime usable
    "tensorrt": "build the engine on this machine with `mm-ros engines build` (TensorRT + GPU)",
    "onnxruntime": "export ONNX with `mm-ros engines export` and install onnxruntime(-gpu)",
    "torch_compile": "install a torch with inductor support (and a C compiler)",
}
REJECTION_FIXES = {  # by core.scheduler failure reason (and "inactive" for a managed node)
    QUEUE_FULL: "ask less often or raise the queue size",
    DEADLINE: "give questions a longer deadline or use a faster runtime/model",
    FAILED: "see the node's log for the failing answers",
    "inactive": "activate the node (`mm-ros lifecycle set NODE activate`)",
}
STAGE_FIXES = {  # by the stage names of Answer.latency (msg/StageLatency.msg) and "queue"
    "queue": "questions wait for the model: ask less often or use a faster runtime/model",
    "stamp_wait": "data for the asked stamp arrives late: check the streams' lag, or ask sooner",
    "snapshot": "shorten the sensor windows",
    "decode": "send smaller images, or raw ones instead of JPEG/PNG",
    "encode": "use a faster runtime for this adapter (`mm-ros engines build`) or a token reducer",
    "prefill": "fewer prompt tokens: a token reducer or fewer modalities",
    "generate": "fewer new tokens (max_new_tokens) or a smaller or quantized model",
}


@dataclass(frozen=True)
class DiagnosticLimits:
    """Where figures turn from OK to WARN/ERROR."""

    max_wait_s: float = 2.0  # a question waiting longer means the model cannot keep up
    latency_budget_s: float = 0.4  # DESIGN.md section 12: mm-tiny p99 on CPU
    gpu_warn_fraction: float = 0.90  # allocator growth past this risks out-of-memory
    gpu_error_fraction: float = 0.98

    def __post_init__(self) -> None:
        if self.max_wait_s <= 0 or self.latency_budget_s <= 0:
            msg = (
                f"max_wait_s and latency_budget_s must be > 0, found {self.max_wait_s}, "
                f"{self.latency_budget_s}"
            )
            raise ConfigError(msg)
        if not 0 < self.gpu_warn_fraction <= self.gpu_error_fraction <= 1:
            msg = (
                "expected 0 < gpu_warn_fraction <= gpu_error_fraction <= 1, found "
                f"{self.gpu_warn_fraction}, {self.gpu_error_fraction}"
            )
            raise ConfigError(msg)


@dataclass(frozen=True)
class ModelFigures:
    """Which model answers, and whether it was ever trained."""

    model_id: str  # e.g. "mm-tiny@3f2a9c1e"
    random_weights: bool  # LoadedBackend.random_init: answers are noise


@dataclass(frozen=True)
class QueueFigures:
    """The question queue at one instant; counters are cumulative since start."""

    waiting: int
    capacity: int
    oldest_age_s: float | None  # None when empty
    dropped: int = 0  # questions discarded to make room
    rejected: Mapping[str, int] = field(default_factory=dict)  # reason -> count

    @classmethod
    def from_scheduler(cls, stats: SchedulerStats, capacity: int) -> QueueFigures:
        """Figures of a ``core.scheduler.QueryScheduler`` (its failures are the rejections)."""
        oldest = stats.oldest_wait_s if stats.waiting else None
        return cls(stats.waiting, capacity, oldest, 0, dict(stats.failed))

    def __post_init__(self) -> None:
        if self.capacity < 1 or self.waiting < 0:
            msg = (
                f"queue needs capacity >= 1 and waiting >= 0, found {self.capacity}, {self.waiting}"
            )
            raise ConfigError(msg)


@dataclass(frozen=True)
class BatchFigures:
    """The decode batch at one instant; counters are cumulative since start."""

    at_s: float  # monotonic s when sampled (rates come from two samples)
    rows: int  # questions in the batch now
    max_batch: int
    steps: int  # decode steps run
    row_steps: int  # rows summed over steps
    tokens: int  # new tokens chosen
    busy_s: float  # seconds spent prefilling and stepping
    step: str  # the decode formulation; "" before the first question

    @classmethod
    def from_stats(cls, at_s: float, stats: Any, max_batch: int) -> BatchFigures:
        """Figures of an ``llm.batching.DecodeStats`` (fields of the same names)."""
        return cls(
            at_s, stats.rows, max_batch, stats.steps, stats.row_steps, stats.tokens,
            stats.busy_s, stats.step,
        )  # fmt: skip

    def __post_init__(self) -> None:
        if self.max_batch < 1 or not 0 <= self.rows <= self.max_batch:
            msg = f"batch needs 0 <= rows <= max_batch >= 1, found {self.rows}, {self.max_batch}"
            raise ConfigError(msg)


@dataclass(frozen=True)
class GpuMemory:
    """torch.cuda figures in bytes, passed in as numbers (core stays torch-free)."""

    device: str  # e.g. "cuda:0 NVIDIA H100"
    allocated_bytes: int  # torch.cuda.memory_allocated: live tensors
    reserved_bytes: int  # torch.cuda.memory_reserved: held by the caching allocator
    total_bytes: int  # torch.cuda.mem_get_info()[1]
    free_bytes: int | None = None  # torch.cuda.mem_get_info()[0]: other processes count too

    def __post_init__(self) -> None:
        if self.total_bytes <= 0:
            raise ConfigError(f"GPU total memory must be > 0 bytes, found {self.total_bytes}")


@dataclass(frozen=True)
class LastAnswer:
    """Per-stage wall time of the newest answer (the Answer's ``latency`` field)."""

    stages_s: Mapping[str, float]  # "decode", "encode/image", "prefill", ..., "total"
    generated_tokens: int = 0
    error: str = ""  # why the answer failed; empty on success

    @classmethod
    def from_answer(cls, answer: AnswerValue) -> LastAnswer:
        """Figures of an ``AnswerValue`` (its ``latency_s`` stages, tokens and error)."""
        return cls(dict(answer.latency_s), answer.generated_tokens, answer.error)


@dataclass(frozen=True)
class WordFigures:
    """Question words the model's tokenizer did not know (`AnswerValue.unknown_words`)."""

    questions: int  # answered since the node started
    with_unknown: int  # of those, questions with at least one unknown word
    recent: tuple[str, ...] = ()  # the latest distinct unknown words, oldest first
    last: tuple[str, ...] = ()  # the unknown words of the last question


@dataclass(frozen=True)
class Entry:
    """One ``DiagnosticStatus``: name, hardware id and health."""

    name: str
    hardware_id: str
    health: Health


def model_health(model: ModelFigures) -> Health:
    """WARN when the weights are random, else OK naming the model."""
    values = {"model_id": model.model_id, "random_weights": str(model.random_weights).lower()}
    if model.random_weights:
        message = (
            f"{model.model_id}: weights are random, answers are meaningless; "
            "point the model parameter at a trained checkpoint"
        )
        return Health(Level.WARN, message, values)
    return Health(Level.OK, f"{model.model_id} loaded", values)


def adapter_health(adapter: str, selection: Mapping[str, str]) -> Health:
    """Judge the runtime in use (``Selection.diagnostics()``) and why faster ones were skipped."""
    values = dict(selection)
    runtime = selection.get("runtime")
    if not runtime:
        return Health(Level.ERROR, f"{adapter}: no runtime loaded; see the node's log", values)
    skipped = {k.removeprefix(SKIPPED): v for k, v in selection.items() if k.startswith(SKIPPED)}
    running = selection.get("running", runtime)
    if not skipped:
        return Health(Level.OK, f"{adapter}: {running}", values)
    first, reason = next(iter(skipped.items()))
    fix = RUNTIME_FIXES.get(first, f"make {first} available")
    message = (
        f"{adapter}: fell back to {runtime} ({', '.join(skipped)} skipped; {first}: {reason}); "
        f"to fix: {fix}"
    )
    return Health(Level.WARN, message, values)


def queue_health(
    now: QueueFigures, before: QueueFigures | None, limits: DiagnosticLimits
) -> Health:
    """ERROR when full, WARN on long waits or new faulty rejections/drops, else OK."""
    values = {
        "waiting": str(now.waiting),
        "capacity": str(now.capacity),
        "oldest_age_s": "none" if now.oldest_age_s is None else f"{now.oldest_age_s:.3f}",
        "dropped": str(now.dropped),
        "rejected": str(sum(now.rejected.values())),
    }
    values.update({f"rejected.{k}": str(n) for k, n in sorted(now.rejected.items())})
    old = before.rejected if before else {}
    new = {
        k: n - old.get(k, 0)
        for k, n in sorted(now.rejected.items())
        if k not in BENIGN_REJECTIONS and n > old.get(k, 0)
    }
    new_drops = now.dropped - (before.dropped if before else 0)
    if now.waiting >= now.capacity:
        message = (
            f"queue full ({now.waiting}/{now.capacity}): new questions are refused; "
            f"to fix: {REJECTION_FIXES[QUEUE_FULL]}"
        )
        return Health(Level.ERROR, message, values)
    if now.oldest_age_s is not None and now.oldest_age_s > limits.max_wait_s:
        message = (
            f"oldest question waited {now.oldest_age_s:.1f} s (> {limits.max_wait_s:g} s): the "
            "model cannot keep up; to fix: ask less often or use a faster runtime/model"
        )
        return Health(Level.WARN, message, values)
    if new or new_drops > 0:
        parts = [f"{k} {n}" for k, n in new.items()]
        if new_drops > 0:
            parts.append(f"dropped {new_drops}")
        worst = max(new, key=lambda k: new[k]) if new else QUEUE_FULL
        fix = REJECTION_FIXES.get(worst, "see the node's log for the reason")
        message = f"questions lost in the last period ({', '.join(parts)}); to fix: {fix}"
        return Health(Level.WARN, message, values)
    return Health(Level.OK, f"{now.waiting} waiting", values)


def batch_health(now: BatchFigures, before: BatchFigures | None) -> Health:
    """Batch size and tokens/s over the last period; WARN when rows cannot share a step."""
    values = {
        "batch_size": str(now.rows),
        "max_batch": str(now.max_batch),
        "steps": str(now.steps),
        "tokens": str(now.tokens),
        "decode": now.step or "not built yet",
    }
    summary = f"{now.rows}/{now.max_batch} rows"
    if before is not None and now.at_s > before.at_s:
        period = now.at_s - before.at_s
        steps = now.steps - before.steps
        rate = (now.tokens - before.tokens) / period
        mean = (now.row_steps - before.row_steps) / steps if steps else 0.0
        values["tokens_per_s"] = f"{rate:.1f}"
        values["mean_batch"] = f"{mean:.2f}"
        values["busy_fraction"] = f"{min((now.busy_s - before.busy_s) / period, 1.0):.3f}"
        summary += f", {rate:.1f} tokens/s, mean batch {mean:.1f}"
    if now.max_batch > 1 and now.step.startswith(ONE_ROW):
        message = (
            f"{summary}; decoding {now.step}: questions share no weight reads; to fix: a "
            "Llama/Qwen2 model with sdpa or eager attention, or max_batch 1"
        )
        return Health(Level.WARN, message, values)
    return Health(Level.OK, summary, values)


def gpu_health(gpu: GpuMemory, limits: DiagnosticLimits) -> Health:
    """WARN/ERROR when the GPU is nearly full (ours or, with ``free_bytes``, anyone's)."""
    ours = gpu.reserved_bytes / gpu.total_bytes
    used = ours if gpu.free_bytes is None else max(ours, 1 - gpu.free_bytes / gpu.total_bytes)
    values = {
        "device": gpu.device,
        "allocated_gib": f"{gpu.allocated_bytes / GIB:.2f}",
        "reserved_gib": f"{gpu.reserved_bytes / GIB:.2f}",
        "total_gib": f"{gpu.total_bytes / GIB:.2f}",
        "used_fraction": f"{used:.3f}",
    }
    if gpu.free_bytes is not None:
        values["free_gib"] = f"{gpu.free_bytes / GIB:.2f}"
    summary = f"{used:.0%} of {gpu.total_bytes / GIB:.1f} GiB used on {gpu.device}"
    fix = "lower max_batch, use fp16/int8 engines or a smaller model, or free the GPU"
    if used >= limits.gpu_error_fraction:
        return Health(Level.ERROR, f"{summary}: out of memory is imminent; to fix: {fix}", values)
    if used >= limits.gpu_warn_fraction:
        return Health(Level.WARN, f"{summary}; to fix: {fix}", values)
    return Health(Level.OK, summary, values)


def latency_health(last: LastAnswer | None, limits: DiagnosticLimits) -> Health:
    """Per-stage latency of the last answer; WARN over budget, naming the slowest stage."""
    if last is None:
        return Health(Level.OK, "no answer yet", {})
    values = {f"{stage}_s": f"{s:.4f}" for stage, s in last.stages_s.items()}
    generate_s = last.stages_s.get("generate", 0.0)
    if last.generated_tokens and generate_s > 0:
        values["tokens_per_s"] = f"{last.generated_tokens / generate_s:.1f}"
    if last.error:
        return Health(Level.WARN, f"last answer failed: {last.error}", values)
    total = last.stages_s.get("total", sum(last.stages_s.values()))
    # first_token overlaps prefill and encode; total overlaps everything
    parts = {k: v for k, v in last.stages_s.items() if k not in ("total", "first_token")}
    if total <= limits.latency_budget_s or not parts:
        return Health(Level.OK, f"last answer {total:.3f} s", values)
    slowest = max(parts, key=lambda k: parts[k])
    fix = STAGE_FIXES.get(slowest.split("/")[0], "see the stage figures")
    message = (
        f"last answer took {total:.3f} s (budget {limits.latency_budget_s:g} s); slowest stage "
        f"{slowest} {parts[slowest]:.3f} s; to fix: {fix}"
    )
    return Health(Level.WARN, message, values)


def drops_health(
    now: Mapping[tuple[str, str], int], before: Mapping[tuple[str, str], int] | None
) -> Health:
    """Input dropped per topic and cause (``DropLog.counts``); WARN when the last period had any."""
    values = {f"{topic}: {cause}": str(n) for (topic, cause), n in sorted(now.items())}
    old = before or {}
    new = {key: n - old.get(key, 0) for key, n in sorted(now.items()) if n > old.get(key, 0)}
    if new:
        parts = ", ".join(f"{topic} {cause} {n}" for (topic, cause), n in new.items())
        message = (
            f"dropped {sum(new.values())} input sample(s) in the last period ({parts}); "
            "to fix: check the sender of those topics (type, encoding, sizes)"
        )
        return Health(Level.WARN, message, values)
    total = sum(now.values())
    return Health(Level.OK, f"no input dropped in the last period ({total} since start)", values)


RECENT_WORDS = 20  # distinct unknown words kept for /diagnostics


def counted_words(before: WordFigures, unknown: tuple[str, ...]) -> WordFigures:
    """Return ``before`` with one more question, whose unknown words were ``unknown``."""
    recent = [w for w in before.recent if w not in unknown] + list(unknown)
    return WordFigures(
        before.questions + 1,
        before.with_unknown + int(bool(unknown)),
        tuple(recent[-RECENT_WORDS:]),
        unknown,
    )


def vocabulary_health(words: WordFigures) -> Health:
    """WARN when the last question held words the model does not know, naming them."""
    values = {
        "questions": str(words.questions),
        "questions_with_unknown_words": str(words.with_unknown),
        "recent_unknown_words": " ".join(words.recent),
    }
    if words.last:
        message = (
            f"last question had words this model does not know: {', '.join(words.last)} "
            f"({words.with_unknown} of {words.questions} questions so far); they reach it as "
            "pieces or <unk>: ask with words it knows, or train it with them"
        )
        return Health(Level.WARN, message, values)
    if not words.questions:
        return Health(Level.OK, "no question yet", values)
    return Health(
        Level.OK,
        f"every word of the last question known ({words.with_unknown} of {words.questions} "
        "questions had unknown words)",
        values,
    )


def model_service_entries(
    node: str,
    *,
    model: ModelFigures | None,
    adapters: Mapping[str, Mapping[str, str]],
    queue: QueueFigures | None,
    queue_before: QueueFigures | None = None,
    batch: BatchFigures | None = None,
    batch_before: BatchFigures | None = None,
    gpu: GpuMemory | None = None,
    last_answer: LastAnswer | None = None,
    words: WordFigures | None = None,
    limits: DiagnosticLimits | None = None,
) -> list[Entry]:
    """Every entry of one model-service period (``None`` figures are left out)."""
    limits = limits or DiagnosticLimits()
    model_id = model.model_id if model else ""
    out: list[Entry] = []
    if model is not None:
        out.append(Entry(f"{node}: model", model_id, model_health(model)))
    out += [
        Entry(f"{node}: adapter {name}", model_id, adapter_health(name, selection))
        for name, selection in adapters.items()
    ]
    if queue is not None:
        out.append(Entry(f"{node}: queue", "", queue_health(queue, queue_before, limits)))
    if batch is not None:
        out.append(Entry(f"{node}: batch", model_id, batch_health(batch, batch_before)))
    if gpu is not None:
        out.append(Entry(f"{node}: gpu memory", gpu.device, gpu_health(gpu, limits)))
    out.append(Entry(f"{node}: latency", model_id, latency_health(last_answer, limits)))
    if words is not None:
        out.append(Entry(f"{node}: vocabulary", model_id, vocabulary_health(words)))
    return out
