"""Faults injected into real processes: every question still ends with one result.

The router killed (kill -9) and restarted while questions are in flight; an adapter node killed
mid-stream; the world stopped; model_service killed and restarted while a client waits. Figures
(time to reconnect, lost goals over many runs) are measured by bench/bench_reliability.py.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

import pytest

from mm_ros.bus.protocol import BusError, GoalStatus
from mm_ros.nodes.convert import answer_value
from mm_ros.nodes.lifecycle import wait_until_active
from tests.reliability.graph import QUESTION, READY_S, SERVICE_PARAMS, Graph, SensorStream, ask

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

RESULT_S = 30.0  # every goal's deadline in these tests


@pytest.fixture
def graph(tmp_path: Path) -> Iterator[Graph]:
    graph = Graph(tmp_path)
    graph.start_router()
    yield graph
    graph.stop()


def start_service(graph: Graph, *params: str) -> tuple[Any, SensorStream]:
    client = graph.client()
    stream = SensorStream(client)
    graph.start_node("model_service", *SERVICE_PARAMS, *params)
    assert wait_until_active(client, "/mm", READY_S), graph.log("model_service")
    return client, stream


def ask_until_answered(client: Any, deadline_s: float, *, fresh: bool = False, **goal: Any) -> Any:
    """Ask until one answer without error (and, ``fresh``, without warnings) comes; return it.

    The graph is settling meanwhile: on a loaded machine a remote adapter's first tokens can
    arrive later than stale_after_s.
    """
    deadline = time.monotonic() + deadline_s
    while True:
        try:
            status, answer = ask(client, {"question": QUESTION, **goal}, timeout_s=10)
            if status == GoalStatus.SUCCEEDED and not (fresh and answer.warnings):
                return answer
        except BusError:
            pass
        assert time.monotonic() < deadline, "no answer after the fault"
        time.sleep(0.2)


def test_router_killed_and_restarted_while_questions_are_in_flight(graph: Graph) -> None:
    client, stream = start_service(graph, "max_new_tokens:=40", "max_new_tokens_limit:=40")
    try:
        ask_until_answered(client, 30)
        action = client.create_action_client("/mm/ask", "mm_ros/action/Ask")
        handles = [action.send_goal({"question": f"{QUESTION} #{i}"}) for i in range(4)]
        graph.kill("router")  # kill -9 while the four are queued or answering
        ended: list[str] = []

        def wait(handle: Any) -> None:
            try:
                status, result = handle.result(RESULT_S)
                ended.append(f"{status.name}: {answer_value(result.answer).error}")
            except BusError as err:  # no result: the client hears why, within the deadline
                ended.append(f"error: {err}")

        waiters = [threading.Thread(target=wait, args=(h,)) for h in handles]
        for waiter in waiters:
            waiter.start()
        graph.start_router()  # same port, new router
        for waiter in waiters:
            waiter.join(RESULT_S + 10)
        assert len(ended) == len(handles), ended  # nothing lost: one ending per goal
        answer = ask_until_answered(client, 30)  # peers reconnected through the new router
        assert answer.error == ""
        assert graph.processes["model_service"].poll() is None
    finally:
        stream.close()
        client.close()


def test_a_killed_adapter_node_shows_as_stale_data_in_the_answer(graph: Graph) -> None:
    graph.start_node("camera_adapter", "runtimes:=torch", "device:=cpu")
    client, stream = start_service(graph, "remote_modalities:=image")
    try:
        ask_until_answered(client, 60, fresh=True, modalities=["image"])  # data flows, fresh
        graph.kill("camera_adapter")
        time.sleep(2.0)  # its last tokens age past stale_after_s (1 s)
        status, stale = ask(client, {"question": QUESTION, "modalities": ["image"]})
        assert status == GoalStatus.SUCCEEDED
        [warning] = stale.warnings
        assert warning.startswith("image: newest data from remote ")
        age_s = float(warning.split(" is ")[1].split(" s old")[0])
        assert 1.5 < age_s < 30.0
    finally:
        stream.close()
        client.close()


def test_a_stopped_world_is_answered_with_the_age_of_what_is_left(graph: Graph) -> None:
    client, stream = start_service(graph)
    try:
        assert ask_until_answered(client, 30).warnings == ()
        stream.paused.set()
        time.sleep(2.0)
        status, answer = ask(client, {"question": QUESTION})
        assert status == GoalStatus.SUCCEEDED
        stale = {w.split(":")[0] for w in answer.warnings if " s old" in w}
        assert stale == set(answer.modalities)
        assert stale
    finally:
        stream.close()
        client.close()


def test_model_service_killed_and_restarted_while_a_client_waits(graph: Graph) -> None:
    client, stream = start_service(graph, "max_new_tokens:=400", "max_new_tokens_limit:=400")
    try:
        ask_until_answered(client, 30)
        action = client.create_action_client("/mm/ask", "mm_ros/action/Ask")
        handle = action.send_goal({"question": QUESTION, "max_new_tokens": 400})
        graph.kill("model_service")
        started = time.monotonic()
        with pytest.raises(BusError, match=r"no result: .* went away while answering"):
            handle.result(6.0)  # the server is gone: an error, within the deadline
        assert time.monotonic() - started < 10.0
        graph.start_node("model_service", *SERVICE_PARAMS)
        assert wait_until_active(client, "/mm", READY_S), graph.log("model_service")
        assert ask_until_answered(client, 60).error == ""
    finally:
        stream.close()
        client.close()
