"""The zenoh implementation of ``Bus``: a ROS 2 node that speaks rmw_zenoh's wire format.

One Zenoh session per node (rmw_zenoh: one per context). Node id 0, entity ids counting from 1
in declaration order; every entity has a liveliness token, publishers and clients a stable GID
(the first 16 bytes of sha256(zid, entity id)). See REFERENCE.md section 1.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import logging
import queue
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from mm_ros.bus import naming
from mm_ros.bus.naming import (
    LATCHED,
    RELIABLE,
    SERVICES,
    EntityKind,
    QoS,
    data_key,
    entity_token,
    node_token,
)
from mm_ros.bus.parameters import ParameterTable
from mm_ros.bus.protocol import BusConfig, BusError, BusTimeoutError
from mm_ros.bus.ros_args import (
    RosArgs,
    parameter_overrides,
    parse_ros_args,
)
from mm_ros.bus.signals import SpinUntilStopped
from mm_ros.core.drops import DropLog
from mm_ros.core.errors import ConfigError, InterfaceError
from mm_ros.core.stopping import StopFlag
from mm_ros.interfaces import get_store
from mm_ros.interfaces.values import from_dict

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    import zenoh

    from mm_ros.bus.zenoh_actions import ZenohActionClient, ZenohActionServer

GRAPH_SETTLE_S = 2.0  # a fresh session's first graph queries may not reach every peer yet
# A query's replies are awaited at most this long past its own timeout: after the router was
# killed and restarted a few times, iterating a get's default channel was seen to block for
# minutes (a graph query in wait_until_active never returned); the callback + deadline cannot.
REPLY_GRACE_S = 1.0
_END = object()  # the get finished: no more replies


def bounded_replies(get: Callable[[Any], None], timeout_s: float) -> Iterator[Any]:
    """Yield the replies of ``get(handler)``, ending at its last one or ``timeout_s`` + grace."""
    import zenoh

    replies: queue.SimpleQueue[Any] = queue.SimpleQueue()
    get(zenoh.handlers.Callback(replies.put, lambda: replies.put(_END)))
    deadline = time.monotonic() + timeout_s + REPLY_GRACE_S
    while (left := deadline - time.monotonic()) > 0:
        try:
            reply = replies.get(timeout=left)
        except queue.Empty:
            return
        if reply is _END:
            return
        yield reply


LOG_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "error": logging.ERROR,
    "fatal": logging.CRITICAL,
}


class _Executor:
    """Runs callbacks one at a time on one thread, in submission order (blocks nobody).

    ``stop`` lets the callback in progress finish and drops those still queued, so nothing
    runs against a node that is closing.
    """

    def __init__(self, name: str, log: logging.Logger) -> None:
        self._queue: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._log = log
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"executor{name}", daemon=True)
        self._thread.start()

    def submit(self, fn: Callable[[], None]) -> None:
        self._queue.put(fn)

    def _run(self) -> None:
        while (fn := self._queue.get()) is not None:
            if self._stopping.is_set():
                continue  # queued before the stop: dropped
            try:
                fn()
            except Exception:  # noqa: BLE001 - a failing callback must not stop the node
                self._log.exception("callback raised")

    def stop(self) -> None:
        self._stopping.set()
        self._queue.put(None)
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout=5)


@dataclass
class Endpoint:
    """What every entity has: names, key, token, GID."""

    name: str  # fully qualified
    typename: str  # the type in the key (the service/action helper type for services)
    key: str
    entity_id: int
    gid: bytes
    token: Any = None


@dataclass
class SubscriptionStats:
    """Counters a subscription keeps for diagnostics."""

    received: int = 0
    dropped: int = 0  # drop-oldest when the callback falls behind by more than the depth
    rejected: Counter[str] = field(default_factory=Counter)  # reason -> count


class ZenohPublisher:
    """Publishes CDR with the 33-byte attachment; latched topics keep a cache for late joiners."""

    def __init__(self, bus: ZenohBus, endpoint: Endpoint, qos: QoS) -> None:
        import zenoh
        import zenoh.ext

        self.topic = endpoint.name
        self.typename = endpoint.typename
        self._bus = bus
        self._endpoint = endpoint
        self._sequence = itertools.count(1)
        self._lock = threading.Lock()
        congestion = (
            zenoh.CongestionControl.BLOCK
            if qos.history is naming.History.KEEP_ALL
            else zenoh.CongestionControl.DROP
        )
        if qos.durability is naming.Durability.TRANSIENT_LOCAL:
            self._pub: Any = zenoh.ext.declare_advanced_publisher(
                bus.session,
                endpoint.key,
                congestion_control=congestion,
                cache=zenoh.ext.CacheConfig(max(qos.depth, 1)),
                publisher_detection=True,
            )
        else:
            self._pub = bus.session.declare_publisher(endpoint.key, congestion_control=congestion)

    def publish(self, message: Any) -> None:
        """Serialize and put one message (a message object or a dict of its fields)."""
        if isinstance(message, dict):
            message = from_dict(self._bus.store, self.typename, message)
        self.publish_raw(self._bus.store.serialize(message, self.typename))

    def publish_raw(self, data: bytes | bytearray) -> None:
        """Put CDR bytes as they are (bag replay); sequence and timestamp are fresh."""
        if self._bus.closed:
            raise BusError(f"publisher on {self.topic}: the node was shut down")
        with self._lock:  # sequence numbers leave in order
            attachment = naming.pack_attachment(
                next(self._sequence), time.time_ns(), self._endpoint.gid
            )
            try:
                self._pub.put(data, attachment=attachment)
            except Exception as error:  # zenoh.ZError: undeclared by a close that raced us
                if not self._bus.closed:
                    raise
                raise BusError(f"publisher on {self.topic}: the node was shut down") from error

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._pub.undeclare()


class ZenohSubscription:
    """Decodes in Zenoh's thread, keeps a drop-oldest backlog of ``depth``, calls back in order."""

    def __init__(
        self,
        bus: ZenohBus,
        endpoint: Endpoint,
        qos: QoS,
        callback: Callable[[Any], None],
        *,
        raw: bool = False,
    ) -> None:
        import zenoh.ext

        self.topic = endpoint.name
        self.typename = endpoint.typename
        self.stats = SubscriptionStats()
        self._bus = bus
        self._callback = callback
        self._raw = raw
        self._backlog: deque[Any] = deque()
        self._depth = max(qos.depth, 1) if qos.history is naming.History.KEEP_LAST else 0
        self._lock = threading.Lock()
        if qos.durability is naming.Durability.TRANSIENT_LOCAL:
            self._sub: Any = zenoh.ext.declare_advanced_subscriber(
                bus.session,
                endpoint.key,
                self._on_sample,
                history=zenoh.ext.HistoryConfig(
                    detect_late_publishers=True, max_samples=max(qos.depth, 1)
                ),
            )
        else:
            self._sub = bus.session.declare_subscriber(endpoint.key, self._on_sample)

    def _reject(self, reason: str, key: str, detail: str) -> None:
        self.stats.rejected[reason] += 1
        self._bus.drops.drop(self.topic, reason, f"{detail} (key {key})")

    def _on_sample(self, sample: zenoh.Sample) -> None:
        key = str(sample.key_expr)
        raw_attachment = sample.attachment
        try:
            attachment = naming.unpack_attachment(
                raw_attachment.to_bytes() if raw_attachment is not None else None
            )
        except naming.BusNameError as err:
            self._reject("attachment", key, str(err))
            return
        payload = sample.payload.to_bytes()
        if len(payload) > self._bus.max_payload_bytes:
            self._reject("oversize", key, f"{len(payload)} bytes > {self._bus.max_payload_bytes}")
            return
        if self._raw:
            item: Any = (key, payload, attachment)
        else:
            try:
                item = self._bus.store.deserialize(payload, self.typename)
            except InterfaceError as err:
                self._reject("cdr", key, str(err))
                return
        with self._lock:
            self.stats.received += 1
            if self._depth and len(self._backlog) >= self._depth:
                self._backlog.popleft()
                self.stats.dropped += 1
            self._backlog.append(item)
        self._bus.executor.submit(self._deliver)

    def _deliver(self) -> None:
        with self._lock:
            if not self._backlog:
                return  # dropped while waiting
            item = self._backlog.popleft()
        self._callback(item)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._sub.undeclare()


class ZenohService:
    """A queryable answering ``pkg/srv/X`` requests on the executor thread.

    With ``deferred=True`` the handler is ``handler(request, respond)`` and may call
    ``respond(response)`` later from any thread (an action's get_result waits for the goal).
    """

    def __init__(
        self,
        bus: ZenohBus,
        endpoint: Endpoint,
        handler: Callable[..., Any],
        *,
        deferred: bool = False,
    ) -> None:
        self._bus = bus
        self._endpoint = endpoint
        self._handler = handler
        self._deferred = deferred
        self.rejected: Counter[str] = Counter()
        self._queryable = bus.session.declare_queryable(endpoint.key, self._on_query, complete=True)

    def _on_query(self, query: zenoh.Query) -> None:
        try:
            attachment = naming.unpack_attachment(
                query.attachment.to_bytes() if query.attachment is not None else None
            )
            payload = query.payload.to_bytes() if query.payload is not None else b""
            request = self._bus.store.deserialize(payload, f"{self._endpoint.typename}_Request")
        except (naming.BusNameError, InterfaceError) as err:
            self.rejected[type(err).__name__] += 1
            self._bus.drops.drop(self._endpoint.name, f"request {type(err).__name__}", str(err))
            return
        self._bus.executor.submit(lambda: self._answer(query, request, attachment))

    def _answer(self, query: zenoh.Query, request: Any, attachment: naming.Attachment) -> None:
        if self._deferred:
            self._handler(request, lambda response: self.reply(query, response, attachment))
        else:
            self.reply(query, self._handler(request), attachment)

    def reply(self, query: zenoh.Query, response: Any, attachment: naming.Attachment) -> None:
        """Reply with the CDR response; the attachment echoes seq and client GID (rmw_zenoh)."""
        typename = f"{self._endpoint.typename}_Response"
        if isinstance(response, dict):
            response = from_dict(self._bus.store, typename, response)
        data = self._bus.store.serialize(response, typename)
        out = naming.pack_attachment(attachment.sequence, time.time_ns(), attachment.gid)
        query.reply(self._endpoint.key, data, attachment=out)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._queryable.undeclare()  # type: ignore[no-untyped-call]


class ZenohClient:
    """Calls ``pkg/srv/X`` with a ``get`` (target ALL_COMPLETE, no consolidation)."""

    def __init__(self, bus: ZenohBus, endpoint: Endpoint) -> None:
        self._bus = bus
        self._endpoint = endpoint
        self._sequence = itertools.count(1)

    def call(self, request: Any, timeout_s: float = 5.0) -> Any:
        """Return the response; ``BusTimeoutError`` when no server answers in time."""
        import zenoh

        typename = self._endpoint.typename
        if isinstance(request, dict):
            request = from_dict(self._bus.store, f"{typename}_Request", request)
        data = self._bus.store.serialize(request, f"{typename}_Request")
        attachment = naming.pack_attachment(
            next(self._sequence), time.time_ns(), self._endpoint.gid
        )
        started = time.monotonic()
        replies = bounded_replies(
            lambda handler: self._bus.session.get(
                self._endpoint.key,
                handler,
                target=zenoh.QueryTarget.ALL_COMPLETE,
                consolidation=zenoh.ConsolidationMode.NONE,
                payload=data,
                attachment=attachment,
                timeout=timeout_s,
            ),
            timeout_s,
        )
        for reply in replies:
            if reply.ok is not None:
                payload = reply.ok.payload.to_bytes()
                return self._bus.store.deserialize(payload, f"{typename}_Response")
            self._bus.log.warning(
                "error reply from %s: %s",
                self._endpoint.name,
                reply.err.payload.to_string() if reply.err else "?",
            )
        elapsed = time.monotonic() - started
        if elapsed < timeout_s - REPLY_GRACE_S:  # the query ended early: nobody will answer
            msg = (
                f"service {self._endpoint.name} ({typename}) ended after {elapsed:.2f} s "
                "without an answer: no server reachable, or it went away while answering "
                "(`mm-ros node list`)"
            )
        else:
            msg = (
                f"service {self._endpoint.name} ({typename}) gave no answer within "
                f"{timeout_s:g} s (is a server running? `mm-ros node list`)"
            )
        raise BusTimeoutError(msg)

    def wait_for_service(self, timeout_s: float = 5.0) -> bool:
        """Return True once a server's liveliness token for this service is visible."""
        deadline = time.monotonic() + timeout_s
        while True:
            if any(
                e.kind is EntityKind.SERVICE and e.name == self._endpoint.name
                for e in self._bus.graph(timeout_s=min(1.0, timeout_s))
            ):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)


class ZenohTimer:
    """Submits the callback to the executor every period, never piling up runs."""

    def __init__(self, bus: ZenohBus, period_s: float, callback: Callable[[], None]) -> None:
        if period_s <= 0:
            raise ConfigError(f"timer period must be > 0 s, found {period_s}")
        self._stop = threading.Event()
        self._pending = threading.Event()

        def run_once() -> None:
            try:
                callback()
            finally:
                self._pending.clear()

        def loop() -> None:
            next_at = time.monotonic() + period_s
            while not self._stop.wait(max(0.0, next_at - time.monotonic())):
                next_at += period_s
                if not self._pending.is_set():
                    self._pending.set()
                    bus.executor.submit(run_once)

        threading.Thread(target=loop, name="timer", daemon=True).start()

    def cancel(self) -> None:
        """Stop calling back."""
        self._stop.set()


class SimTimer:
    """A timer on ``/clock`` time (``use_sim_time``), stepped by each clock message.

    As rcl's ROS-time timers: the first call is one period after the clock at creation (0 before
    any ``/clock``); a jump forward calls back once and skips the missed periods; a jump
    backwards restarts the period. Runs on the executor thread, inside the ``/clock`` callback.
    """

    def __init__(self, bus: ZenohBus, period_s: float, callback: Callable[[], None]) -> None:
        if period_s <= 0:
            raise ConfigError(f"timer period must be > 0 s, found {period_s}")
        self._bus = bus
        self._period_ns = max(1, round(period_s * 1e9))
        self._callback = callback
        self._next_ns = bus.now_ns() + self._period_ns
        self._cancelled = False

    def on_clock(self, now_ns: int) -> None:
        """Call back when ``now_ns`` reached the next period."""
        if self._cancelled:
            return
        if now_ns < self._next_ns - self._period_ns:  # clock went backwards (replay looped)
            self._next_ns = now_ns + self._period_ns
            return
        if now_ns < self._next_ns:
            return
        missed = (now_ns - self._next_ns) // self._period_ns
        self._next_ns += (missed + 1) * self._period_ns
        try:
            self._callback()
        except Exception:  # one failing timer must not stop the others
            self._bus.log.exception("timer callback raised")

    def cancel(self) -> None:
        """Stop calling back."""
        self._cancelled = True


class ZenohBus(SpinUntilStopped):
    """One ROS 2 node on Zenoh (see the module docstring and ``mm_ros.bus.protocol``)."""

    max_payload_bytes = 256 * 1024 * 1024  # a 4K rgba frame is 33 MB; larger is corrupt input

    def __init__(
        self,
        node_name: str,
        *,
        namespace: str = "/",
        args: RosArgs | list[str] | None = None,
        config: BusConfig | None = None,
        enclave: str = "/",
    ) -> None:
        from mm_ros.bus.zenoh_session import config_file_argument, open_session

        ros = args if isinstance(args, RosArgs) else parse_ros_args(list(args or []))
        self.ros_args = ros
        self.node_name = naming.validate_node_name(ros.node_name or node_name)
        self.namespace = naming.validate_namespace(ros.namespace or namespace)
        self.enclave = enclave
        self.config = config or BusConfig.from_env()
        given = config_file_argument(ros.rest)  # `NODE --zenoh-config FILE --ros-args ...`
        if given is not None:
            self.config = replace(self.config, zenoh_config=given)
        self.log = logging.getLogger("mm_ros" + self.fully_qualified_name.replace("/", "."))
        self.store = get_store(self.config.distro, self.config.audio_layout)
        self.session = open_session(self.config)
        self.log.setLevel(LOG_LEVELS[ros.log_level])  # put back by close
        self.drops = DropLog(self.log.warning)
        self._opened_at = time.monotonic()
        self.zid = str(self.session.zid())
        self._ids = itertools.count()
        self._node_id = next(self._ids)
        self._closed = threading.Event()
        self._stopping = StopFlag()  # spin returns once set (signal handlers set it)
        self._entities: list[Any] = []
        self._tokens: list[Any] = []
        self.executor = _Executor(self.fully_qualified_name, self.log)
        self._declare_token(
            node_token(
                self.config.domain,
                self.zid,
                self._node_id,
                enclave=self.enclave,
                namespace=self.namespace,
                node=self.node_name,
            )
        )
        self._overrides = parameter_overrides(ros, self.fully_qualified_name)
        self._params = ParameterTable(self.fully_qualified_name)
        self._sim_time_ns: int | None = None
        self._sim_timers: list[SimTimer] = []
        if self.declare_parameter("use_sim_time", False, "take time from /clock"):
            self._sim_time_ns = 0
            self.create_subscription(
                "/clock", "rosgraph_msgs/msg/Clock", self._on_clock, QoS(depth=1)
            )

    def set_audio_layout(self, layout: str) -> None:
        """Speak this ``audio_common_msgs`` layout (they share a name; a node uses one)."""
        if layout != self.config.audio_layout:
            self.store = get_store(self.config.distro, layout)
            self.config = BusConfig(**{**self.config.__dict__, "audio_layout": layout})

    # -- identity ----------------------------------------------------------------------

    @property
    def fully_qualified_name(self) -> str:
        """Return ``/namespace/node_name``."""
        return f"{self.namespace.rstrip('/')}/{self.node_name}"

    def resolve(self, name: str) -> str:
        """Fully qualified name of a topic/service after ``--ros-args -r`` remaps."""
        full = naming.resolve_name(name, self.namespace, self.node_name)
        return naming.remap_name(full, self.ros_args.remaps, self.namespace, self.node_name)

    def msg(self, typename: str) -> Callable[..., Any]:
        """Return a factory of ``typename`` messages; missing fields get ROS defaults."""
        full = self.store.resolve(typename)

        def make(**fields: Any) -> Any:
            return from_dict(self.store, full, fields)

        make.__name__ = full.rsplit("/", 1)[-1]
        return make

    # -- entities ----------------------------------------------------------------------

    def _declare_token(self, key: str) -> None:
        self._tokens.append(self.session.liveliness().declare_token(key))

    def endpoint(
        self, name: str, typename: str, kind: EntityKind, qos: QoS, *, resolved: bool = False
    ) -> Endpoint:
        """Allocate an entity id, build its key and declare its liveliness token."""
        full = name if resolved else self.resolve(name)
        typename = self.store.resolve(typename)
        entity_id = next(self._ids)
        type_hash = self.store.hash(typename)
        key = data_key(self.config.domain, full, typename, type_hash)
        gid = hashlib.sha256(f"{self.zid}/{entity_id}".encode()).digest()[: naming.GID_SIZE]
        endpoint = Endpoint(full, typename, key, entity_id, gid)
        self._declare_token(
            entity_token(
                self.config.domain,
                self.zid,
                self._node_id,
                entity_id,
                kind,
                enclave=self.enclave,
                namespace=self.namespace,
                node=self.node_name,
                full_name=full,
                typename=typename,
                type_hash=type_hash,
                qos=qos,
            )
        )
        return endpoint

    def create_publisher(self, topic: str, typename: str, qos: QoS = RELIABLE) -> ZenohPublisher:
        """Advertise a topic (transient-local QoS keeps a cache for late joiners)."""
        pub = ZenohPublisher(self, self.endpoint(topic, typename, EntityKind.PUBLISHER, qos), qos)
        self._entities.append(pub)
        return pub

    def create_subscription(
        self,
        topic: str,
        typename: str,
        callback: Callable[[Any], None],
        qos: QoS = RELIABLE,
        *,
        raw: bool = False,
    ) -> ZenohSubscription:
        """Subscribe; ``callback(message)`` runs on the executor thread.

        ``raw=True`` delivers ``(key, cdr_bytes, attachment)`` instead (bag recording).
        """
        endpoint = self.endpoint(topic, typename, EntityKind.SUBSCRIPTION, qos)
        sub = ZenohSubscription(self, endpoint, qos, callback, raw=raw)
        self._entities.append(sub)
        return sub

    def create_service(
        self, name: str, typename: str, handler: Callable[[Any], Any]
    ) -> ZenohService:
        """Serve ``pkg/srv/X``: ``handler(X_Request) -> X_Response`` on the executor thread."""
        service = ZenohService(
            self, self.endpoint(name, typename, EntityKind.SERVICE, SERVICES), handler
        )
        self._entities.append(service)
        return service

    def create_client(self, name: str, typename: str) -> ZenohClient:
        """Client of ``pkg/srv/X``."""
        return ZenohClient(self, self.endpoint(name, typename, EntityKind.CLIENT, SERVICES))

    def create_action_server(
        self,
        name: str,
        typename: str,
        execute: Callable[[Any], Any],
        accept: Callable[[Any], bool] | None = None,
    ) -> ZenohActionServer:
        """Serve ``pkg/action/X``; ``execute(goal) -> X_Result`` runs on a thread per goal."""
        from mm_ros.bus.zenoh_actions import ZenohActionServer

        server = ZenohActionServer(
            self, self.resolve(name), self.store.resolve(typename), execute, accept
        )
        self._entities.append(server)
        return server

    def create_action_client(self, name: str, typename: str) -> ZenohActionClient:
        """Client of ``pkg/action/X``."""
        from mm_ros.bus.zenoh_actions import ZenohActionClient

        return ZenohActionClient(self, self.resolve(name), self.store.resolve(typename))

    def create_timer(self, period_s: float, callback: Callable[[], None]) -> ZenohTimer | SimTimer:
        """Call ``callback`` every ``period_s`` s of the node's clock, on the executor thread.

        Wall time; with ``use_sim_time``, ``/clock`` time (as rclpy's timers on ROS time).
        """
        if self._sim_time_ns is not None:
            sim_timer = SimTimer(self, period_s, callback)
            self._sim_timers.append(sim_timer)
            return sim_timer
        timer = ZenohTimer(self, period_s, callback)
        self._entities.append(timer)
        return timer

    # -- clock and parameters -----------------------------------------------------------

    def _on_clock(self, message: Any) -> None:
        self._sim_time_ns = message.clock.sec * 1_000_000_000 + message.clock.nanosec
        for timer in self._sim_timers:
            timer.on_clock(self._sim_time_ns)

    def now_ns(self) -> int:
        """Wall time in ns, or the latest ``/clock`` when ``use_sim_time`` is true."""
        return self._sim_time_ns if self._sim_time_ns is not None else time.time_ns()

    def declare_parameter(
        self,
        name: str,
        default: Any,
        description: str = "",
        on_set: Callable[[Any], None] | None = None,
    ) -> Any:
        """Declare a parameter; an override of another type than the default is an error."""
        value = self._params.declare(name, default, self._overrides, on_set)
        self.log.debug("parameter %s = %r %s", name, value, description)
        return value

    def get_parameter(self, name: str) -> Any:
        """Return the value of a declared parameter."""
        return self._params.get(name)

    def set_parameter(self, name: str, value: Any) -> None:
        """Set a parameter that may change while the node runs (``on_set`` applies it)."""
        self._params.set(name, value)

    @property
    def undeclared_overrides(self) -> list[str]:
        """Overrides given on the command line that no declared parameter used."""
        return sorted(set(self._overrides) - set(self._params.names()))

    # -- graph -------------------------------------------------------------------------

    def count_publishers(self, topic: str) -> int:
        """Count the publishers of ``topic`` (after remapping) visible in the graph."""
        full = self.resolve(topic)
        return sum(e.kind is EntityKind.PUBLISHER and e.name == full for e in self.graph(0.5))

    def count_subscribers(self, topic: str) -> int:
        """Count the subscriptions of ``topic`` (after remapping) visible in the graph."""
        full = self.resolve(topic)
        return sum(e.kind is EntityKind.SUBSCRIPTION and e.name == full for e in self.graph(0.5))

    def node_names(self) -> list[str]:
        """List the fully qualified names of every node visible in the graph."""
        return sorted(
            {
                f"{e.namespace.rstrip('/')}/{e.node}"
                for e in self.graph()
                if e.kind is EntityKind.NODE
            }
        )

    def graph(self, timeout_s: float = 3.0) -> list[naming.GraphEntity]:
        """Every ROS 2 entity visible in this domain, from the liveliness tokens.

        The query ends when the router has answered (milliseconds); ``timeout_s`` only bounds
        a router too busy to answer, which would otherwise cut the list short.

        Right after the session opens, the router may not have answered for every peer yet: while
        the session is younger than ``GRAPH_SETTLE_S`` the query is repeated until two answers in
        a row agree and hold more than our own entities, and their union is returned.
        """
        seen: dict[str, naming.GraphEntity] = {}
        while True:
            answer = self._graph_once(timeout_s)
            young = time.monotonic() - self._opened_at < GRAPH_SETTLE_S
            foreign = any(e.zid != self.zid for e in answer.values())
            settled = foreign and answer.keys() == seen.keys()
            seen.update(answer)
            if not young or settled:
                return list(seen.values())
            time.sleep(0.05)

    def _graph_once(self, timeout_s: float) -> dict[str, naming.GraphEntity]:
        out: dict[str, naming.GraphEntity] = {}
        pattern = f"@ros2_lv/{self.config.domain}/**"
        for reply in bounded_replies(
            lambda handler: self.session.liveliness().get(pattern, handler, timeout=timeout_s),
            timeout_s,
        ):
            if reply.ok is None:
                continue
            key = str(reply.ok.key_expr)
            with contextlib.suppress(naming.BusNameError):
                out[key] = naming.parse_token(key)
        return out

    # -- life --------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """True once ``close`` ran."""
        return self._closed.is_set()

    def close(self) -> None:
        """Undeclare everything and close the session (idempotent)."""
        if getattr(self, "_finished", False):
            return
        self._finished = True
        self._stopping.set()
        for entity in self._entities:  # action servers let goals in flight send their result
            if hasattr(entity, "drain"):
                entity.drain()
        self.executor.stop()  # the callback in progress ends; none starts after it
        self._closed.set()
        for entity in reversed(self._entities):
            with contextlib.suppress(Exception):
                entity.close() if hasattr(entity, "close") else entity.cancel()
        for token in self._tokens:
            with contextlib.suppress(Exception):
                token.undeclare()
        with contextlib.suppress(Exception):
            self.session.close()  # type: ignore[no-untyped-call]
        self.log.setLevel(logging.NOTSET)  # --log-level was this node's: the logger outlives it

    def __enter__(self) -> ZenohBus:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def wait_until(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    """Poll ``predicate`` until true; raise ``BusTimeoutError`` naming ``what``."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() >= deadline:
            raise BusTimeoutError(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(0.01)


__all__ = ["LATCHED", "BusError", "ZenohBus", "wait_until"]
