"""Replay evaluation end to end: a bag of the synthetic world, bag_player with /clock,
model_service and replay_evaluator on sim time (zenoh bus), twice, with identical answers."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from mm_ros.bus.zenoh_bus import wait_until
from mm_ros.core.errors import ConfigError
from mm_ros.interfaces import get_store
from mm_ros.interfaces.bags import BagReader, BagWriter
from mm_ros.interfaces.values import from_dict
from mm_ros.nodes.bag_player_node import BagPlayerNode
from mm_ros.nodes.model_service_node import ModelServiceNode
from mm_ros.nodes.replay_evaluator_node import ReplayEvaluatorNode
from mm_ros.nodes.sim_world_node import SimWorldNode
from mm_ros.train.replay import MomentSchedule, questions_at
from tests.nodes.helpers import deliver_late, ros_args

if TYPE_CHECKING:
    from collections.abc import Callable

NS = 1_000_000_000
START_NS = 1_700_000_000 * NS
TRUTH = "/sim_world/ground_truth"
WAIT_S = 60.0
INIT_RANGE = 0.5


class _BagPublisher:
    def __init__(self, rec: _RecordingBus, topic: str, typename: str) -> None:
        self.rec, self.topic, self.typename = rec, topic, typename
        rec.writer.add_topic(topic, typename)

    def publish(self, message: Any) -> None:
        if isinstance(message, dict):
            message = from_dict(self.rec.store, self.typename, message)
        data = bytes(self.rec.store.serialize(message, self.typename))
        self.rec.writer.write(self.topic, self.rec.now, data)  # received at the tick's time


class _Timer:
    def cancel(self) -> None:
        pass


class _RecordingBus:
    """Just enough of a Bus for ``SimWorldNode``: what it publishes goes into a bag."""

    def __init__(self, writer: BagWriter, store: Any) -> None:
        self.writer, self.store, self.now = writer, store, START_NS
        self.tick: Callable[[], None] | None = None

    def declare_parameter(
        self, name: str, default: Any, description: str = "", on_set: Any = None
    ) -> Any:
        del name, description, on_set
        return default

    def set_audio_layout(self, layout: str) -> None:
        assert layout == "ros-drivers"

    def create_publisher(self, name: str, typename: str, qos: Any) -> _BagPublisher:
        del qos
        topic = "/sim_world/ground_truth" if name == "~/ground_truth" else f"/{name}"
        return _BagPublisher(self, topic, typename)

    def msg(self, typename: str) -> Callable[..., Any]:
        return lambda **fields: from_dict(self.store, self.store.resolve(typename), fields)

    def now_ns(self) -> int:
        return self.now

    def create_timer(self, period_s: float, callback: Callable[[], None]) -> _Timer:
        del period_s
        self.tick = callback
        return _Timer()


def record_world(path: Path, seed: int, duration_s: float) -> Path:
    """Write what ``sim_world`` publishes in ``duration_s`` into a bag, on a 5 ms tick."""
    store = get_store()
    writer = BagWriter(path, store)
    bus = _RecordingBus(writer, store)
    SimWorldNode(bus)  # type: ignore[arg-type]
    assert bus.tick is not None
    for step in range(round(duration_s / 0.005)):
        bus.now = START_NS + step * 5_000_000
        bus.tick()
    writer.close()
    return path


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The random default with large weights: its answers depend on the sensor data.

    With the usual 0.02 init every answer is the same text, and a replay that fed the model
    other windows would still give identical answers.
    """
    from mm_ros.llm import tiny

    plain = tiny.tiny_llm_config

    def loud(*args: Any, **kwargs: Any) -> Any:
        config = plain(*args, **kwargs)
        config.initializer_range = INIT_RANGE
        return config

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(tiny, "tiny_llm_config", loud)
        return tiny.build_random_default(tmp_path_factory.mktemp("model") / "tiny", seed=0)


@pytest.fixture(scope="module")
def bag(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return record_world(tmp_path_factory.mktemp("bags") / "world", seed=3, duration_s=4.0)


def truths_in(bag: Path) -> list[dict[str, Any]]:
    store = get_store()
    return [
        json.loads(store.deserialize(m.data, "std_msgs/msg/String").data)
        for m in BagReader(bag).messages()
        if m.topic == TRUTH
    ]


def replay(make_zenoh: Callable[..., Any], bag: Path, model_dir: Path, out: Path) -> dict[str, Any]:
    """One replay with fresh nodes; return evaluation.json."""
    service_params = {"use_sim_time": True, "model_dir": str(model_dir), "max_new_tokens": 6,
                      "publish_annotated": False, "stamp_wait_s": 20.0}  # fmt: skip
    service_bus = make_zenoh("mm", ros_args(service_params))
    service = ModelServiceNode(service_bus)
    service.start()
    evaluator_params = {"use_sim_time": True, "output_dir": str(out), "every_s": 1.0,
                        "warmup_s": 2.0, "idle_s": 1.0, "bag": bag.name}  # fmt: skip
    evaluator_bus = make_zenoh("replay_evaluator", ros_args(evaluator_params))
    evaluator = ReplayEvaluatorNode(evaluator_bus)
    player_params = {"bag": str(bag), "rate": 0.5, "wait_for_ask": "/mm/ask",
                     "wait_for_subscribers": TRUTH}  # fmt: skip
    player_bus = make_zenoh("bag_player", ros_args(player_params))
    player = BagPlayerNode(player_bus)
    player.start()
    try:
        assert evaluator.finished.wait(WAIT_S), "no evaluation.json after the bag ended"
        wait_until(lambda: evaluator_bus.shutdown_requested, 10, "the evaluator ending its node")
    finally:
        player.close()
        evaluator.close()
        service.close()
        service_bus.close()
    assert player.sent == sum(1 for _ in BagReader(bag).messages())
    report: dict[str, Any] = json.loads((out / "evaluation.json").read_text())
    assert (out / "evaluation.md").read_text().startswith("# Replay evaluation of world")
    return report


def test_replay_scores_questions_at_the_bag_truth_stamps_and_repeats_exactly(
    make_zenoh: Callable[..., Any],
    bag: Path,
    model_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    schedule = MomentSchedule(1.0, warmup_s=2.0)
    moments = [t for t in truths_in(bag) if schedule.take(int(t["stamp_ns"]))]
    assert [int(t["stamp_ns"]) for t in moments] == [START_NS + 2 * NS, START_NS + 3 * NS]
    expected = [(q.stamp_ns, q.kind, q.text) for t in moments for q in questions_at(t)]

    first = replay(make_zenoh, bag, model_dir, tmp_path / "a")
    assert [(r["stamp_ns"], r["kind"], r["question"]) for r in first["rows"]] == expected
    assert first["questions"] == len(expected)
    assert first["errors"] == 0, [r["error"] for r in first["rows"]]
    assert first["moments"] == 2
    assert sum(c["n"] for c in first["accuracy"].values()) == len(expected)
    assert first["latency_s"]["p50"] is not None
    # the answers come from the windows of each truth stamp, not from the newest data
    images = {r["image_stamp_ns"] for r in first["rows"] if r["image_stamp_ns"]}
    assert images
    assert images <= {int(t["stamp_ns"]) for t in moments}
    assert all(0 < r["window_ns"][0] < r["window_ns"][1] <= r["stamp_ns"] for r in first["rows"])
    # the model is not constant, so equal answers below mean equal inputs
    assert len({r["answer"] for r in first["rows"]}) > len(expected) // 2

    # the second time every frame reaches the service 0.5 s late (a loaded machine): questions
    # about a stamp wait for its data (stamp_wait_s), so the answers must not change
    deliver_late(monkeypatch, "_on_image", 0.5)
    second = replay(make_zenoh, bag, model_dir, tmp_path / "b")

    def answers(report: dict[str, Any]) -> list[tuple[Any, ...]]:
        return [(r["stamp_ns"], r["question"], r["window_ns"], r["answer"], r["boxes"],
                 r["correct"]) for r in report["rows"]]  # fmt: skip

    assert answers(second) == answers(first)
    assert [r["image_stamp_ns"] for r in second["rows"]] == [
        r["image_stamp_ns"] for r in first["rows"]
    ]


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"every_s": 0.0}, r"every_s, idle_s and answer_timeout_s must be > 0, found 0\.0"),
        ({"settle_s": -1.0}, r"settle_s, warmup_s and max_new_tokens must be >= 0, found -1\.0"),
        ({"output_dir": ""}, r"output_dir must name a folder"),
    ],
)
def test_bad_parameters(make_zenoh: Callable[..., Any], params: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        ReplayEvaluatorNode(make_zenoh("replay_evaluator", ros_args(params)))


def test_player_plays_only_the_topics_asked_for(make_zenoh: Callable[..., Any], bag: Path) -> None:
    bus = make_zenoh("bag_player", ros_args({"bag": str(bag), "rate": 50.0,
                                             "topics": f"{TRUTH}, /imu/data"}))  # fmt: skip
    player = BagPlayerNode(bus)
    player.start()
    closed = threading.Event()
    threading.Thread(target=lambda: (bus.spin(30), closed.set()), daemon=True).start()
    assert closed.wait(30)
    counts = BagReader(bag).topics
    assert player.sent == counts[TRUTH].count + counts["/imu/data"].count


def test_player_refuses_topics_not_in_the_bag(make_zenoh: Callable[..., Any], bag: Path) -> None:
    player = BagPlayerNode(make_zenoh("bag_player", ros_args({"bag": str(bag), "topics": "/nope"})))
    with pytest.raises(ConfigError, match=r"topics \['/nope'\] are not in .*; it has \["):
        player.start()


def test_player_gives_up_waiting_for_an_ask_server(
    make_zenoh: Callable[..., Any], bag: Path
) -> None:
    from mm_ros.bus.protocol import BusTimeoutError

    params = {"bag": str(bag), "wait_for_ask": "/nobody/ask", "wait_timeout_s": 0.3}
    player = BagPlayerNode(make_zenoh("bag_player", ros_args(params)))
    with pytest.raises(BusTimeoutError, match=r"no active Ask server on /nobody/ask after 0\.3 s"):
        player.start()
    assert player.sent == 0
