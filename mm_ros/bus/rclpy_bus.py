"""The rclpy implementation of ``Bus``: thin, for nodes running inside a sourced ROS 2.

Whatever RMW the robot uses (Fast DDS, Cyclone, rmw_zenoh) carries the data. Callbacks of
subscriptions, services and timers run one at a time on a single-threaded executor (rclpy's
multi-threaded one costs several times more per message: it could not keep up with a 1 kHz
IMU here). A node that serves an action moves to a multi-threaded executor, with ``execute`` in
a reentrant group, so long goals never block callbacks. Parameters follow the same rules as the
zenoh bus (the overrides are parsed by ``mm_ros.bus.ros_args`` and handed to rclpy).
"""

from __future__ import annotations

import importlib
import threading
import time
from typing import TYPE_CHECKING, Any

from mm_ros.bus import memory, naming
from mm_ros.bus.naming import RELIABLE, QoS
from mm_ros.bus.parameters import READ_ONLY, ParameterTable
from mm_ros.bus.protocol import BusError, BusTimeoutError, BusUnavailableError, GoalStatus
from mm_ros.bus.ros_args import (
    RosArgs,
    checked_parameter,
    parameter_overrides,
    parse_ros_args,
    ros_tokens,
)
from mm_ros.bus.signals import SpinUntilStopped
from mm_ros.core.drops import DropLog
from mm_ros.core.errors import ConfigError
from mm_ros.core.stopping import StopFlag

if TYPE_CHECKING:
    from collections.abc import Callable

_ACTION_PARTS = {
    "SendGoal_Request": ("Impl", "SendGoalService", "Request"),
    "SendGoal_Response": ("Impl", "SendGoalService", "Response"),
    "SendGoal": ("Impl", "SendGoalService"),
    "GetResult_Request": ("Impl", "GetResultService", "Request"),
    "GetResult_Response": ("Impl", "GetResultService", "Response"),
    "GetResult": ("Impl", "GetResultService"),
    "FeedbackMessage": ("Impl", "FeedbackMessage"),
    "Goal": ("Goal",),
    "Result": ("Result",),
    "Feedback": ("Feedback",),
}
_users = 0  # buses alive in this process; rclpy is initialised once for all of them
_users_lock = threading.Lock()
DRAIN_S = 1.5  # at close, how long goals still running get to return their result
LINGER_S = 0.3  # after the last goal result, keep spinning so DDS delivers it


def interface_class(typename: str) -> Any:
    """Return the rclpy class of ``pkg/msg|srv|action/Name`` (helpers and ``_Request`` too)."""
    if typename.count("/") == 1:  # rclpy's field-type spelling pkg/Name
        pkg, name = typename.split("/")
        kind = "msg" if hasattr(importlib.import_module(f"{pkg}.msg"), name) else "action"
    else:
        pkg, kind, name = typename.split("/")
    try:
        module = importlib.import_module(f"{pkg}.{kind}")
        if hasattr(module, name):
            return getattr(module, name)
        base, _, part = name.partition("_")
        if kind == "srv" and part in ("Request", "Response"):
            return getattr(getattr(module, base), part)
        obj = getattr(module, base)
        for attr in _ACTION_PARTS[part]:
            obj = getattr(obj, attr)
        return obj
    except (ImportError, AttributeError, KeyError) as err:
        msg = f"interface {typename!r} is not built in this ROS 2 environment ({err})"
        raise BusError(msg) from err


def build(cls: Any, values: Any) -> Any:
    """Return a message of ``cls`` built from a dict, or ``values`` when it is one already."""
    if not isinstance(values, dict):
        return values
    message = cls()
    types = cls.get_fields_and_field_types()
    for name, value in values.items():
        if name not in types:
            msg = f"{cls.__name__} has no field {name!r}; its fields are {sorted(types)}"
            raise BusError(msg)
        spec = types[name]
        inner = spec.removeprefix("sequence<").split(",")[0].rstrip(">").split("[")[0]
        if "/" in inner and isinstance(value, dict):
            setattr(message, name, build(interface_class(inner), value))
        elif "/" in inner and isinstance(value, list | tuple):
            setattr(message, name, [build(interface_class(inner), v) for v in value])
        elif spec == "byte" and isinstance(value, int):  # rclpy wants bytes for `byte`
            setattr(message, name, bytes([value]))
        else:
            setattr(message, name, value)
    return message


def _qos(qos: QoS) -> Any:
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

    return QoSProfile(
        reliability=ReliabilityPolicy.BEST_EFFORT
        if qos.reliability is naming.Reliability.BEST_EFFORT
        else ReliabilityPolicy.RELIABLE,
        durability=DurabilityPolicy.TRANSIENT_LOCAL
        if qos.durability is naming.Durability.TRANSIENT_LOCAL
        else DurabilityPolicy.VOLATILE,
        history=HistoryPolicy.KEEP_ALL
        if qos.history is naming.History.KEEP_ALL
        else HistoryPolicy.KEEP_LAST,
        depth=max(qos.depth, 1),
    )


def _wait(future: Any, timeout_s: float, what: str) -> Any:
    done = threading.Event()
    future.add_done_callback(lambda _f: done.set())
    if not done.wait(timeout_s):
        raise BusTimeoutError(f"{what}: no answer within {timeout_s:g} s")
    return future.result()


class RclpyPublisher:
    """Publishes rclpy messages (or dicts of their fields)."""

    def __init__(self, bus: RclpyBus, topic: str, typename: str, qos: QoS) -> None:
        self._cls = interface_class(typename)
        self._pub = bus.node.create_publisher(self._cls, topic, _qos(qos))
        self.topic = self._pub.topic_name

    def publish(self, message: Any) -> None:
        """Publish one message."""
        self._pub.publish(build(self._cls, message))

    def publish_raw(self, data: bytes | bytearray) -> None:
        """Publish CDR bytes as they are (rclpy takes ``bytes`` as a serialized message)."""
        self._pub.publish(bytes(data))


class RclpyClient:
    """Calls one service."""

    def __init__(self, bus: RclpyBus, name: str, typename: str) -> None:
        self._bus = bus
        self._cls = interface_class(typename)
        self._client = bus.node.create_client(self._cls, name)
        self.name = self._client.srv_name

    def call(self, request: Any, timeout_s: float = 5.0) -> Any:
        """Return the response; raise ``BusTimeoutError`` when none comes in time."""
        future = self._client.call_async(build(self._cls.Request, request))
        try:
            return _wait(future, timeout_s, f"service {self.name}")
        except BusTimeoutError:
            self._client.remove_pending_request(future)
            raise

    def wait_for_service(self, timeout_s: float = 5.0) -> bool:
        """Return True once a server is available."""
        return bool(self._client.wait_for_service(timeout_sec=timeout_s))


class RclpyServerGoal:
    """Adapts rclpy's ServerGoalHandle to ``ServerGoal``."""

    def __init__(self, handle: Any, feedback_cls: Any) -> None:
        self._handle = handle
        self._feedback_cls = feedback_cls
        self.goal_id = bytes(handle.goal_id.uuid)
        self.request = handle.request
        self.final: GoalStatus | None = None

    @property
    def is_cancel_requested(self) -> bool:
        """True once a client asked to cancel this goal."""
        return bool(self._handle.is_cancel_requested)

    def publish_feedback(self, feedback: Any) -> None:
        """Send one X_Feedback."""
        self._handle.publish_feedback(build(self._feedback_cls, feedback))

    def canceled(self) -> None:
        """End as CANCELED."""
        self.final = GoalStatus.CANCELED

    def abort(self) -> None:
        """End as ABORTED."""
        self.final = GoalStatus.ABORTED


class RclpyClientGoal:
    """A goal sent with rclpy's ActionClient."""

    def __init__(self, handle: Any, name: str) -> None:
        self._handle = handle
        self._name = name
        self.goal_id = bytes(handle.goal_id.uuid)
        self.accepted = bool(handle.accepted)

    def result(self, timeout_s: float = 60.0) -> tuple[GoalStatus, Any]:
        """Wait for the goal to end; return its status and X_Result."""
        try:
            response = _wait(self._handle.get_result_async(), timeout_s, f"action {self._name}")
        except BusTimeoutError as err:
            msg = (
                f"action {self._name}: no result within {timeout_s:g} s "
                "(server gone or goal still running)"
            )
            raise BusTimeoutError(msg) from err
        return GoalStatus(response.status), response.result

    def cancel(self, timeout_s: float = 5.0) -> int:
        """Ask the server to cancel; return CancelGoal's return code."""
        response = _wait(self._handle.cancel_goal_async(), timeout_s, f"cancel on {self._name}")
        return int(response.return_code)


class RclpyActionClient:
    """Sends goals with rclpy's ActionClient."""

    def __init__(self, bus: RclpyBus, name: str, typename: str) -> None:
        from rclpy.action import ActionClient

        self._cls = interface_class(typename)
        self._client = ActionClient(bus.node, self._cls, name)
        self._name = name

    def send_goal(
        self, goal: Any, feedback: Callable[[Any], None] | None = None, timeout_s: float = 5.0
    ) -> RclpyClientGoal:
        """Send a goal (a message or dict)."""
        callback = (lambda message: feedback(message.feedback)) if feedback else None
        future = self._client.send_goal_async(build(self._cls.Goal, goal), callback)
        return RclpyClientGoal(_wait(future, timeout_s, f"action {self._name}"), self._name)

    def wait_for_server(self, timeout_s: float = 5.0) -> bool:
        """Return True once the server is available."""
        return bool(self._client.wait_for_server(timeout_sec=timeout_s))


class RclpyBus(SpinUntilStopped):
    """One ROS 2 node on rclpy (see ``mm_ros.bus.protocol``)."""

    def __init__(
        self,
        node_name: str,
        *,
        namespace: str = "/",
        args: RosArgs | list[str] | None = None,
        keep_large_buffers: bool = True,
    ) -> None:
        global _users  # noqa: PLW0603 - one rclpy context per process, shared by all buses
        if keep_large_buffers:  # rclpy's CDR of a 6 MB frame: 12.6 ms CPU with glibc's defaults,
            memory.keep_large_buffers()  # 1.2 ms with freed buffers kept (bus/memory.py)
        try:
            import rclpy
            from rclpy.executors import SingleThreadedExecutor
            from rclpy.parameter import Parameter
            from rclpy.signals import SignalHandlerOptions
        except ImportError as err:
            raise BusUnavailableError(f"rclpy is not importable here: {err}") from err
        ros = args if isinstance(args, RosArgs) else parse_ros_args(list(args or []))
        self.ros_args = ros
        name = naming.validate_node_name(ros.node_name or node_name)
        ns = naming.validate_namespace(ros.namespace or namespace)
        self._overrides = parameter_overrides(ros, f"{ns.rstrip('/')}/{name}")
        with _users_lock:
            if _users == 0 and not rclpy.ok():
                # our own handlers (spin, run_node): rclpy's would shut the context down at
                # once, before the node has answered what it holds
                rclpy.init(args=None, signal_handler_options=SignalHandlerOptions.NO)
            _users += 1
        sim = bool(self._overrides.get("use_sim_time", False))
        self.node = rclpy.create_node(
            name,
            namespace=ns,
            cli_args=ros_tokens(ros),
            use_global_arguments=False,
            parameter_overrides=[Parameter("use_sim_time", value=sim)],
        )
        self.node_name = self.node.get_name()
        self.namespace = self.node.get_namespace()
        self.log = self.node.get_logger()
        self._params = ParameterTable(self.fully_qualified_name)
        self._params.declare("use_sim_time", False, {"use_sim_time": sim})  # rclpy's own
        self.node.add_on_set_parameters_callback(self._on_set_parameters)
        self.drops = DropLog(self.log.warning)
        self._closed = threading.Event()
        self._stopping = StopFlag()  # spin returns once set (signal handlers set it)
        self._goals = threading.Condition()
        self._running_goals = 0
        self._last_goal_end = 0.0  # monotonic s
        self.node.context.on_shutdown(self.request_shutdown)  # rclpy shut down by another
        self._stop_spinning = threading.Event()
        self._executor: Any = None
        self._spinner: threading.Thread | None = None
        self._use_executor(SingleThreadedExecutor())

    def _use_executor(self, executor: Any) -> None:
        """Spin the node on ``executor`` from now on (stops the previous one first)."""
        if self._spinner is not None:
            self._stop_spinning.set()
            self._spinner.join(timeout=5)
            self._executor.remove_node(self.node)
            self._executor.shutdown(timeout_sec=1)
        self._stop_spinning.clear()
        self._executor = executor
        executor.add_node(self.node)
        self._spinner = threading.Thread(
            target=self._spin, args=(executor,), name="rclpy-executor", daemon=True
        )
        self._spinner.start()

    def _spin(self, executor: Any) -> None:
        while not self._stop_spinning.is_set():
            try:
                executor.spin_once(timeout_sec=0.1)
            except Exception:
                if self._stop_spinning.is_set():  # shutting down races the executor
                    return
                raise

    @property
    def fully_qualified_name(self) -> str:
        """Return ``/namespace/node_name``."""
        return str(self.node.get_fully_qualified_name())

    def resolve(self, name: str) -> str:
        """Fully qualified, remapped name of a topic/service."""
        return str(self.node.resolve_topic_name(name))

    def set_audio_layout(self, layout: str) -> None:
        """Nothing to switch: the installed ``audio_common_msgs`` decides (checked on use)."""
        self.log.debug(f"audio layout {layout} requested; the installed package decides")

    def msg(self, typename: str) -> Callable[..., Any]:
        """Return a factory of ``typename`` messages; missing fields get ROS defaults."""
        cls = interface_class(typename)
        return lambda **fields: build(cls, fields)

    def create_publisher(self, topic: str, typename: str, qos: QoS = RELIABLE) -> RclpyPublisher:
        """Advertise a topic."""
        return RclpyPublisher(self, topic, typename, qos)

    def create_subscription(
        self, topic: str, typename: str, callback: Callable[[Any], None], qos: QoS = RELIABLE
    ) -> Any:
        """Subscribe; ``callback(message)`` runs on the executor."""
        return self.node.create_subscription(interface_class(typename), topic, callback, _qos(qos))

    def create_service(self, name: str, typename: str, handler: Callable[[Any], Any]) -> Any:
        """Serve ``pkg/srv/X``: ``handler(X_Request) -> X_Response`` (or a dict)."""
        cls = interface_class(typename)
        return self.node.create_service(
            cls, name, lambda request, _response: build(cls.Response, handler(request))
        )

    def create_client(self, name: str, typename: str) -> RclpyClient:
        """Client of ``pkg/srv/X``."""
        return RclpyClient(self, name, typename)

    def create_action_server(
        self,
        name: str,
        typename: str,
        execute: Callable[[Any], Any],
        accept: Callable[[Any], bool] | None = None,
    ) -> Any:
        """Serve ``pkg/action/X``: ``execute(goal) -> X_Result`` on its own executor thread."""
        from rclpy.action import ActionServer, CancelResponse, GoalResponse
        from rclpy.callback_groups import ReentrantCallbackGroup
        from rclpy.executors import MultiThreadedExecutor

        if not isinstance(self._executor, MultiThreadedExecutor):
            self._use_executor(MultiThreadedExecutor(num_threads=4))

        cls = interface_class(typename)

        def run(handle: Any) -> Any:
            with self._goals:
                self._running_goals += 1
            try:
                return finish(handle)
            finally:
                with self._goals:
                    self._running_goals -= 1
                    self._last_goal_end = time.monotonic()
                    self._goals.notify_all()

        def finish(handle: Any) -> Any:
            goal = RclpyServerGoal(handle, cls.Feedback)
            try:
                result = build(cls.Result, execute(goal) or {})
            except Exception:  # noqa: BLE001 - a failing goal must not take the node down
                self.node.get_logger().error(f"action {name}: execute raised; goal aborted")
                handle.abort()
                return cls.Result()
            if goal.final is GoalStatus.ABORTED:
                handle.abort()
            elif goal.final is GoalStatus.CANCELED or handle.is_cancel_requested:
                handle.canceled()
            else:
                handle.succeed()
            return result

        def on_goal(goal: Any) -> Any:
            ok = accept(goal) if accept else True
            return GoalResponse.ACCEPT if ok else GoalResponse.REJECT

        return ActionServer(
            self.node,
            cls,
            name,
            run,
            goal_callback=on_goal,
            cancel_callback=lambda _handle: CancelResponse.ACCEPT,
            callback_group=ReentrantCallbackGroup(),
        )

    def create_action_client(self, name: str, typename: str) -> RclpyActionClient:
        """Client of ``pkg/action/X``."""
        return RclpyActionClient(self, name, typename)

    def create_timer(self, period_s: float, callback: Callable[[], None]) -> Any:
        """Call ``callback`` every ``period_s`` seconds."""
        return self.node.create_timer(period_s, callback)

    def now_ns(self) -> int:
        """Return the node clock in ns (``/clock`` when ``use_sim_time`` is true)."""
        return int(self.node.get_clock().now().nanoseconds)

    def declare_parameter(
        self,
        name: str,
        default: Any,
        description: str = "",
        on_set: Callable[[Any], None] | None = None,
    ) -> Any:
        """Declare a parameter with the same override rules as the zenoh bus."""
        if name == "use_sim_time":
            return self._params.get(name)
        from rcl_interfaces.msg import ParameterDescriptor

        value = checked_parameter(name, default, self._overrides, self.fully_qualified_name)
        descriptor = ParameterDescriptor(
            description=description,
            read_only=on_set is None,
            additional_constraints="" if on_set else READ_ONLY,
        )
        self.node.declare_parameter(name, value, descriptor)
        # into the table only now: rclpy runs its set hook for the declaration too, and the
        # hook passes over names the table does not hold yet
        return self._params.declare(name, default, self._overrides, on_set)

    def _on_set_parameters(self, parameters: list[Any]) -> Any:
        """Check and apply a ``ros2 param set`` (rclpy's set hook): the table, then the node."""
        from rcl_interfaces.msg import SetParametersResult

        for parameter in parameters:
            # rclpy calls this for declarations too: those are already checked
            if parameter.name not in self._params or parameter.name == "use_sim_time":
                continue
            try:
                self._params.set(parameter.name, parameter.value)
            except ConfigError as err:
                return SetParametersResult(successful=False, reason=str(err))
        return SetParametersResult(successful=True)

    def get_parameter(self, name: str) -> Any:
        """Return the value of a declared parameter."""
        return self.node.get_parameter(name).value

    def set_parameter(self, name: str, value: Any) -> None:
        """Set a parameter through rclpy, as ``ros2 param set`` does; refusals raise."""
        from rclpy.parameter import Parameter

        if name not in self._params:
            raise ConfigError(f"parameter {name!r} is not declared on {self.fully_qualified_name}")
        (result,) = self.node.set_parameters([Parameter(name, value=value)])
        if not result.successful:
            raise ConfigError(result.reason)

    def count_publishers(self, topic: str) -> int:
        """Count the publishers of ``topic`` visible in the graph."""
        return int(self.node.count_publishers(self.resolve(topic)))

    def count_subscribers(self, topic: str) -> int:
        """Count the subscriptions of ``topic`` visible in the graph."""
        return int(self.node.count_subscribers(self.resolve(topic)))

    def node_names(self) -> list[str]:
        """List the fully qualified names of the visible nodes."""
        return sorted(
            f"{ns.rstrip('/')}/{n}" for n, ns in self.node.get_node_names_and_namespaces()
        )

    @property
    def closed(self) -> bool:
        """True once ``close`` ran."""
        return self._closed.is_set()

    def _drain_goals(self) -> None:
        """Let goals in flight return their result, and DDS deliver it, before the node goes."""
        with self._goals:
            if not self._goals.wait_for(lambda: self._running_goals == 0, DRAIN_S):
                self.log.warning(
                    f"{self._running_goals} action goal(s) still running at shutdown get no result"
                )
            linger = self._last_goal_end + LINGER_S - time.monotonic()
        if linger > 0:
            time.sleep(linger)

    def close(self) -> None:
        """Destroy the node; shut rclpy down when the last bus closes."""
        global _users  # noqa: PLW0603
        if self._closed.is_set():
            return
        self._stopping.set()
        if self.node.context.ok():
            self._drain_goals()
        self._closed.set()
        self._stop_spinning.set()
        if self._spinner is not None:
            self._spinner.join(timeout=5)
        self._executor.remove_node(self.node)
        self._executor.shutdown(timeout_sec=1)
        self.node.destroy_node()
        with _users_lock:
            _users -= 1
            if _users == 0:
                import rclpy

                rclpy.try_shutdown()

    def __enter__(self) -> RclpyBus:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
