"""ROS 2 names and the rmw_zenoh wire format (REFERENCE.md section 1), pure functions.

Names follow rcl: absolute ``/a/b``, relative ``a/b`` (prefixed by the namespace), private
``~/a`` (prefixed by namespace and node name). Keys, liveliness tokens, QoS chunks and the
33-byte attachment follow rmw_zenoh_cpp exactly; golden strings from its design.md are tests.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from enum import Enum
from typing import NamedTuple

from mm_ros.core.errors import ConfigError, MmRosError

HUMBLE_HASH = "TypeHashNotSupported"
LIVELINESS_PREFIX = "@ros2_lv"
GID_SIZE = 16
ATTACHMENT_SIZE = 33  # seq int64 + timestamp int64 + LEB128 length (0x10) + 16-byte GID
_ATTACHMENT = struct.Struct("<qqB16s")
_TOKEN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class BusNameError(MmRosError, ValueError):
    """A topic, service, node or namespace name breaks the ROS 2 naming rules."""


def validate_node_name(name: str) -> str:
    """Return ``name`` if it is a valid node name (one token, no slashes)."""
    if not _TOKEN.match(name):
        msg = f"node name {name!r}: expected letters, digits and '_' not starting with a digit"
        raise BusNameError(msg)
    return name


def validate_namespace(namespace: str) -> str:
    """Return the namespace made absolute (``''`` → ``'/'``), or raise naming the bad token."""
    ns = "/" + namespace.strip("/") if namespace not in ("", "/") else "/"
    if ns != "/":
        for token in ns[1:].split("/"):
            if not _TOKEN.match(token):
                msg = f"namespace {namespace!r}: token {token!r} is not a valid name token"
                raise BusNameError(msg)
    return ns


def resolve_name(name: str, namespace: str = "/", node: str = "") -> str:
    """Expand ``name`` to a fully qualified name as rcl does (``~`` needs ``node``)."""
    ns = validate_namespace(namespace)
    if not name:
        raise BusNameError("empty topic/service name")
    if name.startswith("~"):
        if not node:
            raise BusNameError(f"private name {name!r} needs a node name")
        base = f"{ns.rstrip('/')}/{node}"
        full = base + name[1:] if name != "~" else base
    elif name.startswith("/"):
        full = name
    else:
        full = f"{ns.rstrip('/')}/{name}"
    if full.endswith("/") and full != "/":
        raise BusNameError(f"name {name!r} must not end with '/'")
    for token in full[1:].split("/"):
        if not _TOKEN.match(token):
            msg = f"name {name!r}: token {token!r} is not valid (letters, digits, '_')"
            raise BusNameError(msg)
    return full


@dataclass(frozen=True)
class Remap:
    """One ``--ros-args -r from:=to`` rule, applied to fully qualified names."""

    source: str
    target: str

    def apply(self, full: str, namespace: str, node: str) -> str | None:
        """Return the remapped name when this rule matches ``full``, else None."""
        if resolve_name(self.source, namespace, node) == full:
            return resolve_name(self.target, namespace, node)
        return None


def remap_name(full: str, remaps: tuple[Remap, ...], namespace: str, node: str) -> str:
    """Apply the first matching remap rule (rcl semantics) to a fully qualified name."""
    for rule in remaps:
        out = rule.apply(full, namespace, node)
        if out is not None:
            return out
    return full


def dds_type_name(typename: str) -> str:
    """``pkg/msg/Name`` → ``pkg::msg::dds_::Name_`` (the type segment of keys and tokens)."""
    pkg, kind, name = typename.split("/")
    return f"{pkg}::{kind}::dds_::{name}_"


def data_key(domain: int, full_name: str, typename: str, type_hash: str) -> str:
    """Key expression of a topic or service: ``<domain>/<name>/<dds type>/<hash>``."""
    return f"{domain}/{full_name.strip('/')}/{dds_type_name(typename)}/{type_hash}"


def mangle(text: str) -> str:
    """Replace every ``/`` by ``%`` as liveliness tokens do (empty → ``%``)."""
    return text.replace("/", "%") if text else "%"


class Reliability(Enum):
    """rmw reliability values as they appear in the QoS chunk."""

    RELIABLE = 1
    BEST_EFFORT = 2


class Durability(Enum):
    """rmw durability values as they appear in the QoS chunk."""

    TRANSIENT_LOCAL = 1
    VOLATILE = 2


class History(Enum):
    """rmw history values as they appear in the QoS chunk."""

    KEEP_LAST = 1
    KEEP_ALL = 2


@dataclass(frozen=True)
class QoS:
    """The QoS of an endpoint; named presets below (STYLE.md: QoS is named)."""

    reliability: Reliability = Reliability.RELIABLE
    durability: Durability = Durability.VOLATILE
    history: History = History.KEEP_LAST
    depth: int = 10

    def __post_init__(self) -> None:
        if self.depth < 0:
            raise ConfigError(f"QoS depth must be >= 0, found {self.depth}")

    def token(self) -> str:
        """Return the liveliness QoS chunk; components equal to rmw_zenoh's defaults stay empty."""
        rel = "" if self.reliability is Reliability.RELIABLE else str(self.reliability.value)
        dur = "" if self.durability is Durability.VOLATILE else str(self.durability.value)
        hist = "" if self.history is History.KEEP_LAST else str(self.history.value)
        depth = "" if self.depth == 42 else str(self.depth)  # noqa: PLR2004 - rmw_zenoh's default
        return f"{rel}:{dur}:{hist},{depth}:,:,:,,"

    @classmethod
    def from_token(cls, text: str) -> QoS:
        """Parse a liveliness QoS chunk (durations are ignored: we only use infinite ones)."""
        try:
            rel, dur, rest = text.split(":", 2)
            hist, depth = rest.split(":", 1)[0].split(",")
            return cls(
                Reliability(int(rel)) if rel else Reliability.RELIABLE,
                Durability(int(dur)) if dur else Durability.VOLATILE,
                History(int(hist)) if hist else History.KEEP_LAST,
                int(depth) if depth else 42,
            )
        except ValueError as err:
            raise BusNameError(f"QoS chunk {text!r} does not parse: {err}") from err


SENSOR_DATA = QoS(Reliability.BEST_EFFORT, Durability.VOLATILE, History.KEEP_LAST, 5)
# Streams whose every sample belongs to a window (IMU at 200 Hz, 20 ms audio chunks): best
# effort like SENSOR_DATA, but a backlog of 0.5 s of IMU so a callback thread busy for a moment
# (model loading, a burst) drops nothing; frames keep SENSOR_DATA (only the newest matters).
SENSOR_STREAM = QoS(Reliability.BEST_EFFORT, Durability.VOLATILE, History.KEEP_LAST, 100)
RELIABLE = QoS(Reliability.RELIABLE, Durability.VOLATILE, History.KEEP_LAST, 10)
LATCHED = QoS(Reliability.RELIABLE, Durability.TRANSIENT_LOCAL, History.KEEP_LAST, 1)
SERVICES = QoS(Reliability.RELIABLE, Durability.VOLATILE, History.KEEP_LAST, 10)
PRESETS = {
    "sensor_data": SENSOR_DATA,
    "sensor_stream": SENSOR_STREAM,
    "reliable": RELIABLE,
    "latched": LATCHED,
    "services": SERVICES,
}


class EntityKind(Enum):
    """Liveliness token kinds."""

    NODE = "NN"
    PUBLISHER = "MP"
    SUBSCRIPTION = "MS"
    SERVICE = "SS"
    CLIENT = "SC"


def node_token(
    domain: int, zid: str, node_id: int, *, enclave: str, namespace: str, node: str
) -> str:
    """``@ros2_lv/<domain>/<zid>/<nid>/<nid>/NN/<enclave>/<namespace>/<node>``."""
    return (
        f"{LIVELINESS_PREFIX}/{domain}/{zid}/{node_id}/{node_id}/NN/"
        f"{mangle(enclave)}/{mangle(namespace if namespace != '/' else '')}/{node}"
    )


def entity_token(
    domain: int,
    zid: str,
    node_id: int,
    entity_id: int,
    kind: EntityKind,
    *,
    enclave: str,
    namespace: str,
    node: str,
    full_name: str,
    typename: str,
    type_hash: str,
    qos: QoS,
) -> str:
    """Liveliness token of a publisher, subscription, service server or client."""
    ns = mangle(namespace if namespace != "/" else "")
    return (
        f"{LIVELINESS_PREFIX}/{domain}/{zid}/{node_id}/{entity_id}/{kind.value}/"
        f"{mangle(enclave)}/{ns}/{node}/{mangle(full_name)}/{dds_type_name(typename)}/"
        f"{type_hash}/{qos.token()}"
    )


class GraphEntity(NamedTuple):
    """One entity parsed from a liveliness token."""

    zid: str
    node_id: int
    entity_id: int
    kind: EntityKind
    namespace: str  # "/" or "/robot1"
    node: str
    name: str  # fully qualified topic/service name; "" for nodes
    typename: str  # pkg/msg/Name; "" for nodes
    type_hash: str
    qos: QoS | None


def _unmangle(text: str) -> str:
    return text.replace("%", "/")


def parse_token(key: str) -> GraphEntity:
    """Parse a liveliness token back into its parts (inverse of the builders above)."""
    parts = key.split("/")
    if len(parts) < 9 or parts[0] != LIVELINESS_PREFIX:  # noqa: PLR2004 - node token length
        raise BusNameError(f"not an rmw_zenoh liveliness token: {key!r}")
    try:
        kind = EntityKind(parts[5])
        node_id, entity_id = int(parts[3]), int(parts[4])
    except ValueError as err:
        raise BusNameError(f"liveliness token {key!r}: {err}") from err
    namespace = _unmangle(parts[7]) if parts[7] != "%" else "/"
    if kind is EntityKind.NODE:
        return GraphEntity(
            parts[2], node_id, entity_id, kind, namespace, parts[8], "", "", "", None
        )
    if len(parts) < 13:  # noqa: PLR2004 - entity token length
        raise BusNameError(f"liveliness token {key!r} has {len(parts)} chunks, expected 13")
    dds = re.fullmatch(r"(\w+)::(msg|srv|action)::dds_::(\w+?)_", parts[10])
    typename = "/".join(dds.groups()) if dds else parts[10]
    return GraphEntity(
        parts[2],
        node_id,
        entity_id,
        kind,
        namespace,
        parts[8],
        _unmangle(parts[9]),
        typename,
        parts[11],
        QoS.from_token(parts[12]),
    )


def pack_attachment(sequence: int, timestamp_ns: int, gid: bytes) -> bytes:
    """Return the 33-byte rmw_zenoh attachment: seq, source timestamp (ns), 0x10, GID."""
    if len(gid) != GID_SIZE:
        raise BusNameError(f"GID must be {GID_SIZE} bytes, found {len(gid)}")
    return _ATTACHMENT.pack(sequence, timestamp_ns, GID_SIZE, gid)


class Attachment(NamedTuple):
    """A decoded rmw_zenoh attachment."""

    sequence: int
    timestamp_ns: int
    gid: bytes


def unpack_attachment(data: bytes | None) -> Attachment:
    """Decode an attachment; raise naming the expected and found size or marker."""
    if data is None:
        raise BusNameError(f"sample has no attachment, expected {ATTACHMENT_SIZE} bytes")
    if len(data) != ATTACHMENT_SIZE:
        msg = f"attachment is {len(data)} bytes, expected {ATTACHMENT_SIZE}"
        raise BusNameError(msg)
    sequence, stamp, size, gid = _ATTACHMENT.unpack(data)
    if size != GID_SIZE:
        raise BusNameError(f"attachment GID length byte is {size:#x}, expected 0x10")
    return Attachment(sequence, stamp, gid)
