"""Model-service diagnostics builders (mm_ros.core.diagnostics): levels and fix messages."""

from __future__ import annotations

import pytest

from mm_ros.core.diagnostics import (
    GIB,
    BatchFigures,
    DiagnosticLimits,
    GpuMemory,
    LastAnswer,
    ModelFigures,
    QueueFigures,
    WordFigures,
    adapter_health,
    batch_health,
    counted_words,
    gpu_health,
    latency_health,
    model_health,
    model_service_entries,
    queue_health,
    vocabulary_health,
)
from mm_ros.core.errors import ConfigError
from mm_ros.core.health import Level

LIMITS = DiagnosticLimits(max_wait_s=2.0, latency_budget_s=0.4)


@pytest.mark.parametrize(
    ("model", "level", "message"),
    [
        (ModelFigures("mm-tiny@3f2a", random_weights=False), Level.OK, "mm-tiny@3f2a loaded"),
        (
            ModelFigures("mm-tiny@0000", random_weights=True),
            Level.WARN,
            "mm-tiny@0000: weights are random, answers are meaningless; point the model "
            "parameter at a trained checkpoint",
        ),
    ],
)
def test_model(model: ModelFigures, level: Level, message: str) -> None:
    health = model_health(model)
    assert (health.level, health.message) == (level, message)
    assert health.values["random_weights"] == str(model.random_weights).lower()


@pytest.mark.parametrize(
    ("selection", "level", "message"),
    [
        (
            {"runtime": "onnxruntime", "running": "onnxruntime 1.31 [CPUExecutionProvider]"},
            Level.OK,
            "image: onnxruntime 1.31 [CPUExecutionProvider]",
        ),
        (
            {
                "runtime": "torch",
                "running": "torch 2.13 eager on cpu",
                "skipped.tensorrt": "no engine for this GPU in engines/cache",
                "skipped.onnxruntime": "model.onnx missing",
            },
            Level.WARN,
            "image: fell back to torch (tensorrt, onnxruntime skipped; tensorrt: no engine for "
            "this GPU in engines/cache); to fix: build the engine on this machine with "
            "`mm-ros engines build`",
        ),
        (
            {"runtime": "torch", "skipped.onnxruntime": "onnxruntime is not installed"},
            Level.WARN,
            "image: fell back to torch (onnxruntime skipped; onnxruntime: onnxruntime is not "
            "installed); to fix: export ONNX with `mm-ros engines export`",
        ),
        ({}, Level.ERROR, "image: no runtime loaded"),
    ],
)
def test_adapter(selection: dict[str, str], level: Level, message: str) -> None:
    health = adapter_health("image", selection)
    assert health.level is level
    assert health.message.startswith(message)
    assert health.values == selection  # every fallback reason is kept as a figure


Q = QueueFigures


@pytest.mark.parametrize(
    ("now", "before", "level", "message"),
    [
        (Q(0, 8, None), None, Level.OK, "0 waiting"),
        (Q(8, 8, 0.5), None, Level.ERROR, "queue full (8/8): new questions are refused; to fix: "
         "ask less often or raise the queue size"),
        (Q(3, 8, 2.5), None, Level.WARN, "oldest question waited 2.5 s (> 2 s): the model "
         "cannot keep up"),
        (Q(1, 8, 0.1, 0, {"deadline": 5, "queue_full": 1}),
         Q(1, 8, 0.1, 0, {"deadline": 2, "queue_full": 1}),
         Level.WARN, "questions lost in the last period (deadline 3); to fix: give questions a "
         "longer deadline"),
        (Q(1, 8, 0.1, 0, {"deadline": 2}), Q(1, 8, 0.1, 0, {"deadline": 2}), Level.OK, "1 waiting"),
        (Q(1, 8, 0.1, 0, {"cancelled": 4, "shutdown": 1}), None, Level.OK, "1 waiting"),
        (Q(1, 8, 0.1, 0, {"error": 1}), None, Level.WARN, "questions lost in the last period "
         "(error 1); to fix: see the node's log"),
        (Q(1, 8, 0.1, 3), Q(1, 8, 0.1, 1), Level.WARN, "questions lost in the last period "
         "(dropped 2); to fix: ask less often"),
        (Q(1, 8, 0.1, 0, {"inactive": 1}), None, Level.WARN, "questions lost in the last period "
         "(inactive 1); to fix: activate the node (`mm-ros lifecycle set NODE activate`)"),
    ],
)  # fmt: skip
def test_queue(now: QueueFigures, before: QueueFigures | None, level: Level, message: str) -> None:
    health = queue_health(now, before, LIMITS)
    assert health.level is level
    assert health.message.startswith(message)


def test_queue_figures_name_every_reason() -> None:
    health = queue_health(Q(2, 8, 1.25, 1, {"deadline": 2, "queue_full": 3}), None, LIMITS)
    assert health.values == {
        "waiting": "2",
        "capacity": "8",
        "oldest_age_s": "1.250",
        "dropped": "1",
        "rejected": "5",
        "rejected.deadline": "2",
        "rejected.queue_full": "3",
    }


@pytest.mark.parametrize(
    ("gpu", "level", "message"),
    [
        (GpuMemory("cuda:0", 2 * GIB, 3 * GIB, 80 * GIB), Level.OK,
         "4% of 80.0 GiB used on cuda:0"),
        (GpuMemory("cuda:0", 70 * GIB, 74 * GIB, 80 * GIB), Level.WARN, "92% of 80.0 GiB used"),
        (GpuMemory("cuda:0", 2 * GIB, 3 * GIB, 80 * GIB, free_bytes=GIB), Level.ERROR,
         "99% of 80.0 GiB used on cuda:0: out of memory is imminent; to fix: lower max_batch"),
    ],
)  # fmt: skip
def test_gpu(gpu: GpuMemory, level: Level, message: str) -> None:
    health = gpu_health(gpu, LIMITS)
    assert health.level is level
    assert health.message.startswith(message)
    assert health.values["total_gib"] == "80.00"


@pytest.mark.parametrize(
    ("last", "level", "message"),
    [
        (None, Level.OK, "no answer yet"),
        (LastAnswer({"decode": 0.01, "prefill": 0.05, "generate": 0.2, "total": 0.3}, 20),
         Level.OK, "last answer 0.300 s"),
        (LastAnswer({"decode": 0.01, "encode/image": 0.3, "prefill": 0.1, "first_token": 0.45,
                     "generate": 0.1, "total": 0.55}, 10),
         Level.WARN, "last answer took 0.550 s (budget 0.4 s); slowest stage encode/image "
         "0.300 s; to fix: use a faster runtime for this adapter"),
        (LastAnswer({"total": 0.1}, 0, "deadline of 5 s passed"), Level.WARN,
         "last answer failed: deadline of 5 s passed"),
        (LastAnswer({"queue": 0.9, "total": 1.0}), Level.WARN, "last answer took 1.000 s "
         "(budget 0.4 s); slowest stage queue 0.900 s; to fix: questions wait for the model"),
        (LastAnswer({"prefill": 0.1, "generate": 0.9}, 30), Level.WARN,
         "last answer took 1.000 s (budget 0.4 s); slowest stage generate 0.900 s; to fix: "
         "fewer new tokens"),
    ],
)  # fmt: skip
def test_latency(last: LastAnswer | None, level: Level, message: str) -> None:
    health = latency_health(last, LIMITS)
    assert health.level is level
    assert health.message.startswith(message)


def test_latency_figures_include_tokens_per_second() -> None:
    health = latency_health(LastAnswer({"generate": 0.5, "total": 0.6}, 20), LIMITS)
    assert health.values == {"generate_s": "0.5000", "total_s": "0.6000", "tokens_per_s": "40.0"}


def test_vocabulary_names_the_unknown_words_of_the_last_question() -> None:
    words = WordFigures(0, 0)
    assert vocabulary_health(words).message == "no question yet"
    for unknown in [("zorblax",), (), ("rigth", "zorblax"), ()]:
        words = counted_words(words, unknown)
    assert (words.questions, words.with_unknown, words.recent) == (4, 2, ("rigth", "zorblax"))
    health = vocabulary_health(words)
    assert health.level is Level.OK
    assert health.message.startswith("every word of the last question known (2 of 4")
    health = vocabulary_health(counted_words(words, ("blorp",)))
    assert health.level is Level.WARN
    assert health.message.startswith("last question had words this model does not know: blorp")
    assert health.values["recent_unknown_words"] == "rigth zorblax blorp"
    many = WordFigures(0, 0)
    for i in range(30):
        many = counted_words(many, (f"w{i}",))
    assert many.recent == tuple(f"w{i}" for i in range(10, 30))  # the latest 20


def test_entries_of_one_period() -> None:
    entries = model_service_entries(
        "model_service",
        model=ModelFigures("mm-tiny@3f2a", random_weights=True),
        adapters={"image": {"runtime": "torch"}, "imu": {"runtime": "torch"}},
        queue=Q(0, 8, None),
        gpu=None,
        last_answer=None,
        words=WordFigures(3, 1, ("zorblax",), ("zorblax",)),
    )
    assert [(e.name, e.hardware_id, e.health.level) for e in entries] == [
        ("model_service: model", "mm-tiny@3f2a", Level.WARN),
        ("model_service: adapter image", "mm-tiny@3f2a", Level.OK),
        ("model_service: adapter imu", "mm-tiny@3f2a", Level.OK),
        ("model_service: queue", "", Level.OK),
        ("model_service: latency", "mm-tiny@3f2a", Level.OK),
        ("model_service: vocabulary", "mm-tiny@3f2a", Level.WARN),
    ]


@pytest.mark.parametrize(
    "make",
    [
        lambda: DiagnosticLimits(max_wait_s=0),
        lambda: DiagnosticLimits(gpu_warn_fraction=0.99, gpu_error_fraction=0.9),
        lambda: QueueFigures(0, 0, None),
        lambda: GpuMemory("cuda:0", 0, 0, 0),
    ],
)
def test_bad_figures_are_config_errors(make) -> None:
    with pytest.raises(ConfigError, match="found"):
        make()


def test_figures_from_the_scheduler_and_an_answer() -> None:
    from mm_ros.core.answers import AnswerValue
    from mm_ros.core.scheduler import SchedulerStats

    idle = QueueFigures.from_scheduler(SchedulerStats(0, False, 0.0, 3, {"deadline": 1}), 8)
    assert idle == QueueFigures(0, 8, None, 0, {"deadline": 1})
    busy = QueueFigures.from_scheduler(SchedulerStats(2, True, 0.5, 3, {}), 8)
    assert (busy.waiting, busy.oldest_age_s) == (2, 0.5)
    answer = AnswerValue(
        question="q", task="vqa", text="t", raw_text="t", model_id="m",
        latency_s=(("prefill", 0.1), ("total", 0.2)), generated_tokens=4,
    )  # fmt: skip
    assert LastAnswer.from_answer(answer) == LastAnswer({"prefill": 0.1, "total": 0.2}, 4, "")


BATCHED = "batched: rows padded to a multiple of 4, attention per row (checked on cpu, 2 threads)"


@pytest.mark.parametrize(
    ("now", "before", "level", "message"),
    [
        (BatchFigures(10.0, 0, 8, 0, 0, 0, 0.0, ""), None, Level.OK, "0/8 rows"),
        (
            BatchFigures(12.0, 5, 8, 120, 500, 520, 1.5, BATCHED),
            BatchFigures(10.0, 2, 8, 20, 100, 100, 0.5, BATCHED),
            Level.OK,
            "5/8 rows, 210.0 tokens/s, mean batch 4.0",  # 420 tokens in 2 s, 400 rows / 100 steps
        ),
        (
            BatchFigures(11.0, 1, 4, 10, 10, 10, 0.1, "one row at a time: layers GPT2Block"),
            BatchFigures(10.0, 1, 4, 0, 0, 0, 0.0, "one row at a time: layers GPT2Block"),
            Level.WARN,
            "1/4 rows, 10.0 tokens/s, mean batch 1.0; decoding one row at a time: layers "
            "GPT2Block: questions share no weight reads; to fix: a Llama/Qwen2 model with sdpa "
            "or eager attention, or max_batch 1",
        ),
        (  # with max_batch 1 there is nothing to share
            BatchFigures(10.0, 1, 1, 10, 10, 10, 0.1, "one row at a time: layers GPT2Block"),
            None,
            Level.OK,
            "1/1 rows",
        ),
    ],
)
def test_batch(now: BatchFigures, before: BatchFigures | None, level: Level, message: str) -> None:
    health = batch_health(now, before)
    assert (health.level, health.message) == (level, message)
    assert health.values["batch_size"] == str(now.rows)
    assert health.values["decode"] == (now.step or "not built yet")
    if before is not None:
        assert "tokens_per_s" in health.values


def test_batch_figures_from_decode_stats_and_in_the_entries() -> None:
    from mm_ros.llm.batching import DecodeStats

    stats = DecodeStats(3, 40, 100, 140, 5, 2.0, BATCHED)
    figures = BatchFigures.from_stats(7.0, stats, 8)
    assert figures == BatchFigures(7.0, 3, 8, 40, 100, 140, 2.0, BATCHED)
    entries = model_service_entries(
        "mm", model=None, adapters={}, queue=None, batch=figures, batch_before=None
    )
    assert [e.name for e in entries] == ["mm: batch", "mm: latency"]
    with pytest.raises(ConfigError, match="rows <= max_batch"):
        BatchFigures(0.0, 9, 8, 0, 0, 0, 0.0, "")
