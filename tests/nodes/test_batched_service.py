"""The model service with ``max_batch``: askers share decode steps and get their lone answers."""

from __future__ import annotations

import logging
import threading
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

from mm_ros.core.answers import STAGES
from mm_ros.core.sensors import Frame, PixelFormat
from mm_ros.core.windows import FrameWindow, SensorWindows, WindowConfig
from mm_ros.llm.service import Query
from mm_ros.nodes.model_service import ModelServiceConfig, ServiceCore

if TYPE_CHECKING:
    from collections.abc import Iterator

    from mm_ros.core.answers import AnswerValue

NS = 1_000_000_000
QUESTIONS = (
    "[grounding] where is the red cube?",
    "what is on my left?",
    "[refer] the blue ball",
    "what is in front of me?",
)


def query(question: str) -> Query:
    return Query(question, modalities=("image",), timeout_s=60.0)


def windows() -> SensorWindows:
    window = FrameWindow(WindowConfig(span_ns=5 * NS, max_items=10))
    pixels = np.random.default_rng(3).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    window.add(Frame(10 * NS, "camera", pixels, PixelFormat.RGB8))
    return SensorWindows(image=window)


@pytest.fixture
def make_core() -> Iterator[Any]:
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # two threads on busy shared cores wait for each other
    cores: list[ServiceCore] = []

    def make(max_batch: int) -> ServiceCore:
        config = ModelServiceConfig(device="cpu", max_batch=max_batch, max_new_tokens=12)
        core = ServiceCore(config, None, logging.getLogger("batched"))  # type: ignore[arg-type]
        core.inputs = SimpleNamespace(windows=windows(), camera=None)  # type: ignore[assignment]
        core.configure()  # the shipped mm-tiny
        core.activate()
        cores.append(core)
        return core

    yield make
    for core in cores:
        core.close()
    torch.set_num_threads(threads)


def ask_together(core: ServiceCore) -> tuple[list[AnswerValue], list[list[str]]]:
    """Every question at once from its own thread; answers and feedback stages per question."""
    answers: list[Any] = [None] * len(QUESTIONS)
    stages: list[list[str]] = [[] for _ in QUESTIONS]
    start = threading.Barrier(len(QUESTIONS))

    def one(i: int) -> None:
        def feedback(text: str, tokens: int, stage: str) -> None:
            stages[i].append(stage)

        start.wait()
        answers[i] = core.ask(query(QUESTIONS[i]), feedback, lambda: False)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(QUESTIONS))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60.0)
    return answers, stages


def test_askers_share_steps_and_get_their_one_at_a_time_answers(make_core: Any) -> None:
    alone = make_core(max_batch=1)
    expected = [alone.ask(query(q), None, lambda: False) for q in QUESTIONS]
    core = make_core(max_batch=4)
    answers, stages = ask_together(core)
    for got, want in zip(answers, expected, strict=True):
        assert got.error == ""
        assert (got.raw_text, got.text, got.detections) == (
            want.raw_text,
            want.text,
            want.detections,
        )
    for seen in stages:  # queued, encode, prefill, then one "generating" per token
        assert seen[:3] == list(STAGES[:3])
        assert set(seen[3:]) <= {STAGES[3]}
    # one snapshot: the image was encoded once and its prefix prefilled once
    assert sum(dict(a.latency_s)["encode/image"] > 0 for a in answers) == 1
    engine = core.engine
    assert engine is not None
    assert engine.generator.cache is not None
    cache = engine.generator.cache.stats()
    assert (cache.misses, cache.hits) == (1, len(QUESTIONS) - 1)
    stats = engine.decode_stats()
    assert stats.row_steps > stats.steps  # rows shared steps
    assert stats.tokens == sum(a.generated_tokens for a in answers)
    batch = next(e for e in core.diagnostics("mm") if e.name == "mm: batch")
    assert batch.health.values["max_batch"] == "4"
    assert batch.health.values["decode"].startswith("batched: oneDNN on packed weights")


def test_max_batch_is_validated() -> None:
    from mm_ros.core.errors import ConfigError

    with pytest.raises(ConfigError, match="max_batch >= 1"):
        ModelServiceConfig(max_batch=0)
