"""The shipped mm-tiny: loads like a user's model and still answers held-out questions."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest

from mm_ros.llm.backends.base import BackendConfig, load_backend
from mm_ros.llm.backends.composed import PACKAGE_MODEL, default_model_dir
from mm_ros.train import data
from mm_ros.train.evaluate import EvalConfig, heldout_examples, score
from mm_ros.train.tasks import Kind
from tests.logs import quiet_logs

if TYPE_CHECKING:
    from mm_ros.core.answers import AnswerValue
    from mm_ros.train.data import Example

MAX_BYTES = 8 << 20  # "a few MB"
# Floors below what the evaluation measured (models/mm-tiny/README.md: spatial 92.5 % against a
# 1/3 prior, "what is on my left?" 67.0 %, grounding 76.7 % typed / 79.1 % in plain words, audio
# and motion 99.5 %, "not in view" 36.5 %; on these 15 questions per kind: 14, 13, 8, 15, 15
# and 8 right): they guard the whole chain (windows → adapters → assembly → task from the words
# → generation → parsing → source-pixel boxes) against regressions.
FLOORS = {
    Kind.SIDE: 0.8,
    Kind.LIST: 0.6,
    Kind.GROUNDING: 0.45,
    Kind.AUDIO: 0.85,
    Kind.MOTION: 0.85,
    Kind.ABSENT: 0.3,
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


def test_the_shipped_adapters_are_the_recipes() -> None:
    # `mm-ros train tiny --seed 0` must rebuild what ships: same architecture, same layout
    from mm_ros.adapters.checkpoint import read_spec
    from mm_ros.train.mm_tiny import TinyConfig, adapter_specs

    for modality, spec in adapter_specs(TinyConfig()).items():
        assert read_spec(PACKAGE_MODEL / "adapters" / modality) == spec


def test_loads_through_the_composed_loader() -> None:
    from mm_ros.llm.service import AnswerEngine, Query

    with quiet_logs():
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
def answered() -> list[tuple[Example, AnswerValue]]:
    from mm_ros.llm.service import AnswerEngine
    from mm_ros.train.evaluate import service_answerer

    config = EvalConfig(episodes=6, snapshots_per_episode=10, per_kind=15, unseen_per_kind=0)
    wanted = {*FLOORS, Kind.GROUNDING}
    examples = [e for e in heldout_examples(config) if Kind(e.kind) in wanted]
    examples.sort(key=lambda e: (e.seed, e.frame))
    with quiet_logs():
        backend = load_backend(_engine_config())
    try:
        specs = {m: s.spec for m, s in backend.sessions.items()}
        answer = service_answerer(AnswerEngine(backend), data.Inputs.of(specs))
        return [(e, answer(e)) for e in examples]
    finally:
        backend.close()


@pytest.mark.parametrize("kind", list(FLOORS))
def test_heldout_accuracy_floor(answered: list[tuple[Example, AnswerValue]], kind: Kind) -> None:
    results = [score(e.kind, e.truth, a).correct for e, a in answered if e.kind == kind.value]
    assert len(results) >= 10  # enough to mean something
    assert sum(results) / len(results) >= FLOORS[kind]


def test_grounding_answers_come_back_as_source_pixel_boxes(
    answered: list[tuple[Example, AnswerValue]],
) -> None:
    grounding = [a for e, a in answered if e.kind == Kind.GROUNDING.value]
    assert len(grounding) >= 10
    boxed = [a for a in grounding if a.detections]
    assert len(boxed) >= 0.8 * len(grounding)  # the model writes boxes; the chain parses them
    for a in boxed:
        assert a.image is not None
        assert (a.image.width, a.image.height) == (640, 480)  # the source frame, not 96 px
        x1, y1, x2, y2 = a.detections[0].box_px
        assert 0 <= x1 <= x2 <= 640
        assert 0 <= y1 <= y2 <= 480
