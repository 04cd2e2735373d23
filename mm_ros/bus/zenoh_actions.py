"""ROS 2 actions over Zenoh, built from services and topics as rcl_action does.

Action ``/ns/x`` of type ``pkg/action/X`` is five endpoints under ``/ns/x/_action/``:
``send_goal`` (``X_SendGoal``), ``cancel_goal`` (``action_msgs/srv/CancelGoal``), ``get_result``
(``X_GetResult``, answered when the goal ends), ``feedback`` (``X_FeedbackMessage``, reliable)
and ``status`` (``action_msgs/msg/GoalStatusArray``, latched). Results are kept 10 s.
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from mm_ros.bus.naming import LATCHED, RELIABLE, SERVICES, EntityKind
from mm_ros.bus.protocol import BusError, BusTimeoutError, GoalStatus
from mm_ros.bus.zenoh_bus import ZenohClient, ZenohService
from mm_ros.interfaces.values import from_dict

if TYPE_CHECKING:
    from collections.abc import Callable

    from mm_ros.bus.zenoh_bus import ZenohBus

CANCEL_NONE, CANCEL_REJECTED, CANCEL_UNKNOWN_GOAL, CANCEL_TERMINATED = 0, 1, 2, 3
RESULT_KEEP_S = 10.0  # rcl_action's default result_timeout
DRAIN_S = 1.5  # at close, how long goals still running get to send their result
TERMINAL = (GoalStatus.SUCCEEDED, GoalStatus.CANCELED, GoalStatus.ABORTED)


def _uuid(message: Any) -> bytes:
    return bytes(np.asarray(message.uuid, dtype=np.uint8))


@dataclass
class _Goal:
    goal_id: bytes
    request: Any
    stamp_ns: int
    status: GoalStatus = GoalStatus.ACCEPTED
    result: Any = None
    cancel_requested: threading.Event = field(default_factory=threading.Event)
    waiters: list[Callable[[Any], None]] = field(default_factory=list)
    final: GoalStatus | None = None


class ServerGoalHandle:
    """The goal as ``execute`` sees it."""

    def __init__(self, server: ZenohActionServer, goal: _Goal) -> None:
        self._server = server
        self._goal = goal
        self.goal_id = goal.goal_id
        self.request = goal.request

    @property
    def is_cancel_requested(self) -> bool:
        """True once a client asked to cancel this goal."""
        return self._goal.cancel_requested.is_set()

    def publish_feedback(self, feedback: Any) -> None:
        """Send one X_Feedback (a message or a dict of its fields)."""
        self._server.publish_feedback(self._goal, feedback)

    def canceled(self) -> None:
        """End as CANCELED with the result ``execute`` returns."""
        self._goal.final = GoalStatus.CANCELED

    def abort(self) -> None:
        """End as ABORTED with the result ``execute`` returns."""
        self._goal.final = GoalStatus.ABORTED


class ZenohActionServer:
    """Serves one action; each accepted goal runs ``execute`` on a thread of its own."""

    def __init__(
        self,
        bus: ZenohBus,
        name: str,
        typename: str,
        execute: Callable[[ServerGoalHandle], Any],
        accept: Callable[[Any], bool] | None = None,
    ) -> None:
        self.name = name
        self.typename = typename
        self._bus = bus
        self._execute = execute
        self._accept = accept or (lambda _goal: True)
        self._goals: dict[bytes, _Goal] = {}
        self._lock = threading.Lock()
        self._running = 0  # goals whose execute has not returned
        self._idle = threading.Condition(self._lock)
        base = f"{name}/_action"
        self._services = [
            ZenohService(
                bus,
                bus.endpoint(
                    f"{base}/send_goal",
                    f"{typename}_SendGoal",
                    EntityKind.SERVICE,
                    SERVICES,
                    resolved=True,
                ),
                self._on_send_goal,
            ),
            ZenohService(
                bus,
                bus.endpoint(
                    f"{base}/cancel_goal",
                    "action_msgs/srv/CancelGoal",
                    EntityKind.SERVICE,
                    SERVICES,
                    resolved=True,
                ),
                self._on_cancel,
            ),
            ZenohService(
                bus,
                bus.endpoint(
                    f"{base}/get_result",
                    f"{typename}_GetResult",
                    EntityKind.SERVICE,
                    SERVICES,
                    resolved=True,
                ),
                self._on_get_result,
                deferred=True,
            ),
        ]
        self._feedback = bus.create_publisher(
            f"{base}/feedback", f"{typename}_FeedbackMessage", RELIABLE
        )
        self._status = bus.create_publisher(
            f"{base}/status", "action_msgs/msg/GoalStatusArray", LATCHED
        )
        self._publish_status()

    # -- services ----------------------------------------------------------------------

    def _on_send_goal(self, request: Any) -> Any:
        goal_id = _uuid(request.goal_id)
        accepted = bool(self._accept(request.goal))
        now = time.time_ns()
        response = {
            "accepted": accepted,
            "stamp": {"sec": now // 1_000_000_000, "nanosec": now % 1_000_000_000},
        }
        if accepted:
            goal = _Goal(goal_id, request.goal, now)
            with self._lock:
                self._goals[goal_id] = goal
                self._running += 1
            self._publish_status()
            threading.Thread(
                target=self._run, args=(goal,), name="action-goal", daemon=True
            ).start()
        return from_dict(self._bus.store, f"{self.typename}_SendGoal_Response", response)

    def _on_cancel(self, request: Any) -> Any:
        goal_id = _uuid(request.goal_info.goal_id)
        stamp_ns = request.goal_info.stamp.sec * 1_000_000_000 + request.goal_info.stamp.nanosec
        with self._lock:
            if any(goal_id):
                goal = self._goals.get(goal_id)
                if goal is None:
                    return self._cancel_response(CANCEL_UNKNOWN_GOAL, [])
                if goal.status in TERMINAL:
                    return self._cancel_response(CANCEL_TERMINATED, [])
                targets = [goal]
            else:
                targets = [
                    g
                    for g in self._goals.values()
                    if g.status not in TERMINAL and (stamp_ns == 0 or g.stamp_ns <= stamp_ns)
                ]
            for goal in targets:
                goal.cancel_requested.set()
                goal.status = GoalStatus.CANCELING
        self._publish_status()
        return self._cancel_response(CANCEL_NONE, targets)

    def _cancel_response(self, code: int, goals: list[_Goal]) -> Any:
        return from_dict(
            self._bus.store,
            "action_msgs/srv/CancelGoal_Response",
            {
                "return_code": code,
                "goals_canceling": [self._goal_info(g) for g in goals],
            },
        )

    def _on_get_result(self, request: Any, respond: Callable[[Any], None]) -> None:
        goal_id = _uuid(request.goal_id)
        with self._lock:
            goal = self._goals.get(goal_id)
            if goal is not None and goal.status not in TERMINAL:
                goal.waiters.append(respond)
                return
        status = goal.status if goal is not None else GoalStatus.UNKNOWN
        respond(self._result_response(status, goal.result if goal is not None else None))

    def _result_response(self, status: GoalStatus, result: Any) -> Any:
        values: dict[str, Any] = {"status": int(status)}
        if result is not None:
            values["result"] = result
        return from_dict(self._bus.store, f"{self.typename}_GetResult_Response", values)

    # -- execution ---------------------------------------------------------------------

    def _run(self, goal: _Goal) -> None:
        try:
            self._execute_goal(goal)
        except Exception:
            if not self._bus.closed:
                raise
            # the node shut down under a goal that outlived drain(): its result has no way out
            self._bus.log.debug("action %s: goal ended after shutdown", self.name)
        finally:
            with self._idle:
                self._running -= 1
                self._idle.notify_all()

    def _execute_goal(self, goal: _Goal) -> None:
        with self._lock:
            if goal.status is GoalStatus.ACCEPTED:
                goal.status = GoalStatus.EXECUTING
        self._publish_status()
        try:
            result = self._execute(ServerGoalHandle(self, goal))
            final = goal.final or (
                GoalStatus.CANCELED if goal.cancel_requested.is_set() else GoalStatus.SUCCEEDED
            )
        except Exception:
            self._bus.log.exception("action %s: execute raised; goal aborted", self.name)
            result, final = None, GoalStatus.ABORTED
        if isinstance(result, dict) or result is None:
            try:
                result = from_dict(self._bus.store, f"{self.typename}_Result", result or {})
            except (ValueError, TypeError, OverflowError, KeyError):
                # a result that does not fit its type still ends the goal (ABORTED, empty)
                self._bus.log.exception(
                    "action %s: result does not fit %s_Result; goal aborted",
                    self.name,
                    self.typename,
                )
                result = from_dict(self._bus.store, f"{self.typename}_Result", {})
                final = GoalStatus.ABORTED
        with self._lock:
            goal.result, goal.status = result, final
            waiters, goal.waiters = goal.waiters, []
        self._publish_status()
        response = self._result_response(final, result)
        for respond in waiters:
            respond(response)
        forget = threading.Timer(RESULT_KEEP_S, self._forget, args=(goal.goal_id,))
        forget.daemon = True
        forget.start()

    def _forget(self, goal_id: bytes) -> None:
        with self._lock:
            self._goals.pop(goal_id, None)
        self._publish_status()

    def publish_feedback(self, goal: _Goal, feedback: Any) -> None:
        """Publish X_FeedbackMessage for one goal (nothing once the node shut down)."""
        if self._bus.closed:
            return
        with contextlib.suppress(BusError):  # the node shut down since the check
            self._feedback.publish({"goal_id": {"uuid": list(goal.goal_id)}, "feedback": feedback})

    @staticmethod
    def _goal_info(goal: _Goal) -> dict[str, Any]:
        return {
            "goal_id": {"uuid": list(goal.goal_id)},
            "stamp": {
                "sec": goal.stamp_ns // 1_000_000_000,
                "nanosec": goal.stamp_ns % 1_000_000_000,
            },
        }

    def _publish_status(self) -> None:
        if self._bus.closed:
            return  # goals still running when the node shut down end quietly
        with self._lock:
            entries = [
                {"goal_info": self._goal_info(g), "status": int(g.status)}
                for g in self._goals.values()
            ]
        with contextlib.suppress(BusError):  # the node shut down since the check
            self._status.publish({"status_list": entries})

    def drain(self, timeout_s: float = DRAIN_S) -> None:
        """Wait (``timeout_s`` at most) for every running goal to end and reply; abort the rest.

        A goal whose ``execute`` does not return in time still ends with one result: ABORTED,
        empty, sent to the clients waiting for it.
        """
        with self._idle:
            if self._idle.wait_for(lambda: self._running == 0, timeout_s):
                return
            late = [g for g in self._goals.values() if g.status not in TERMINAL]
            answered = [(g, g.waiters) for g in late]
            for goal in late:
                goal.status, goal.waiters = GoalStatus.ABORTED, []
        self._bus.log.warning(
            "action %s: %d goal(s) still running at shutdown, aborted", self.name, len(late)
        )
        for goal, waiters in answered:
            response = self._result_response(GoalStatus.ABORTED, goal.result)
            for respond in waiters:
                respond(response)
        self._publish_status()

    def close(self) -> None:
        """Stop serving."""
        for service in self._services:
            service.close()


class ClientGoalHandle:
    """A goal as its client sees it."""

    def __init__(self, client: ZenohActionClient, goal_id: bytes, accepted: bool) -> None:
        self._client = client
        self.goal_id = goal_id
        self.accepted = accepted

    def result(self, timeout_s: float = 60.0) -> tuple[GoalStatus, Any]:
        """Wait for the goal to end; return its status and X_Result."""
        try:
            response = self._client.get_result.call(
                {"goal_id": {"uuid": list(self.goal_id)}}, timeout_s=timeout_s
            )
        except BusTimeoutError as err:
            raise BusTimeoutError(f"action {self._client.name}: no result: {err}") from err
        finally:
            self._client.forget(self.goal_id)
        return GoalStatus(response.status), response.result

    def cancel(self, timeout_s: float = 5.0) -> int:
        """Ask the server to cancel; return CancelGoal's return code (0 = canceling)."""
        response = self._client.cancel_goal.call(
            {"goal_info": {"goal_id": {"uuid": list(self.goal_id)}}}, timeout_s=timeout_s
        )
        return int(response.return_code)


class ZenohActionClient:
    """Sends goals to one action server."""

    def __init__(self, bus: ZenohBus, name: str, typename: str) -> None:
        self.name = name
        self.typename = typename
        self._bus = bus
        base = f"{name}/_action"

        def client(service: str, service_type: str) -> ZenohClient:
            return ZenohClient(
                bus,
                bus.endpoint(
                    f"{base}/{service}", service_type, EntityKind.CLIENT, SERVICES, resolved=True
                ),
            )

        self.send_goal_client = client("send_goal", f"{typename}_SendGoal")
        self.cancel_goal = client("cancel_goal", "action_msgs/srv/CancelGoal")
        self.get_result = client("get_result", f"{typename}_GetResult")
        self._feedback_callbacks: dict[bytes, Callable[[Any], None]] = {}
        self._feedback_sub = bus.create_subscription(
            f"{base}/feedback", f"{typename}_FeedbackMessage", self._on_feedback, RELIABLE
        )
        self._status_sub = bus.create_subscription(
            f"{base}/status", "action_msgs/msg/GoalStatusArray", lambda _msg: None, LATCHED
        )

    def _on_feedback(self, message: Any) -> None:
        callback = self._feedback_callbacks.get(_uuid(message.goal_id))
        if callback is not None:
            callback(message.feedback)

    def forget(self, goal_id: bytes) -> None:
        """Stop routing feedback of a finished goal."""
        self._feedback_callbacks.pop(goal_id, None)

    def send_goal(
        self, goal: Any, feedback: Callable[[Any], None] | None = None, timeout_s: float = 5.0
    ) -> ClientGoalHandle:
        """Send a goal (a message or dict); raise ``BusTimeoutError`` if nobody answers."""
        goal_id = uuid.uuid4().bytes
        if feedback is not None:
            self._feedback_callbacks[goal_id] = feedback
        try:
            response = self.send_goal_client.call(
                {"goal_id": {"uuid": list(goal_id)}, "goal": goal}, timeout_s=timeout_s
            )
        except BusError:
            self.forget(goal_id)
            raise
        if not response.accepted:
            self.forget(goal_id)
        return ClientGoalHandle(self, goal_id, bool(response.accepted))

    def wait_for_server(self, timeout_s: float = 5.0) -> bool:
        """Return True once the server's send_goal service is visible."""
        return self.send_goal_client.wait_for_service(timeout_s)
