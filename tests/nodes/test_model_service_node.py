"""``model_service`` over the zenoh bus: the Ask action, the topic pair, outputs, concurrency."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

from mm_ros.bus import RELIABLE, SENSOR_DATA
from mm_ros.bus.protocol import GoalStatus
from mm_ros.bus.zenoh_bus import wait_until
from mm_ros.core.embeddings import encode_tokens
from mm_ros.core.errors import ConfigError
from mm_ros.nodes import convert
from mm_ros.nodes.model_service_node import ModelServiceNode
from mm_ros.nodes.sim_world_node import SimWorldNode
from tests.nodes.helpers import deliver_late, ros_args

if TYPE_CHECKING:
    from collections.abc import Callable

ASK = "mm_ros/action/Ask"
WAIT_S = 30.0
NS = 1_000_000_000


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from mm_ros.llm.tiny import build_random_default

    return build_random_default(tmp_path_factory.mktemp("model") / "tiny", seed=0)


def start_service(make_zenoh: Callable[..., Any], model_dir: Path, **params: object) -> Any:
    args = ros_args({"model_dir": str(model_dir), "max_new_tokens": 6, **params})
    node = ModelServiceNode(make_zenoh("mm", args))
    node.start()  # autostart: configure + activate, as the runner does
    return node


@pytest.fixture
def world(make_zenoh: Callable[..., Any]) -> Any:
    node = SimWorldNode(make_zenoh("sim_world", ["--ros-args", "-p", "seed:=3"]))
    yield node
    node.close()


def wait_for_data(service: ModelServiceNode) -> None:
    counters = service.inputs.counters
    wait_until(
        lambda: all(c.newest_stamp_ns is not None for c in counters().values()),
        WAIT_S,
        "sensor data",
    )


def ask(client: Any, goal: dict[str, Any], feedback: list[Any] | None = None) -> tuple[Any, Any]:
    action = client.create_action_client("/mm/ask", ASK)
    assert action.wait_for_server(WAIT_S)
    sent = action.send_goal(goal, feedback=feedback.append if feedback is not None else None)
    assert sent.accepted
    return sent.result(WAIT_S)


def test_ask_streams_answers_and_publishes_detections_of_the_image_used(
    make_zenoh: Callable[..., Any], model_dir: Path, world: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the audio reaches the service 0.5 s after the other streams (as on a loaded machine, where
    # CI once answered without it): "now" is where every stream has arrived, so it is still used
    deliver_late(monkeypatch, "_on_audio_drivers", 0.5)
    client = make_zenoh("client")
    images: dict[int, str] = {}
    detections: list[Any] = []
    answers: list[Any] = []

    def on_image(m: Any) -> None:
        images[m.header.stamp.sec * NS + m.header.stamp.nanosec] = m.header.frame_id

    client.create_subscription("/camera/image_raw", "sensor_msgs/msg/Image", on_image, SENSOR_DATA)
    client.create_subscription(
        "/mm/detections", "vision_msgs/msg/Detection2DArray", detections.append, RELIABLE
    )
    client.create_subscription("/mm/answer", "mm_ros/msg/Answer", answers.append, RELIABLE)
    service = start_service(make_zenoh, model_dir)
    wait_for_data(service)
    feedback: list[Any] = []
    status, result = ask(client, {"question": "[grounding] where is the red cube?"}, feedback)
    value = convert.answer_value(result.answer)
    assert status == GoalStatus.SUCCEEDED, value.error
    assert value.error == ""
    assert value.task == "grounding"
    assert "random weights" in value.model_id  # the embedded random model says so
    assert set(value.modalities) == {"image", "audio", "imu"}
    stages = [stage for stage, _ in value.latency_s]
    for stage in ("queue", "snapshot", "encode/image", "prefill", "first_token", "total"):
        assert stage in stages
    assert 1 <= value.generated_tokens <= 6
    stages_seen = [f.stage for f in feedback]
    assert stages_seen[:3] == ["queued", "encode", "prefill"]
    assert set(stages_seen[3:]) <= {"generating"}
    # feedback and result travel on different channels, so the last feedback may land after the
    # result (and is then dropped, as rclpy does): the feedback seen counts up to the result's
    counts = [f.generated_tokens for f in feedback]
    assert counts == sorted(counts)
    assert counts[-1] <= value.generated_tokens
    assert value.image is not None
    # a frame sim_world sent (this best-effort subscriber may have missed that very sample)
    assert value.image.frame_id in set(images.values())
    assert min(images) <= value.image.stamp_ns <= max(images)
    wait_until(lambda: detections and answers, WAIT_S, "detections and answer topics")
    header = detections[-1].header
    assert header.stamp.sec * NS + header.stamp.nanosec == value.image.stamp_ns
    assert header.frame_id == value.image.frame_id
    assert answers[-1].raw_text == value.raw_text
    service.close()


def test_question_topic_gets_one_answer(
    make_zenoh: Callable[..., Any], model_dir: Path, world: Any
) -> None:
    client = make_zenoh("client")
    answers: list[Any] = []
    client.create_subscription("/mm/answer", "mm_ros/msg/Answer", answers.append, RELIABLE)
    service = start_service(make_zenoh, model_dir)
    wait_for_data(service)
    pub = client.create_publisher("/mm/question", "std_msgs/msg/String", RELIABLE)
    wait_until(lambda: client.count_subscribers("/mm/question") > 0, WAIT_S, "question sub")
    pub.publish({"data": "what is on my left?"})
    wait_until(lambda: answers, WAIT_S, "an answer")
    assert answers[0].question == "what is on my left?"
    assert answers[0].error == ""
    service.close()


def test_live_parameters_reach_the_next_question(
    make_zenoh: Callable[..., Any], model_dir: Path, world: Any
) -> None:
    client = make_zenoh("client")
    service = start_service(make_zenoh, model_dir, max_new_tokens=12)
    wait_for_data(service)
    bus = service.bus
    bus.set_parameter("max_new_tokens", 2)
    bus.set_parameter("stop_strings", "never-said")
    assert service.config.max_new_tokens == 2
    assert service.core.engine.settings.generation.stop_strings == ("never-said",)
    status, result = ask(client, {"question": "what is on my left?"})
    assert status == GoalStatus.SUCCEEDED
    assert result.answer.generated_tokens == 2  # random weights: never stops early on its own
    with pytest.raises(ConfigError, match=r"max_new_tokens >= 1; found 8, 8, 30\.0, 0"):
        bus.set_parameter("max_new_tokens", 0)  # the config's own check refuses it
    with pytest.raises(ConfigError, match="expected float"):
        bus.set_parameter("timeout_s", "soon")
    with pytest.raises(ConfigError, match="read-only: read at start"):
        bus.set_parameter("model_dir", "/elsewhere")
    assert bus.get_parameter("max_new_tokens") == 2
    assert service.config.max_new_tokens == 2
    service.close()


def test_deadline_and_bad_requests_end_with_error_results(
    make_zenoh: Callable[..., Any], model_dir: Path, world: Any
) -> None:
    client = make_zenoh("client")
    service = start_service(make_zenoh, model_dir)
    wait_for_data(service)
    status, result = ask(client, {"question": "how am I moving?", "timeout_s": 1e-6})
    assert status == GoalStatus.ABORTED
    assert "deadline of 1e-06 s passed" in result.answer.error
    status, result = ask(client, {"question": "hi", "task": "dance"})
    assert status == GoalStatus.ABORTED
    assert "unknown task 'dance'" in result.answer.error
    status, result = ask(client, {"question": "hi", "modalities": ["smell"]})
    assert "no adapter for smell" in result.answer.error
    status, result = ask(client, {"question": "[vqa] what is here?"})  # still serving
    assert status == GoalStatus.SUCCEEDED
    service.close()


def test_cancel_mid_answer(make_zenoh: Callable[..., Any], model_dir: Path, world: Any) -> None:
    client = make_zenoh("client")
    service = start_service(make_zenoh, model_dir, max_new_tokens=400)
    wait_for_data(service)
    action = client.create_action_client("/mm/ask", ASK)
    assert action.wait_for_server(WAIT_S)
    streaming = threading.Event()

    def on_feedback(f: Any) -> None:
        if f.generated_tokens >= 2:
            streaming.set()

    sent = action.send_goal(
        {"question": "describe everything", "max_new_tokens": 400}, feedback=on_feedback
    )
    assert streaming.wait(WAIT_S)
    assert sent.cancel() == 0
    status, result = sent.result(WAIT_S)
    assert status == GoalStatus.CANCELED
    assert "cancelled while answering" in result.answer.error
    assert 2 <= result.answer.generated_tokens < 400
    service.close()


def test_fifty_concurrent_asks_give_fifty_results(
    make_zenoh: Callable[..., Any], model_dir: Path, world: Any
) -> None:
    client = make_zenoh("client")
    service = start_service(make_zenoh, model_dir, max_queue=64, max_new_tokens=2)
    wait_for_data(service)
    action = client.create_action_client("/mm/ask", ASK)
    assert action.wait_for_server(WAIT_S)
    results: list[Any] = []
    lock = threading.Lock()

    def one(i: int) -> None:
        goal = action.send_goal({"question": f"[vqa] question {i}?"})
        status, result = goal.result(WAIT_S * 2)
        with lock:
            results.append((status, result.answer.question, result.answer.error))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 50
    assert sorted(q for _, q, _ in results) == sorted(f"[vqa] question {i}?" for i in range(50))
    assert all(s == GoalStatus.SUCCEEDED and not e for s, _, e in results)
    assert service.core.scheduler is not None
    assert service.core.scheduler.stats().served >= 50
    service.close()


def test_embeddings_from_another_token_space_are_rejected(
    make_zenoh: Callable[..., Any], model_dir: Path
) -> None:
    client = make_zenoh("client")
    service = start_service(make_zenoh, model_dir, remote_modalities="image")
    pub = client.create_publisher("/embeddings/image", "mm_ros/msg/TokenEmbeddings", SENSOR_DATA)
    wait_until(lambda: client.count_subscribers("/embeddings/image") > 0, WAIT_S, "embeddings sub")
    identity = service.core.engine.backend.identities["image"]  # type: ignore[union-attr]
    shape, dtype, data = encode_tokens(np.zeros((4, 32), np.float32), "float32")
    wrong = {
        "header": convert.header(5 * NS, "cam"),
        "modality": "image",
        "adapter_id": "other",
        "checkpoint_sha256": identity.checkpoint_sha256,
        "shape": shape,
        "dtype": dtype,
        "data": data,
    }
    pub.publish(wrong)
    wait_until(lambda: service.core.remote_rejected, WAIT_S, "a rejection")
    assert service.core.remote_rejected["TokenSpaceMismatchError"] >= 1
    status, result = ask(client, {"question": "what is here?", "modalities": ["image"]})
    assert status == GoalStatus.ABORTED
    assert "no image data" in result.answer.error
    service.close()


@pytest.mark.parametrize("family", ["llava", "qwen2_vl"])
def test_hf_vlm_backend_serves_the_action(
    make_zenoh: Callable[..., Any],
    tmp_path: Path,
    world: Any,
    family: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tests.tiny_vlm import make_tiny_llava, make_tiny_qwen2_vl

    monkeypatch.setenv("MM_ROS_CACHE", str(tmp_path / "cache"))  # the split vision adapter

    folder = tmp_path / family
    (make_tiny_llava if family == "llava" else make_tiny_qwen2_vl)(folder)
    client = make_zenoh("client")
    args = ros_args({"backend": "hf-vlm", "model_dir": str(folder), "max_new_tokens": 4})
    service = ModelServiceNode(make_zenoh("mm", args))
    service.start()
    wait_for_data(service)
    status, result = ask(client, {"question": "[grounding] where is the red cube?"})
    value = convert.answer_value(result.answer)
    assert status == GoalStatus.SUCCEEDED, value.error
    assert value.modalities == ("image",)  # a VLM brings only its vision adapter
    assert value.image is not None
    assert value.prompt_tokens > 0
    assert "prefill" in dict(value.latency_s)  # random weights may stop at once (EOS)
    assert (tmp_path / "cache" / "hf-vlm").is_dir()
    service.close()


def test_lifecycle_over_the_bus(
    make_zenoh: Callable[..., Any], model_dir: Path, world: Any
) -> None:
    client = make_zenoh("client")
    service = start_service(make_zenoh, model_dir, autostart=False)
    assert service.core.engine is None  # nothing loaded until configure
    change = client.create_client("/mm/change_state", "lifecycle_msgs/srv/ChangeState")
    get = client.create_client("/mm/get_state", "lifecycle_msgs/srv/GetState")
    assert change.wait_for_service(WAIT_S)

    def transition(label: str) -> bool:
        return bool(change.call({"transition": {"label": label}}, timeout_s=WAIT_S).success)

    status, result = ask(client, {"question": "what is on my left?"})
    assert status == GoalStatus.ABORTED
    assert "not active" in result.answer.error
    assert not transition("activate")  # invalid from unconfigured: refused, node unchanged
    assert get.call({}, timeout_s=WAIT_S).current_state.label == "unconfigured"
    assert transition("configure")
    assert service.core.engine is not None
    assert transition("activate")
    wait_for_data(service)
    status, _ = ask(client, {"question": "what is on my left?"})
    assert status == GoalStatus.SUCCEEDED
    assert transition("deactivate")
    status, result = ask(client, {"question": "what is on my left?"})
    assert "not active" in result.answer.error
    assert transition("cleanup")
    assert service.core.engine is None
    assert get.call({}, timeout_s=WAIT_S).current_state.label == "unconfigured"
    service.close()
