"""The ``Bus`` protocol every node is written against, and its configuration.

Two implementations: ``zenoh`` (speaks rmw_zenoh's wire format, pip-only) and ``rclpy`` (inside
a sourced ROS 2). Nodes never import either; they get message classes from ``bus.msg(...)``.

Threading: every subscription, service and timer callback runs on the bus's single executor
thread, one at a time, in arrival order (rclpy's single-threaded executor semantics). Action
``execute`` callbacks run on a thread of their own per goal, so long work never blocks
callbacks. A callback must not block on a service call served by the same bus.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from enum import IntEnum
from typing import TYPE_CHECKING, Any, Protocol

from mm_ros.core.errors import ConfigError, MmRosError

if TYPE_CHECKING:
    from collections.abc import Callable

    from mm_ros.bus.naming import QoS
    from mm_ros.core.drops import DropLog

DEFAULT_CONNECT = "tcp/127.0.0.1:7447"  # rmw_zenohd's default port, IPv4 (REFERENCE section 1)


class BusError(MmRosError):
    """A bus operation failed (the message says which entity and why)."""


class BusTimeoutError(BusError, TimeoutError):
    """A service, action or discovery wait ran out of time."""


def as_array(data: Any, dtype: Any = None) -> Any:
    """View a message's array field as numpy without copying (rosbags ndarray or rclpy array)."""
    import numpy as np

    if isinstance(data, np.ndarray):
        return data if dtype is None else data.view(dtype)
    return np.frombuffer(data, dtype=dtype or np.uint8)


class BusUnavailableError(BusError):
    """The transport cannot be reached (no Zenoh router at the endpoint, no ROS 2 install)."""


@dataclass(frozen=True)
class BusConfig:
    """How a bus connects; built at the edge from CLI flags and environment variables."""

    connect: tuple[str, ...] = (DEFAULT_CONNECT,)
    listen: tuple[str, ...] = ()  # peers listen on an ephemeral port unless given
    mode: str = "peer"  # peer on the robot; "client" from a headset over Wi-Fi
    domain: int = 0  # ROS_DOMAIN_ID: first chunk of every key
    distro: str = "jazzy"  # humble puts TypeHashNotSupported where a hash goes
    audio_layout: str = "ros-drivers"
    # Zenoh's transport-level shared memory between peers on one host: Zenoh moves big
    # payloads through SHM by itself. Measured here on a 6 MB frame: 5.3 ms with it on, 13.7 ms
    # with it off, and 9.3 ms when we copied into an explicit SHM buffer ourselves (the Python
    # API of zenoh 1.10 needs extra copies there), so we only switch the transport setting.
    shared_memory: bool = True
    connect_timeout_s: float = 5.0  # how long to look for the router before failing
    # A Zenoh JSON5 configuration file the session starts from (TLS, mutual TLS, access
    # control); its settings win over the fields above (zenoh_session.py). "" = none.
    zenoh_config: str = ""
    # Keep freed multi-MB buffers mapped (glibc mallopt, process-wide, see bus/memory.py): a
    # fresh 6 MB buffer page-faults ~1 500 times, which cost 5-10 ms per 1080p frame here.
    keep_large_buffers: bool = True

    def __post_init__(self) -> None:
        if self.mode not in ("peer", "client"):
            raise ConfigError(f"bus mode must be 'peer' or 'client', found {self.mode!r}")
        if not 0 <= self.domain <= 232:  # noqa: PLR2004 - ROS_DOMAIN_ID range
            raise ConfigError(f"ROS domain id must be 0..232, found {self.domain}")
        if not self.connect and self.mode == "client":
            raise ConfigError("client mode needs at least one --connect endpoint")

    @classmethod
    def from_env(cls, **overrides: Any) -> BusConfig:
        """Read the environment, then apply ``overrides`` (None values are skipped).

        Variables: ``MM_ROS_CONNECT``, ``ROS_DOMAIN_ID``, ``ROS_DISTRO`` and rmw_zenoh's
        ``ZENOH_SESSION_CONFIG_URI``.
        """
        values: dict[str, Any] = {}
        if os.environ.get("ZENOH_SESSION_CONFIG_URI"):
            values["zenoh_config"] = os.environ["ZENOH_SESSION_CONFIG_URI"]
        if os.environ.get("MM_ROS_CONNECT"):
            values["connect"] = tuple(os.environ["MM_ROS_CONNECT"].split(","))
        if os.environ.get("ROS_DOMAIN_ID"):
            try:
                values["domain"] = int(os.environ["ROS_DOMAIN_ID"])
            except ValueError as err:
                raise ConfigError(
                    f"ROS_DOMAIN_ID must be an integer, found {os.environ['ROS_DOMAIN_ID']!r}"
                ) from err
        if os.environ.get("ROS_DISTRO") in ("humble", "jazzy", "kilted"):
            values["distro"] = os.environ["ROS_DISTRO"]
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


class GoalStatus(IntEnum):
    """action_msgs/msg/GoalStatus codes."""

    UNKNOWN = 0
    ACCEPTED = 1
    EXECUTING = 2
    CANCELING = 3
    SUCCEEDED = 4
    CANCELED = 5
    ABORTED = 6


class Publisher(Protocol):
    """Publishes messages of one type on one topic."""

    topic: str

    def publish(self, message: Any) -> None:
        """Serialize and send one message."""

    def publish_raw(self, data: bytes | bytearray) -> None:
        """Send one message already in CDR (a bag's recorded bytes), as it is."""


class Client(Protocol):
    """Calls one service."""

    def call(self, request: Any, timeout_s: float = 5.0) -> Any:
        """Return the response; raise ``BusTimeoutError`` when none comes in time."""

    def wait_for_service(self, timeout_s: float = 5.0) -> bool:
        """Return True once a server is visible in the graph."""


class ServerGoal(Protocol):
    """A goal being executed by an action server (passed to ``execute``)."""

    goal_id: bytes
    request: Any  # the X_Goal message

    @property
    def is_cancel_requested(self) -> bool:
        """True once a client asked to cancel this goal."""

    def publish_feedback(self, feedback: Any) -> None:
        """Send one X_Feedback message to the clients."""

    def canceled(self) -> None:
        """End the goal as CANCELED with the result ``execute`` returns."""

    def abort(self) -> None:
        """End the goal as ABORTED with the result ``execute`` returns."""


class ClientGoal(Protocol):
    """A goal sent by an action client."""

    goal_id: bytes
    accepted: bool

    def result(self, timeout_s: float = 60.0) -> tuple[GoalStatus, Any]:
        """Wait for the goal to end; return its status and X_Result."""

    def cancel(self, timeout_s: float = 5.0) -> int:
        """Ask the server to cancel; return the CancelGoal return code (0 = accepted)."""


class ActionClient(Protocol):
    """Sends goals of one action type to one action server."""

    def send_goal(
        self,
        goal: Any,
        feedback: Callable[[Any], None] | None = None,
        timeout_s: float = 5.0,
    ) -> ClientGoal:
        """Send a goal; ``feedback`` gets each X_Feedback on the bus's executor thread."""

    def wait_for_server(self, timeout_s: float = 5.0) -> bool:
        """Return True once the server's services are visible."""


class Timer(Protocol):
    """A periodic callback on the executor thread."""

    def cancel(self) -> None:
        """Stop calling back."""


class Bus(Protocol):
    """One ROS 2 node on a transport."""

    node_name: str
    namespace: str
    drops: DropLog  # input this node dropped, per topic and cause (logged throttled)

    @property
    def fully_qualified_name(self) -> str:
        """Return ``/namespace/node_name``."""

    def resolve(self, name: str) -> str:
        """Fully qualified name of a topic or service after namespace and remaps."""

    def set_audio_layout(self, layout: str) -> None:
        """Use the ``ros-drivers`` or ``mgonzs13`` audio_common_msgs (before audio entities)."""

    def msg(self, typename: str) -> Callable[..., Any]:
        """Return a factory of ``typename`` messages; missing fields get ROS defaults."""

    def create_publisher(self, topic: str, typename: str, qos: QoS) -> Publisher:
        """Advertise a topic."""

    def create_subscription(
        self, topic: str, typename: str, callback: Callable[[Any], None], qos: QoS
    ) -> object:
        """Subscribe; ``callback(message)`` runs on the executor thread."""

    def create_service(self, name: str, typename: str, handler: Callable[[Any], Any]) -> object:
        """Serve ``pkg/srv/X``: ``handler(X_Request) -> X_Response``."""

    def create_client(self, name: str, typename: str) -> Client:
        """Client of ``pkg/srv/X``."""

    def create_action_server(
        self,
        name: str,
        typename: str,
        execute: Callable[[ServerGoal], Any],
        accept: Callable[[Any], bool] | None = None,
    ) -> object:
        """Serve ``pkg/action/X``: ``execute(goal) -> X_Result`` on its own thread."""

    def create_action_client(self, name: str, typename: str) -> ActionClient:
        """Client of ``pkg/action/X``."""

    def create_timer(self, period_s: float, callback: Callable[[], None]) -> Timer:
        """Call ``callback`` every ``period_s`` s of ``now_ns``'s clock on the executor thread."""

    def now_ns(self) -> int:
        """Return the node's clock in ns: wall time, or ``/clock`` with ``use_sim_time``."""

    def declare_parameter(
        self,
        name: str,
        default: Any,
        description: str = "",
        on_set: Callable[[Any], None] | None = None,
    ) -> Any:
        """Declare a parameter; return its value (an override if given, else ``default``).

        Without ``on_set`` the parameter is read-only once declared (``ros2 param set`` is
        refused, saying how to change it). With it, a new value of the declared type is passed
        to ``on_set`` first: it applies the value, or raises ``ConfigError`` to refuse it (the
        reason reaches the caller) and the old value stays.
        """

    def get_parameter(self, name: str) -> Any:
        """Return the value of a declared parameter."""

    def set_parameter(self, name: str, value: Any) -> None:
        """Set a parameter as ``ros2 param set`` does; raise ``ConfigError`` naming why not."""

    def count_publishers(self, topic: str) -> int:
        """Count the publishers of ``topic`` visible in the graph."""

    def count_subscribers(self, topic: str) -> int:
        """Count the subscriptions of ``topic`` visible in the graph."""

    def node_names(self) -> list[str]:
        """List the fully qualified names of the visible nodes."""

    def spin(self, timeout_s: float | None = None) -> None:
        """Block until shutdown (SIGINT/SIGTERM, ``request_shutdown``, ``close``) or timeout."""

    def request_shutdown(self) -> None:
        """Make ``spin`` return (as SIGINT/SIGTERM do); everything works until ``close``."""

    @property
    def shutdown_requested(self) -> bool:
        """True once a shutdown signal arrived, ``request_shutdown`` or ``close`` ran."""

    @property
    def closed(self) -> bool:
        """True once ``close`` ran."""

    def close(self) -> None:
        """Let action goals in flight send their result, undeclare everything, leave the graph."""
