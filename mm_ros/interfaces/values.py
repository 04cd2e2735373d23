"""Build messages from plain values (dicts, lists) and back: YAML/JSON at the edges, tests."""

from __future__ import annotations

from dataclasses import fields, is_dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from rosbags.interfaces import Nodetype

from mm_ros.core.errors import CdrError

if TYPE_CHECKING:
    from collections.abc import Mapping

    from mm_ros.interfaces.store import InterfaceStore

NUMPY_DTYPES = {
    "bool": np.bool_, "byte": np.uint8, "char": np.uint8, "int8": np.int8, "uint8": np.uint8,
    "int16": np.int16, "uint16": np.uint16, "int32": np.int32, "uint32": np.uint32,
    "int64": np.int64, "uint64": np.uint64, "float32": np.float32, "float64": np.float64,
}  # fmt: skip
_DEFAULTS: dict[str, Any] = {"bool": False, "string": "", "wstring": ""}
# Field defaults the .msg files declare (``float64 w 1``); rosbags' type descriptions drop them,
# and rclpy's constructors apply them: an omitted orientation must be the identity, not zeros.
FIELD_DEFAULTS: dict[str, dict[str, Any]] = {"geometry_msgs/msg/Quaternion": {"w": 1.0}}


def _default(desc: Any, store: InterfaceStore) -> Any:
    kind = desc[0]
    if kind == Nodetype.BASE:
        name = desc[1][0]
        return _DEFAULTS.get(name, 0.0 if name.startswith("float") else 0)
    if kind == Nodetype.NAME:
        return from_dict(store, desc[1], {})
    inner, count = desc[1]
    if kind == Nodetype.ARRAY:
        return _sequence(store, inner, [None] * count, count)
    return _sequence(store, inner, [], 0)


def _sequence(store: InterfaceStore, inner: Any, values: Any, count: int) -> Any:
    if inner[0] == Nodetype.BASE and inner[1][0] in NUMPY_DTYPES:
        dtype = NUMPY_DTYPES[inner[1][0]]
        if isinstance(values, bytes | bytearray | memoryview):  # raw bytes: a view, no copy
            return np.frombuffer(values, dtype=np.uint8).view(dtype)
        if count and all(v is None for v in values):
            return np.zeros(count, dtype=dtype)
        return np.asarray(values, dtype=dtype)
    out = []
    for value in values:
        if value is None:
            out.append(_default(inner, store))
        elif inner[0] == Nodetype.NAME and not is_dataclass(value):
            out.append(from_dict(store, inner[1], value))
        else:
            out.append(value)
    return out


def from_dict(store: InterfaceStore, typename: str, data: Mapping[str, Any]) -> Any:
    """Build a message of ``typename``; missing fields get ROS defaults (0, "", empty)."""
    full = store.resolve(typename)
    _, fielddefs = store.fielddefs(full)
    known = {name for name, _ in fielddefs}
    unknown = set(data) - known
    if unknown:
        msg = f"{full} has no field(s) {sorted(unknown)}; its fields are {sorted(known)}"
        raise CdrError(msg)
    kwargs = {}
    declared = FIELD_DEFAULTS.get(full, {})
    for name, desc in fielddefs:
        if name not in data:
            kwargs[name] = declared[name] if name in declared else _default(desc, store)
        elif is_dataclass(data[name]):  # already a message
            kwargs[name] = data[name]
        elif desc[0] == Nodetype.NAME:
            kwargs[name] = from_dict(store, desc[1], data[name])
        elif desc[0] in (Nodetype.ARRAY, Nodetype.SEQUENCE):
            count = desc[1][1] if desc[0] == Nodetype.ARRAY else 0
            values = data[name]  # numpy arrays pass through without a per-element copy
            if count and len(values) != count:
                msg = f"{full}.{name}: expected {count} values, found {len(values)}"
                raise CdrError(msg)
            kwargs[name] = _sequence(store, desc[1][0], values, count)
        else:
            kwargs[name] = data[name]
    return store.msg(full)(**kwargs)


def to_dict(message: Any) -> Any:
    """Return a message as plain dicts, lists and scalars (numpy arrays become lists)."""
    if is_dataclass(message):
        return {
            f.name: to_dict(getattr(message, f.name))
            for f in fields(message)
            if f.name != "__msgtype__" and not f.name[0].isupper()  # constants are upper case
        }
    if isinstance(message, np.ndarray):
        return message.tolist()
    if isinstance(message, (list, tuple)):
        return [to_dict(v) for v in message]
    if isinstance(message, np.generic):
        return message.item()
    return message
