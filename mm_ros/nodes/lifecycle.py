"""Managed (lifecycle) nodes on any ``Bus``: the standard services and transition events.

``LifecycleServer(bus, machine)`` exposes a ``mm_ros.core.lifecycle.LifecycleMachine`` (made
with ``on_event=event_publisher(bus)``) as rclcpp/rclpy lifecycle nodes do, so
``ros2 lifecycle get|set|list`` (ROS 2) and ``mm-ros lifecycle get|set|list`` (pip) drive it:

- ``~/change_state`` (lifecycle_msgs/srv/ChangeState; the label wins over the id when given),
- ``~/get_state`` (GetState), ``~/get_available_states`` (GetAvailableStates),
- ``~/get_available_transitions`` and ``~/get_transition_graph`` (GetAvailableTransitions),
- ``~/transition_event`` (lifecycle_msgs/msg/TransitionEvent, one per state change).

An invalid transition answers ``success: false`` and logs why (current state, valid choices).

Node-facing API (what a node class uses)::

    @dataclass(frozen=True)
    class ModelServiceConfig(ManagedConfig):    # adds the `autostart` parameter (and --help)
        ...

    class ModelServiceNode(LifecycleNode):
        def __init__(self, bus):
            self.config = declare_config(bus, ModelServiceConfig)   # loads nothing
            super().__init__(bus, autostart=self.config.autostart)  # serves the services
        def on_configure(self, previous): ...   # load weights/engines; raise or return
        def on_activate(self, previous): ...    #   Result.FAILURE to refuse
        def on_deactivate(self, previous): ...
        def on_cleanup(self, previous): ...     # release what on_configure loaded
        def on_shutdown(self, previous): ...
        def on_error(self, previous): ...       # after an ERROR; SUCCESS -> unconfigured

Without ``autostart=`` (a Config not derived from ``ManagedConfig``), ``LifecycleNode``
declares the ``autostart`` parameter itself. Hooks get the primary state the transition
started from and return None (SUCCESS) or a ``Result``; an exception is an ERROR. They run on
the bus's executor thread (service calls) or on the caller's (``start``/``close``).
``run_node`` calls ``start()`` after building the node: with ``autostart`` true (the default)
it configures and activates, so ``mm-ros run`` needs no extra step; a failure there ends the
process with the reason. ``close()`` runs ``shutdown`` unless the node is finalized already;
a subclass's ``close`` must call it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mm_ros.bus.naming import RELIABLE
from mm_ros.bus.protocol import BusError
from mm_ros.core.lifecycle import (
    GRAPH,
    HOOKS,
    STATES,
    Edge,
    Event,
    InvalidTransitionError,
    LifecycleError,
    LifecycleMachine,
    Outcome,
    Result,
    State,
)
from mm_ros.nodes.params import param

if TYPE_CHECKING:
    from mm_ros.bus.protocol import Bus

log = logging.getLogger("mm_ros.lifecycle")
AUTOSTART_HELP = "configure and activate at start (false: wait for a lifecycle manager)"


@dataclass(frozen=True)
class ManagedConfig:
    """Parameters every managed node has; a managed node's Config derives from it."""

    autostart: bool = param(True, AUTOSTART_HELP)


SERVICES = {  # service name -> type, as rcl_lifecycle names them
    "~/change_state": "lifecycle_msgs/srv/ChangeState",
    "~/get_state": "lifecycle_msgs/srv/GetState",
    "~/get_available_states": "lifecycle_msgs/srv/GetAvailableStates",
    "~/get_available_transitions": "lifecycle_msgs/srv/GetAvailableTransitions",
    "~/get_transition_graph": "lifecycle_msgs/srv/GetAvailableTransitions",
}
EVENT_TOPIC = "~/transition_event"
EVENT_TYPE = "lifecycle_msgs/msg/TransitionEvent"


def _state(state: State) -> dict[str, Any]:
    return {"id": int(state), "label": state.label}


def _edge(edge: Edge) -> dict[str, Any]:
    return {
        "transition": {"id": int(edge.transition), "label": edge.transition.label},
        "start_state": _state(edge.start),
        "goal_state": _state(edge.goal),
    }


class LifecycleServer:
    """The five lifecycle services and the event topic of one machine on one bus."""

    def __init__(self, bus: Bus, machine: LifecycleMachine) -> None:
        self.bus = bus
        self.machine = machine
        handlers = {
            "~/change_state": self._change_state,
            "~/get_state": lambda _r: {"current_state": _state(self.machine.state)},
            "~/get_available_states": lambda _r: {"available_states": [_state(s) for s in STATES]},
            "~/get_available_transitions": lambda _r: {
                "available_transitions": [_edge(e) for e in self.machine.available()]
            },
            "~/get_transition_graph": lambda _r: {
                "available_transitions": [_edge(e) for e in GRAPH]
            },
        }
        self._services = [
            bus.create_service(name, SERVICES[name], handler) for name, handler in handlers.items()
        ]

    def _change_state(self, request: Any) -> dict[str, bool]:
        wanted: int | str = request.transition.label or int(request.transition.id)
        try:
            outcome = self.machine.trigger(wanted)
        except InvalidTransitionError as err:
            log.warning("%s: change_state refused: %s", self.bus.fully_qualified_name, err)
            return {"success": False}
        report(self.bus, outcome)
        return {"success": outcome.success}


def event_publisher(bus: Bus) -> Any:
    """Return ``on_event`` for a machine: publish each step on ``~/transition_event``."""
    publisher = bus.create_publisher(EVENT_TOPIC, EVENT_TYPE, RELIABLE)

    def publish(event: Event) -> None:
        message = {
            "timestamp": event.timestamp_ns,
            "transition": {"id": int(event.transition), "label": event.transition.label},
            "start_state": _state(event.start),
            "goal_state": _state(event.goal),
        }
        try:
            publisher.publish(message)
        except BusError as err:  # shutdown after SIGINT: the bus is closing, the state counts
            log.debug("transition event %s not sent: %s", event.transition.label, err)
        except Exception as err:  # noqa: BLE001 - an event lost must not break the machine
            log.warning("transition event %s not sent: %s", event.transition.label, err)

    return publish


def report(bus: Bus, outcome: Outcome) -> None:
    """Log how a transition ended (info on success, error with the reason otherwise)."""
    name = bus.fully_qualified_name
    if outcome.success:
        log.info("%s: %s -> %s", name, outcome.transition.label, outcome.state.label)
    else:
        log.error(
            "%s: %s failed (%s): %s; now %s",
            name,
            outcome.transition.label,
            outcome.result.name,
            outcome.reason,
            outcome.state.label,
            exc_info=outcome.error,
        )


class LifecycleNode:
    """Base class of a managed node (see the module docstring for the hooks)."""

    def __init__(self, bus: Bus, *, autostart: bool | None = None) -> None:
        """Serve the lifecycle on ``bus``; ``autostart=None`` declares the parameter here."""
        self.bus = bus
        if autostart is None:
            autostart = bool(bus.declare_parameter("autostart", True, AUTOSTART_HELP))
        self.autostart = autostart
        hooks = {name: getattr(self, name) for name in HOOKS.values()}
        self.lifecycle = LifecycleMachine(hooks, clock_ns=bus.now_ns, on_event=event_publisher(bus))
        self.lifecycle_server = LifecycleServer(bus, self.lifecycle)

    def on_configure(self, previous: State) -> Result | None:
        """Load what the node needs (weights, engines, publishers' data)."""
        return None

    def on_activate(self, previous: State) -> Result | None:
        """Start serving."""
        return None

    def on_deactivate(self, previous: State) -> Result | None:
        """Stop serving; keep what is loaded."""
        return None

    def on_cleanup(self, previous: State) -> Result | None:
        """Release what ``on_configure`` loaded."""
        return None

    def on_shutdown(self, previous: State) -> Result | None:
        """Release everything before the node goes away."""
        return None

    def on_error(self, previous: State) -> Result | None:
        """Recover after a hook failed with ERROR (SUCCESS returns to unconfigured)."""
        return None

    def start(self) -> State:
        """Configure and activate when ``autostart`` is on; raise ``LifecycleError`` on failure."""
        if not self.autostart:
            log.info("%s: autostart off; waiting in unconfigured", self.bus.fully_qualified_name)
            return self.lifecycle.state
        for transition in ("configure", "activate"):
            outcome = self.lifecycle.trigger(transition)
            report(self.bus, outcome)
            if not outcome.success:
                msg = (
                    f"{self.bus.fully_qualified_name}: autostart {transition} failed: "
                    f"{outcome.reason} (node is {outcome.state.label})"
                )
                raise LifecycleError(msg) from outcome.error
        return self.lifecycle.state

    def close(self) -> None:
        """Run ``shutdown`` unless finalized (or in a transition) already."""
        if self.lifecycle.state in (State.UNCONFIGURED, State.INACTIVE, State.ACTIVE):
            report(self.bus, self.lifecycle.trigger("shutdown"))


def wait_until_active(bus: Bus, node: str, timeout_s: float) -> bool:
    """Wait until the managed node ``node`` (e.g. ``/mm``) reports ``active``; False on timeout.

    For clients that must not ask before the model is loaded: a managed node's services and
    action servers exist from its construction, its model only after configure + activate.
    """
    import time

    client = bus.create_client(f"{node.rstrip('/')}/get_state", SERVICES["~/get_state"])
    deadline = time.monotonic() + timeout_s
    while (left := deadline - time.monotonic()) > 0:
        if client.wait_for_service(min(left, 1.0)):
            try:
                state = client.call({}, timeout_s=min(max(left, 0.1), 5.0)).current_state
            except BusError:
                state = None  # still starting, or restarted: ask again
            if state is not None and state.label == State.ACTIVE.label:
                return True
        time.sleep(0.1)  # between two polls of a remote service
    return False
