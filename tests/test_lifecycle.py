"""The managed-node state machine (mm_ros.core.lifecycle), without a bus."""

from __future__ import annotations

import threading

import pytest

from mm_ros.core.lifecycle import (
    GRAPH,
    STATES,
    Event,
    InvalidTransitionError,
    LifecycleError,
    LifecycleMachine,
    Result,
    State,
    Transition,
)

# rclpy.lifecycle.LifecycleNode's state machine (rcl_lifecycle, Jazzy wheels), printed from
# ``_state_machine.transition_graph`` in the ROS tier: (id, label, start, goal).
RCL_GRAPH = [
    (1, "configure", "unconfigured", "configuring"),
    (10, "transition_success", "configuring", "inactive"),
    (11, "transition_failure", "configuring", "unconfigured"),
    (12, "transition_error", "configuring", "errorprocessing"),
    (2, "cleanup", "inactive", "cleaningup"),
    (20, "transition_success", "cleaningup", "unconfigured"),
    (21, "transition_failure", "cleaningup", "inactive"),
    (22, "transition_error", "cleaningup", "errorprocessing"),
    (3, "activate", "inactive", "activating"),
    (30, "transition_success", "activating", "active"),
    (31, "transition_failure", "activating", "inactive"),
    (32, "transition_error", "activating", "errorprocessing"),
    (4, "deactivate", "active", "deactivating"),
    (40, "transition_success", "deactivating", "inactive"),
    (41, "transition_failure", "deactivating", "active"),
    (42, "transition_error", "deactivating", "errorprocessing"),
    (5, "shutdown", "unconfigured", "shuttingdown"),
    (6, "shutdown", "inactive", "shuttingdown"),
    (7, "shutdown", "active", "shuttingdown"),
    (50, "transition_success", "shuttingdown", "finalized"),
    (51, "transition_failure", "shuttingdown", "finalized"),
    (52, "transition_error", "shuttingdown", "errorprocessing"),
    (60, "transition_success", "errorprocessing", "unconfigured"),
    (61, "transition_failure", "errorprocessing", "finalized"),
    (62, "transition_error", "errorprocessing", "finalized"),
]
RCL_STATES = [
    (0, "unknown"), (1, "unconfigured"), (2, "inactive"), (3, "active"), (4, "finalized"),
    (10, "configuring"), (11, "cleaningup"), (12, "shuttingdown"), (13, "activating"),
    (14, "deactivating"), (15, "errorprocessing"),
]  # fmt: skip


def test_graph_and_states_are_rcl_lifecycles() -> None:
    ours = [(int(e.transition), e.transition.label, e.start.label, e.goal.label) for e in GRAPH]
    assert ours == RCL_GRAPH
    assert [(int(s), s.label) for s in STATES] == RCL_STATES


class Recorder:
    """Hooks that return scripted results and remember what they were called with."""

    def __init__(self, results: dict[str, object] | None = None) -> None:
        self.results = results or {}
        self.calls: list[tuple[str, State]] = []
        self.events: list[Event] = []

    def hooks(self) -> dict[str, object]:
        def make(name: str):
            def hook(previous: State):
                self.calls.append((name, previous))
                outcome = self.results.get(name)
                if isinstance(outcome, Exception):
                    raise outcome
                return outcome

            return hook

        names = ("on_configure", "on_cleanup", "on_activate", "on_deactivate", "on_shutdown")
        return {name: make(name) for name in (*names, "on_error")}

    def machine(self) -> LifecycleMachine:
        clock = iter(range(1000, 10**6))
        return LifecycleMachine(
            self.hooks(),  # type: ignore[arg-type]
            clock_ns=lambda: next(clock),
            on_event=self.events.append,
        )


S, T = State, Transition


@pytest.mark.parametrize(
    ("steps", "results", "states", "successes"),
    [
        (["configure", "activate"], {}, [S.INACTIVE, S.ACTIVE], [True, True]),
        (
            ["configure", "activate", "deactivate", "cleanup", "shutdown"],
            {},
            [S.INACTIVE, S.ACTIVE, S.INACTIVE, S.UNCONFIGURED, S.FINALIZED],
            [True] * 5,
        ),
        (["configure"], {"on_configure": Result.FAILURE}, [S.UNCONFIGURED], [False]),
        (["configure"], {"on_configure": RuntimeError("no weights")}, [S.UNCONFIGURED], [False]),
        (
            ["configure"],
            {"on_configure": Result.ERROR, "on_error": Result.FAILURE},
            [S.FINALIZED],
            [False],
        ),
        (
            [T.CONFIGURE, T.ACTIVATE],
            {"on_activate": Result.FAILURE},
            [S.INACTIVE, S.INACTIVE],
            [True, False],
        ),
        (
            [1, 3, 4],
            {"on_deactivate": Result.FAILURE},
            [S.INACTIVE, S.ACTIVE, S.ACTIVE],
            [True, True, False],
        ),
        (
            ["configure", 6],
            {"on_shutdown": Result.FAILURE},
            [S.INACTIVE, S.FINALIZED],
            [True, False],
        ),
        (
            ["shutdown"],
            {"on_shutdown": RuntimeError("x"), "on_error": RuntimeError("y")},
            [S.FINALIZED],
            [False],
        ),
        (
            ["configure", "cleanup"],
            {"on_cleanup": Result.FAILURE},
            [S.INACTIVE, S.INACTIVE],
            [True, False],
        ),
    ],
)
def test_transitions(
    steps: list, results: dict[str, object], states: list[State], successes: list[bool]
) -> None:
    recorder = Recorder(results)
    machine = recorder.machine()
    outcomes = [machine.trigger(step) for step in steps]
    assert [o.state for o in outcomes] == states
    assert [o.success for o in outcomes] == successes
    assert machine.state is states[-1]
    for outcome in outcomes:
        assert bool(outcome.reason) is not outcome.success


def test_events_trace_every_step_with_clock_stamps() -> None:
    recorder = Recorder({"on_activate": Result.ERROR})
    machine = recorder.machine()
    machine.trigger("configure")
    machine.trigger("activate")
    trace = [(e.transition, e.start, e.goal) for e in recorder.events]
    assert trace == [
        (T.CONFIGURE, S.UNCONFIGURED, S.CONFIGURING),
        (T.ON_CONFIGURE_SUCCESS, S.CONFIGURING, S.INACTIVE),
        (T.ACTIVATE, S.INACTIVE, S.ACTIVATING),
        (T.ON_ACTIVATE_ERROR, S.ACTIVATING, S.ERRORPROCESSING),
        (T.ON_ERROR_SUCCESS, S.ERRORPROCESSING, S.UNCONFIGURED),
    ]
    stamps = [e.timestamp_ns for e in recorder.events]
    assert stamps == sorted(stamps)
    assert len(set(stamps)) == len(stamps)
    # hooks see the primary state the transition started from, on_error included
    assert recorder.calls == [
        ("on_configure", S.UNCONFIGURED),
        ("on_activate", S.INACTIVE),
        ("on_error", S.INACTIVE),
    ]


def test_error_reason_names_the_hook_and_keeps_the_exception() -> None:
    boom = FileNotFoundError("model.safetensors")
    machine = Recorder({"on_configure": boom}).machine()
    outcome = machine.trigger("configure")
    assert outcome.result is Result.ERROR
    assert outcome.error is boom
    assert "on_configure raised FileNotFoundError: model.safetensors" in outcome.reason
    assert machine.state is S.UNCONFIGURED


@pytest.mark.parametrize(
    ("before", "request_", "match"),
    [
        (
            [],
            "activate",
            r"cannot 'activate' from state 'unconfigured'; valid transitions: "
            r"configure \(1\), shutdown \(5\)",
        ),
        ([], 3, r"transition 3 \(activate\) from state 'unconfigured'"),
        (
            ["configure"],
            "configure",
            r"from state 'inactive'; valid transitions: cleanup \(2\), "
            r"activate \(3\), shutdown \(6\)",
        ),
        ([], "jump", r"cannot 'jump'"),
        ([], 99, r"transition 99 \(unknown\)"),
        ([], 10, r"transition 10 \(transition_success\)"),
        (["shutdown"], "configure", r"state 'finalized'; valid transitions: none"),
    ],
)
def test_invalid_transitions_name_state_and_choices(
    before: list, request_: object, match: str
) -> None:
    recorder = Recorder()
    machine = recorder.machine()
    for step in before:
        machine.trigger(step)
    state, events = machine.state, len(recorder.events)
    with pytest.raises(InvalidTransitionError, match=match):
        machine.trigger(request_)  # type: ignore[arg-type]
    assert machine.state is state
    assert len(recorder.events) == events  # nothing happened


def test_available_follows_the_state() -> None:
    machine = Recorder().machine()
    assert [e.transition for e in machine.available()] == [T.CONFIGURE, T.UNCONFIGURED_SHUTDOWN]
    machine.trigger("configure")
    machine.trigger("activate")
    assert [e.transition for e in machine.available()] == [T.DEACTIVATE, T.ACTIVE_SHUTDOWN]
    assert all(e.goal in (S.DEACTIVATING, S.SHUTTINGDOWN) for e in machine.available())


def test_transition_during_a_running_hook_is_refused() -> None:
    entered, release = threading.Event(), threading.Event()

    def slow(_previous: State) -> None:
        entered.set()
        assert release.wait(5)

    machine = LifecycleMachine({"on_configure": slow}, clock_ns=lambda: 0)
    worker = threading.Thread(target=machine.trigger, args=("configure",))
    worker.start()
    assert entered.wait(5)
    assert machine.state is S.CONFIGURING
    with pytest.raises(InvalidTransitionError, match="transition state 'configuring'"):
        machine.trigger("shutdown")
    release.set()
    worker.join(5)
    assert machine.state is S.INACTIVE


def test_unknown_hook_name_and_bad_return_value() -> None:
    with pytest.raises(LifecycleError, match="on_config"):
        LifecycleMachine({"on_config": lambda _s: None}, clock_ns=lambda: 0)
    machine = LifecycleMachine({"on_configure": lambda _s: True}, clock_ns=lambda: 0)  # type: ignore[dict-item]
    outcome = machine.trigger("configure")
    assert outcome.result is Result.ERROR
    assert "expected a lifecycle Result" in outcome.reason
