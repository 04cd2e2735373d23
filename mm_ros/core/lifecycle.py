"""The managed-node state machine of ROS 2 (rcl_lifecycle's default one), pure.

Primary states ``unconfigured``, ``inactive``, ``active``, ``finalized``; each user transition
(``configure``, ``cleanup``, ``activate``, ``deactivate``, ``shutdown``) passes through a
transition state whose hook returns SUCCESS, FAILURE or ERROR (an exception counts as ERROR).
ERROR leads to ``errorprocessing``, whose ``on_error`` hook decides between ``unconfigured``
(SUCCESS) and ``finalized``. Ids, labels and the graph are rcl_lifecycle's, so the bus layer
can serve ``lifecycle_msgs`` without translation.

Use::

    machine = LifecycleMachine(hooks, clock_ns=time.time_ns, on_event=publish)
    outcome = machine.trigger("configure")   # or Transition.CONFIGURE, or 1
    machine.state                            # State.INACTIVE on success

``trigger`` raises ``InvalidTransitionError`` (naming the current state and the valid
transitions) for a transition not allowed now; hook failures are not exceptions but an
``Outcome`` with ``result`` and ``reason``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import IntEnum

from mm_ros.core.errors import MmRosError


class State(IntEnum):
    """``lifecycle_msgs/msg/State`` ids."""

    UNKNOWN = 0
    UNCONFIGURED = 1
    INACTIVE = 2
    ACTIVE = 3
    FINALIZED = 4
    CONFIGURING = 10
    CLEANINGUP = 11
    SHUTTINGDOWN = 12
    ACTIVATING = 13
    DEACTIVATING = 14
    ERRORPROCESSING = 15

    @property
    def label(self) -> str:
        """Return rcl's label: the lowercase name (``cleaningup``, ``errorprocessing``)."""
        return self.name.lower()

    @property
    def is_primary(self) -> bool:
        """True for unknown/unconfigured/inactive/active/finalized."""
        return self < State.CONFIGURING


class Transition(IntEnum):
    """``lifecycle_msgs/msg/Transition`` ids (user transitions 1-7, results 10-62)."""

    CONFIGURE = 1
    CLEANUP = 2
    ACTIVATE = 3
    DEACTIVATE = 4
    UNCONFIGURED_SHUTDOWN = 5
    INACTIVE_SHUTDOWN = 6
    ACTIVE_SHUTDOWN = 7
    ON_CONFIGURE_SUCCESS = 10
    ON_CONFIGURE_FAILURE = 11
    ON_CONFIGURE_ERROR = 12
    ON_CLEANUP_SUCCESS = 20
    ON_CLEANUP_FAILURE = 21
    ON_CLEANUP_ERROR = 22
    ON_ACTIVATE_SUCCESS = 30
    ON_ACTIVATE_FAILURE = 31
    ON_ACTIVATE_ERROR = 32
    ON_DEACTIVATE_SUCCESS = 40
    ON_DEACTIVATE_FAILURE = 41
    ON_DEACTIVATE_ERROR = 42
    ON_SHUTDOWN_SUCCESS = 50
    ON_SHUTDOWN_FAILURE = 51
    ON_SHUTDOWN_ERROR = 52
    ON_ERROR_SUCCESS = 60
    ON_ERROR_FAILURE = 61
    ON_ERROR_ERROR = 62

    @property
    def label(self) -> str:
        """Return rcl's label: ``configure`` ... ``shutdown`` (all three), ``transition_*``."""
        if self.is_result:
            return ("transition_success", "transition_failure", "transition_error")[self % 10]
        return self.name.rsplit("_", 1)[-1].lower()

    @property
    def is_result(self) -> bool:
        """True for the transitions a hook's result triggers (ids 10-62), not a user."""
        return self >= Transition.ON_CONFIGURE_SUCCESS


class Result(IntEnum):
    """What a hook returns (``lifecycle_msgs/msg/Transition`` TRANSITION_CALLBACK_*)."""

    SUCCESS = 97
    FAILURE = 98
    ERROR = 99


class LifecycleError(MmRosError):
    """A lifecycle transition could not be started or did not succeed."""


class InvalidTransitionError(LifecycleError, ValueError):
    """The requested transition does not exist or is not allowed from the current state."""


@dataclass(frozen=True)
class Edge:
    """One arrow of the graph (``lifecycle_msgs/msg/TransitionDescription``)."""

    transition: Transition
    start: State
    goal: State


@dataclass(frozen=True)
class Event:
    """One state change as published on ``~/transition_event``."""

    timestamp_ns: int
    transition: Transition
    start: State
    goal: State


@dataclass(frozen=True)
class Outcome:
    """How a user transition ended: the hook's result, the state reached, and why."""

    transition: Transition
    result: Result
    state: State
    reason: str = ""  # empty on SUCCESS; the hook's error or "on_x returned FAILURE"
    error: Exception | None = None  # what a raising hook raised (for a log with traceback)

    @property
    def success(self) -> bool:
        """True when the hook returned SUCCESS (ChangeState's ``success``)."""
        return self.result is Result.SUCCESS


def _edges() -> tuple[Edge, ...]:
    t, s = Transition, State
    # (user transition, from, via, success goal, failure goal); results are 10x the user id
    # except shutdown (50-52), whose failure still finalizes (rcl_lifecycle's choice).
    table = (
        (t.CONFIGURE, s.UNCONFIGURED, s.CONFIGURING, s.INACTIVE, s.UNCONFIGURED),
        (t.CLEANUP, s.INACTIVE, s.CLEANINGUP, s.UNCONFIGURED, s.INACTIVE),
        (t.ACTIVATE, s.INACTIVE, s.ACTIVATING, s.ACTIVE, s.INACTIVE),
        (t.DEACTIVATE, s.ACTIVE, s.DEACTIVATING, s.INACTIVE, s.ACTIVE),
    )
    out: list[Edge] = []
    for user, start, via, ok, failed in table:
        base = user * 10
        out += [
            Edge(user, start, via),
            Edge(t(base), via, ok),
            Edge(t(base + 1), via, failed),
            Edge(t(base + 2), via, s.ERRORPROCESSING),
        ]
    out += [
        Edge(t.UNCONFIGURED_SHUTDOWN, s.UNCONFIGURED, s.SHUTTINGDOWN),
        Edge(t.INACTIVE_SHUTDOWN, s.INACTIVE, s.SHUTTINGDOWN),
        Edge(t.ACTIVE_SHUTDOWN, s.ACTIVE, s.SHUTTINGDOWN),
        Edge(t.ON_SHUTDOWN_SUCCESS, s.SHUTTINGDOWN, s.FINALIZED),
        Edge(t.ON_SHUTDOWN_FAILURE, s.SHUTTINGDOWN, s.FINALIZED),
        Edge(t.ON_SHUTDOWN_ERROR, s.SHUTTINGDOWN, s.ERRORPROCESSING),
        Edge(t.ON_ERROR_SUCCESS, s.ERRORPROCESSING, s.UNCONFIGURED),
        Edge(t.ON_ERROR_FAILURE, s.ERRORPROCESSING, s.FINALIZED),
        Edge(t.ON_ERROR_ERROR, s.ERRORPROCESSING, s.FINALIZED),
    ]
    return tuple(out)


GRAPH: tuple[Edge, ...] = _edges()  # in rcl_lifecycle's order (get_transition_graph)
STATES: tuple[State, ...] = tuple(State)  # get_available_states answers all of them
HOOKS: dict[State, str] = {  # the hook a transition state runs
    State.CONFIGURING: "on_configure",
    State.CLEANINGUP: "on_cleanup",
    State.ACTIVATING: "on_activate",
    State.DEACTIVATING: "on_deactivate",
    State.SHUTTINGDOWN: "on_shutdown",
    State.ERRORPROCESSING: "on_error",
}

# A hook gets the primary state the transition started from; None means SUCCESS.
Hook = Callable[[State], "Result | None"]


class LifecycleMachine:
    """The state machine; ``trigger`` runs hooks on the caller's thread, one at a time.

    Thread-safe: a second ``trigger`` while a hook runs raises ``InvalidTransitionError``
    (as rcl refuses a transition from a transition state); ``state`` is readable meanwhile
    and shows the transition state (``configuring``).
    """

    def __init__(
        self,
        hooks: Mapping[str, Hook],
        *,
        clock_ns: Callable[[], int],
        on_event: Callable[[Event], None] | None = None,
    ) -> None:
        unknown = set(hooks) - set(HOOKS.values())
        if unknown:
            expected = sorted(HOOKS.values())
            msg = f"unknown lifecycle hooks {sorted(unknown)}; expected some of {expected}"
            raise LifecycleError(msg)
        self._hooks = dict(hooks)
        self._clock_ns = clock_ns
        self._on_event = on_event
        self._state = State.UNCONFIGURED
        self._lock = threading.Lock()

    @property
    def state(self) -> State:
        """The current state (a transition state while a hook runs)."""
        return self._state

    def available(self) -> list[Edge]:
        """Edges leaving the current state (what ``get_available_transitions`` answers)."""
        return [e for e in GRAPH if e.start is self._state]

    def resolve(self, transition: Transition | int | str) -> Transition:
        """Return the user transition meant by an id or label, if valid from the current state."""
        state = self._state
        valid = [e.transition for e in GRAPH if e.start is state and not e.transition.is_result]
        names = ", ".join(f"{t.label} ({int(t)})" for t in valid) or "none"
        if not state.is_primary:
            msg = f"node is in transition state {state.label!r}; wait until it ends"
            raise InvalidTransitionError(msg)
        if isinstance(transition, str):
            found = [t for t in valid if t.label == transition]
            if not found:
                msg = (
                    f"cannot {transition!r} from state {state.label!r}; valid transitions: {names}"
                )
                raise InvalidTransitionError(msg)
            return found[0]
        if int(transition) not in {int(t) for t in valid}:
            what = (
                Transition(transition).label
                if int(transition) in Transition._value2member_map_
                else "unknown"
            )
            msg = (
                f"cannot run transition {int(transition)} ({what}) from state {state.label!r}; "
                f"valid transitions: {names}"
            )
            raise InvalidTransitionError(msg)
        return Transition(transition)

    def trigger(self, transition: Transition | int | str) -> Outcome:
        """Run one user transition and its hook(s); return how it ended."""
        with self._lock:
            user = self.resolve(transition)
            start = self._state
            via = self._step(user)
        result, reason, error = self._run_hook(via, start)
        with self._lock:
            end = self._step(self._result_edge(via, result))
        if end is State.ERRORPROCESSING:
            error_result, error_reason, _ = self._run_hook(end, start)
            with self._lock:
                self._step(self._result_edge(end, error_result))
            if error_reason:
                reason = f"{reason}; {error_reason}"
        return Outcome(user, result, self._state, reason, error)

    def _result_edge(self, via: State, result: Result) -> Transition:
        offset = result - Result.SUCCESS  # 0, 1, 2 as in rcl's 10/11/12 ... 60/61/62
        for edge in GRAPH:
            if edge.start is via and edge.transition.is_result and edge.transition % 10 == offset:
                return edge.transition
        msg = f"no result transition from {via.label} for {result.name}"
        raise LifecycleError(msg)

    def _step(self, transition: Transition) -> State:
        edge = next(e for e in GRAPH if e.transition is transition)
        self._state = edge.goal
        if self._on_event is not None:
            self._on_event(Event(self._clock_ns(), transition, edge.start, edge.goal))
        return edge.goal

    def _run_hook(self, via: State, start: State) -> tuple[Result, str, Exception | None]:
        name = HOOKS[via]
        hook = self._hooks.get(name)
        if hook is None:
            return Result.SUCCESS, "", None
        try:
            result = hook(start)
        except Exception as err:  # noqa: BLE001 - a raising hook is the standard's ERROR
            return Result.ERROR, f"{name} raised {type(err).__name__}: {err}", err
        if result is None or result is Result.SUCCESS:
            return Result.SUCCESS, "", None
        if not isinstance(result, Result):
            return Result.ERROR, f"{name} returned {result!r}; expected a lifecycle Result", None
        return result, f"{name} returned {result.name}", None
