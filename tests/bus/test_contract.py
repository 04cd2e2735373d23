"""The bus contract: behaviour every ``Bus`` implementation must show (zenoh and rclpy).

Waits are on conditions with timeouts, never fixed sleeps.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import pytest

from mm_ros.bus import LATCHED, RELIABLE, SENSOR_DATA, BusTimeoutError, BusUnavailableError, QoS
from mm_ros.bus.naming import History
from mm_ros.bus.protocol import BusConfig, GoalStatus, as_array
from mm_ros.bus.zenoh_bus import ZenohBus, wait_until
from mm_ros.core.errors import ConfigError
from mm_ros.core.lifecycle import LifecycleError, Result
from mm_ros.core.lifecycle import State as LifecycleState
from mm_ros.nodes.lifecycle import LifecycleNode

FIB = "example_interfaces/action/Fibonacci"
RESULT_AFTER_FEEDBACK_S = 0.3


def matched(node, topic: str) -> None:
    """Wait until ``node`` sees a subscription of ``topic``."""
    wait_until(lambda: node.count_subscribers(topic) > 0, 10, f"a subscription on {topic}")


def publish_until(pub, message, received: list, count: int = 1, timeout_s: float = 10) -> None:
    """Publish until the subscriber has ``count`` messages (covers route set-up)."""
    deadline = time.monotonic() + timeout_s
    while len(received) < count:
        assert time.monotonic() < deadline, f"received {len(received)} of {count}"
        pub.publish(message)
        time.sleep(0.02)


@pytest.mark.parametrize(
    "qos",
    [SENSOR_DATA, RELIABLE, LATCHED, QoS(depth=100)],
    ids=["sensor_data", "reliable", "latched", "depth100"],
)
def test_pub_sub_every_preset(make_node, qos: QoS) -> None:
    talker, listener = make_node("talker"), make_node("listener")
    got: list[str] = []
    listener.create_subscription(
        "/chatter", "std_msgs/msg/String", lambda m: got.append(m.data), qos
    )
    pub = talker.create_publisher("/chatter", "std_msgs/msg/String", qos)
    matched(talker, "/chatter")
    publish_until(pub, {"data": "hello"}, got)
    assert set(got) == {"hello"}


def test_order_and_numpy_views(make_node) -> None:
    import numpy as np

    talker, listener = make_node("talker"), make_node("listener")
    frames: list = []
    keep_all = QoS(history=History.KEEP_ALL)  # a burst of 20 must not meet depth-10 drops
    listener.create_subscription("image", "sensor_msgs/msg/Image", frames.append, keep_all)
    pub = talker.create_publisher("image", "sensor_msgs/msg/Image", keep_all)
    matched(talker, "/image")
    make = talker.msg("sensor_msgs/msg/Image")
    pixels = np.arange(480 * 640 * 3, dtype=np.uint8)
    publish_until(pub, make(height=480, width=640, encoding="rgb8", step=1920, data=pixels), frames)
    for i in range(20):
        pub.publish(
            make(
                header={"frame_id": str(i)},
                height=480,
                width=640,
                encoding="rgb8",
                step=1920,
                data=pixels,
            )
        )
    # warm-up frames (no frame_id) still in flight may land after the burst has begun
    numbered = lambda: [int(f.header.frame_id) for f in frames if f.header.frame_id]  # noqa: E731
    wait_until(lambda: len(numbered()) >= 20, 10, "20 frames")
    assert numbered() == list(range(20))
    view = as_array(frames[-1].data)
    assert isinstance(view, np.ndarray)
    assert view.base is not None  # a view on the received buffer, not a per-element copy
    assert np.array_equal(view, pixels)


def test_latched_late_joiner_gets_last_sample(make_node) -> None:
    talker, listener, early = make_node("talker"), make_node("listener"), make_node("early")
    pub = talker.create_publisher("/status", "std_msgs/msg/String", LATCHED)
    # An early subscriber shows when both samples have left the talker: a subscription made
    # while they are still in flight may rightly get them live, and would not be a late joiner.
    seen: list[str] = []
    early.create_subscription("/status", "std_msgs/msg/String", lambda m: seen.append(m.data),
                              RELIABLE)  # fmt: skip
    matched(talker, "/status")
    pub.publish({"data": "old"})
    pub.publish({"data": "latest"})
    wait_until(lambda: "latest" in seen, 10, "both samples delivered")
    got: list[str] = []
    listener.create_subscription(
        "/status", "std_msgs/msg/String", lambda m: got.append(m.data), LATCHED
    )
    wait_until(lambda: got, 10, "latched sample")
    assert got == ["latest"]


def test_service_call_and_missing_server(make_node) -> None:
    server, caller = make_node("server"), make_node("caller")
    server.create_service(
        "/add",
        "example_interfaces/srv/AddTwoInts",
        lambda req: {"sum": req.a + req.b},
    )
    client = caller.create_client("/add", "example_interfaces/srv/AddTwoInts")
    assert client.wait_for_service(10)
    assert client.call({"a": 40, "b": 2}).sum == 42
    nobody = caller.create_client("/nobody", "example_interfaces/srv/AddTwoInts")
    assert not nobody.wait_for_service(0.5)
    started = time.monotonic()
    with pytest.raises(BusTimeoutError, match="/nobody"):
        nobody.call({"a": 1, "b": 1}, timeout_s=1.0)
    assert time.monotonic() - started < 5


def fib_server(node, step_s: float = 0.02):
    def execute(goal):
        seq = [0, 1]
        for _ in range(goal.request.order):
            if goal.is_cancel_requested:
                goal.canceled()
                break
            seq.append(seq[-1] + seq[-2])
            goal.publish_feedback({"sequence": seq})
            time.sleep(step_s)
        # feedback and result travel on different channels and a client drops feedback that
        # lands after the result (rclpy too): give the last one time to arrive on a busy machine
        time.sleep(RESULT_AFTER_FEEDBACK_S)
        return {"sequence": seq}

    return node.create_action_server("/fib", FIB, execute)


def test_action_feedback_and_result(make_node) -> None:
    server, caller = make_node("server"), make_node("caller")
    fib_server(server)
    client = caller.create_action_client("/fib", FIB)
    assert client.wait_for_server(10)
    feedback: list[list[int]] = []
    goal = client.send_goal({"order": 6}, feedback=lambda f: feedback.append(list(f.sequence)))
    assert goal.accepted
    status, result = goal.result(10)
    assert status is GoalStatus.SUCCEEDED
    assert list(result.sequence) == [0, 1, 1, 2, 3, 5, 8, 13]
    wait_until(lambda: len(feedback) == 6, 5, "6 feedback messages")
    assert feedback[-1] == list(result.sequence)


def test_action_cancel_during_feedback(make_node) -> None:
    server, caller = make_node("server"), make_node("caller")
    fib_server(server, step_s=0.05)
    client = caller.create_action_client("/fib", FIB)
    assert client.wait_for_server(10)
    first = threading.Event()
    goal = client.send_goal({"order": 1000}, feedback=lambda _f: first.set())
    assert first.wait(10)
    assert goal.cancel() == 0
    status, result = goal.result(10)
    assert status is GoalStatus.CANCELED
    assert 2 < len(result.sequence) < 1000


def test_action_unknown_goal_and_rejection(make_node) -> None:
    server, caller = make_node("server"), make_node("caller")
    server.create_action_server(
        "/fib", FIB, lambda g: {"sequence": [1]}, accept=lambda goal: goal.order < 100
    )
    client = caller.create_action_client("/fib", FIB)
    assert client.wait_for_server(10)
    assert not client.send_goal({"order": 500}).accepted
    get_result = caller.create_client("/fib/_action/get_result", f"{FIB}_GetResult")
    assert get_result.call({"goal_id": {"uuid": list(range(16))}}, timeout_s=5).status == 0
    cancel = caller.create_client("/fib/_action/cancel_goal", "action_msgs/srv/CancelGoal")
    response = cancel.call({"goal_info": {"goal_id": {"uuid": [9] * 16}}}, timeout_s=5)
    assert response.return_code == 2  # UNKNOWN_GOAL_ID


def test_action_server_gone_is_an_error_not_a_hang(make_node) -> None:
    server, caller = make_node("server"), make_node("caller")
    fib_server(server, step_s=0.2)
    client = caller.create_action_client("/fib", FIB)
    assert client.wait_for_server(10)
    goal = client.send_goal({"order": 1000})
    server.close()
    started = time.monotonic()
    with pytest.raises(BusTimeoutError, match="no result"):
        goal.result(timeout_s=3)
    assert time.monotonic() - started < 6


def test_parameters_from_args_and_file(make_node, tmp_path: Path) -> None:
    params = tmp_path / "p.yaml"
    params.write_text("/**:\n  ros__parameters:\n    rate_hz: 15.0\n    label: from-file\n")
    node = make_node(
        "camera",
        ["--ros-args", "--params-file", str(params), "-p", "rate_hz:=30", "-p", "enabled:=false"],
    )
    assert node.declare_parameter("rate_hz", 10.0) == 30.0
    assert node.declare_parameter("label", "default") == "from-file"
    assert node.declare_parameter("enabled", True) is False
    assert node.declare_parameter("missing", 5) == 5
    with pytest.raises(ConfigError, match="expected int"):
        make_node("typed", ["--ros-args", "-p", "count:=abc"]).declare_parameter("count", 3)


def test_parameter_set_while_running(make_node) -> None:
    node = make_node("tunable", ["--ros-args", "-p", "period_s:=2.0"])
    applied: list[float] = []

    def apply(value: float) -> None:
        if value > 60:
            raise ConfigError(f"period_s must be <= 60, found {value}")
        applied.append(value)

    assert node.declare_parameter("period_s", 1.0, "report period", apply) == 2.0
    assert node.declare_parameter("model_dir", "", "read at start") == ""
    assert applied == []  # declaring applies nothing
    node.set_parameter("period_s", 0.5)
    assert applied == [0.5]
    assert node.get_parameter("period_s") == 0.5
    with pytest.raises(ConfigError, match="must be <= 60, found 61"):
        node.set_parameter("period_s", 61.0)  # refused by the node: the old value stays
    assert node.get_parameter("period_s") == 0.5
    with pytest.raises(ConfigError, match="read-only"):
        node.set_parameter("model_dir", "/elsewhere")
    assert node.get_parameter("model_dir") == ""
    with pytest.raises(ConfigError, match="not declared"):
        node.set_parameter("nothing", 1)
    assert applied == [0.5]


def test_remaps_and_namespace(make_node) -> None:
    talker = make_node("talker", ["--ros-args", "-r", "__ns:=/robot", "-r", "out:=/shared"])
    listener = make_node("listener", ["--ros-args", "-r", "in:=/shared"])
    assert talker.fully_qualified_name == "/robot/talker"
    got: list[str] = []
    listener.create_subscription(
        "in", "std_msgs/msg/String", lambda m: got.append(m.data), RELIABLE
    )
    pub = talker.create_publisher("out", "std_msgs/msg/String", RELIABLE)
    assert pub.topic == "/shared"
    matched(talker, "/shared")
    publish_until(pub, {"data": "remapped"}, got)
    wait_until(lambda: "/robot/talker" in listener.node_names(), 10, "/robot/talker in the graph")


def test_sim_time_follows_clock(make_node) -> None:
    clock = make_node("clock")
    node = make_node("sim", ["--ros-args", "-p", "use_sim_time:=true"])
    assert node.now_ns() == 0
    pub = clock.create_publisher("/clock", "rosgraph_msgs/msg/Clock", QoS(depth=1))
    matched(clock, "/clock")
    deadline = time.monotonic() + 10
    while node.now_ns() != 42_000_000_123:
        assert time.monotonic() < deadline
        pub.publish({"clock": {"sec": 42, "nanosec": 123}})
        time.sleep(0.02)


def test_sim_time_timers_follow_clock(make_node) -> None:
    clock = make_node("clock")
    node = make_node("sim", ["--ros-args", "-p", "use_sim_time:=true"])
    calls: list[int] = []
    node.create_timer(10.0, lambda: calls.append(node.now_ns()))  # never due in wall time here
    pub = clock.create_publisher("/clock", "rosgraph_msgs/msg/Clock", QoS(depth=1))
    matched(clock, "/clock")
    base = 100 * 10**9

    def publish_until_seen(stamp: int) -> None:
        for _ in range(100):  # the first ones may go out before the route is up
            pub.publish({"clock": {"sec": stamp // 10**9, "nanosec": stamp % 10**9}})
            try:
                wait_until(lambda: node.now_ns() == stamp, 0.1, f"clock {stamp}")
            except BusTimeoutError:
                continue
            return
        pytest.fail(f"clock {node.now_ns()} never reached {stamp}")

    # 45 s of sim time in 2.5 s steps, in far less wall time than one timer period
    for step in range(19):
        publish_until_seen(base + step * 2_500_000_000)
    wait_until(lambda: len(calls) >= 5, 10, "5 timer calls on sim time")
    # the jump from 0 to 100 s calls once (missed periods skipped), then 110 s ... 140 s
    assert len(calls) == 5
    assert all(base <= t <= base + 45 * 10**9 for t in calls)


def test_router_unreachable_is_a_clear_error() -> None:
    from tests.bus.conftest import free_port  # zenoh only: rclpy has no router

    endpoint = f"tcp/127.0.0.1:{free_port()}"
    started = time.monotonic()
    with pytest.raises(BusUnavailableError, match=f"no Zenoh router reachable at {endpoint}"):
        ZenohBus("lonely", config=BusConfig(connect=(endpoint,), connect_timeout_s=1.0))
    assert time.monotonic() - started < 10


class Managed(LifecycleNode):
    """A managed node whose hooks return scripted results (None = SUCCESS)."""

    def __init__(self, bus, results: dict[str, list] | None = None) -> None:
        self.results = {k: list(v) for k, v in (results or {}).items()}
        self.calls: list[str] = []
        super().__init__(bus)

    def _hook(self, name: str):
        self.calls.append(name)
        queued = self.results.get(name)
        outcome = queued.pop(0) if queued else None
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def on_configure(self, previous):
        return self._hook("on_configure")

    def on_activate(self, previous):
        return self._hook("on_activate")

    def on_error(self, previous):
        return self._hook("on_error")


class LifecycleCaller:
    """A client node for one managed node's lifecycle services and events."""

    def __init__(self, node, target: str) -> None:
        self.events: list[tuple[int, int, int]] = []  # (transition id, start id, goal id)
        node.create_subscription(
            f"{target}/transition_event",
            "lifecycle_msgs/msg/TransitionEvent",
            lambda m: self.events.append((m.transition.id, m.start_state.id, m.goal_state.id)),
            QoS(depth=100),
        )
        self.change = node.create_client(f"{target}/change_state", "lifecycle_msgs/srv/ChangeState")
        self.get = node.create_client(f"{target}/get_state", "lifecycle_msgs/srv/GetState")
        self.available = node.create_client(
            f"{target}/get_available_transitions", "lifecycle_msgs/srv/GetAvailableTransitions"
        )
        self.graph = node.create_client(
            f"{target}/get_transition_graph", "lifecycle_msgs/srv/GetAvailableTransitions"
        )
        self.states = node.create_client(
            f"{target}/get_available_states", "lifecycle_msgs/srv/GetAvailableStates"
        )
        assert self.change.wait_for_service(10)
        assert self.get.wait_for_service(10)

    def set(self, transition: str | int) -> bool:
        label, tid = (transition, 0) if isinstance(transition, str) else ("", transition)
        request = {"transition": {"id": tid, "label": label}}
        return bool(self.change.call(request, timeout_s=10).success)

    def state(self) -> tuple[int, str]:
        current = self.get.call({}, timeout_s=10).current_state
        return int(current.id), str(current.label)


def test_lifecycle_transitions_and_events(make_node, caplog: pytest.LogCaptureFixture) -> None:
    server = Managed(make_node("managed", ["--ros-args", "-p", "autostart:=false"]))
    caller = LifecycleCaller(make_node("caller"), "/managed")
    matched(server.bus, "/managed/transition_event")
    assert server.start() is LifecycleState.UNCONFIGURED  # autostart off: nothing ran
    assert caller.state() == (1, "unconfigured")
    steps = [("configure", (2, "inactive")), (3, (3, "active"))]  # a label, then an id
    for transition, state in steps:
        assert caller.set(transition)
        assert caller.state() == state
    with caplog.at_level(logging.WARNING, logger="mm_ros.lifecycle"):
        assert not caller.set("configure")
        assert not caller.set(2)  # cleanup from active
    assert caller.state() == (3, "active")
    refused = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert (
        "cannot 'configure' from state 'active'; valid transitions: deactivate (4), shutdown (7)"
        in refused[0]
    )
    assert "transition 2 (cleanup) from state 'active'" in refused[1]
    for transition, state in [("deactivate", (2, "inactive")), ("cleanup", (1, "unconfigured")),
                              ("shutdown", (4, "finalized"))]:  # fmt: skip
        assert caller.set(transition)
        assert caller.state() == state
    expected = [(1, 1, 10), (10, 10, 2), (3, 2, 13), (30, 13, 3), (4, 3, 14), (40, 14, 2),
                (2, 2, 11), (20, 11, 1), (5, 1, 12), (50, 12, 4)]  # fmt: skip
    wait_until(lambda: len(caller.events) >= len(expected), 10, "10 transition events")
    assert caller.events == expected
    assert server.calls == ["on_configure", "on_activate"]


def test_lifecycle_failure_error_and_queries(make_node, caplog: pytest.LogCaptureFixture) -> None:
    results = {"on_configure": [Result.FAILURE, RuntimeError("weights missing")]}
    server = Managed(make_node("managed", ["--ros-args", "-p", "autostart:=false"]), results)
    caller = LifecycleCaller(make_node("caller"), "/managed")
    matched(server.bus, "/managed/transition_event")
    available = caller.available.call({}, timeout_s=10).available_transitions
    assert [(t.transition.label, t.goal_state.label) for t in available] == [
        ("configure", "configuring"),
        ("shutdown", "shuttingdown"),
    ]
    assert len(caller.graph.call({}, timeout_s=10).available_transitions) == 25
    assert [s.label for s in caller.states.call({}, timeout_s=10).available_states][:5] == [
        "unknown", "unconfigured", "inactive", "active", "finalized"
    ]  # fmt: skip
    with caplog.at_level(logging.ERROR, logger="mm_ros.lifecycle"):
        assert not caller.set("configure")  # FAILURE: back to unconfigured
        assert not caller.set("configure")  # raises: errorprocessing, on_error -> unconfigured
    assert caller.state() == (1, "unconfigured")
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert "on_configure returned FAILURE" in errors[0]
    assert "on_configure raised RuntimeError: weights missing" in errors[1]
    assert caller.set("configure")  # third time lucky
    expected = [(1, 1, 10), (11, 10, 1), (1, 1, 10), (12, 10, 15), (60, 15, 1),
                (1, 1, 10), (10, 10, 2)]  # fmt: skip
    wait_until(lambda: len(caller.events) >= len(expected), 10, "7 transition events")
    assert caller.events == expected
    assert server.calls == ["on_configure", "on_configure", "on_error", "on_configure"]


def test_lifecycle_autostart_and_shutdown_on_close(make_node) -> None:
    server = Managed(make_node("managed"))
    caller = LifecycleCaller(make_node("caller"), "/managed")
    matched(server.bus, "/managed/transition_event")
    assert server.start() is LifecycleState.ACTIVE
    assert caller.state() == (3, "active")
    server.close()
    wait_until(lambda: (50, 12, 4) in caller.events, 10, "the shutdown event")
    assert server.lifecycle.state is LifecycleState.FINALIZED
    failing = Managed(make_node("broken"), {"on_activate": [Result.FAILURE]})
    with pytest.raises(
        LifecycleError, match="autostart activate failed: on_activate returned FAILURE"
    ):
        failing.start()
    assert failing.lifecycle.state is LifecycleState.INACTIVE


def test_lifecycle_answers_equal_rclpys_own_lifecycle_node(make_node) -> None:
    """rclpy only: our server and rclpy.lifecycle.LifecycleNode answer alike (the oracle)."""
    caller_bus = make_node("caller")
    if type(caller_bus).__name__ != "RclpyBus":
        pytest.skip("needs rclpy's own LifecycleNode (ROS tier)")
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.lifecycle import LifecycleNode as RclpyLifecycleNode

    Managed(make_node("ours", ["--ros-args", "-p", "autostart:=false"]))
    theirs = RclpyLifecycleNode("theirs")
    executor = SingleThreadedExecutor()
    executor.add_node(theirs)
    done = threading.Event()

    def spin() -> None:
        while not done.is_set():
            executor.spin_once(timeout_sec=0.05)

    spinner = threading.Thread(target=spin)
    spinner.start()
    try:
        callers = {who: LifecycleCaller(caller_bus, f"/{who}") for who in ("ours", "theirs")}

        def answers(caller: LifecycleCaller) -> dict:
            def edges(items):
                return [(t.transition.id, t.transition.label, t.start_state.id, t.goal_state.id)
                        for t in items]  # fmt: skip

            return {
                "states": [(s.id, s.label) for s in caller.states.call({}).available_states],
                "graph": edges(caller.graph.call({}).available_transitions),
                "available": edges(caller.available.call({}).available_transitions),
                "state": caller.state(),
            }

        for step in ("configure", "activate", "nonsense", "deactivate", "shutdown"):
            assert answers(callers["ours"]) == answers(callers["theirs"]), step
            assert callers["ours"].set(step) == callers["theirs"].set(step), step
        assert callers["ours"].state() == callers["theirs"].state() == (4, "finalized")
        wait_until(lambda: len(callers["theirs"].events) >= 8, 10, "rclpy's 8 events")
        wait_until(lambda: len(callers["ours"].events) >= 8, 10, "our 8 events")
        # rcl_lifecycle (Jazzy) leaves the event's `transition` zeroed; ours names it
        ours, theirs_events = callers["ours"].events, callers["theirs"].events
        assert [e[1:] for e in ours] == [e[1:] for e in theirs_events]
        assert {e[0] for e in theirs_events} == {0}
        assert [e[0] for e in ours] == [1, 10, 3, 30, 4, 40, 6, 50]
    finally:
        done.set()
        spinner.join(5)
        executor.shutdown(timeout_sec=1)
        theirs.destroy_node()
