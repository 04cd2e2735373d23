"""RIHS01 type hashes (REP 2011), computed as rosidl_generator_type_description does.

Differences from ``rosbags.Typestore.hash_rihs01`` (0.11): ``char`` is ``uint8`` (type id 3)
because rosidl converts ``.msg`` ``char`` to ``uint8`` before hashing; ``wchar``/``wstring``
and bounded wide strings are supported.
"""

from __future__ import annotations

import json
from hashlib import sha256
from typing import TYPE_CHECKING, Any

from rosbags.interfaces import Nodetype

if TYPE_CHECKING:
    from collections.abc import Mapping

    from rosbags.interfaces.typing import FieldDesc, Typesdict

HUMBLE_PLACEHOLDER = "TypeHashNotSupported"  # what Humble puts where a type hash goes

_TYPE_IDS = {
    "int8": 2, "uint8": 3, "int16": 4, "uint16": 5, "int32": 6, "uint32": 7, "int64": 8,
    "uint64": 9, "float32": 10, "float64": 11, "float128": 12, "char": 3, "wchar": 14,
    "bool": 15, "byte": 16, "string": 17, "wstring": 18,
}  # fmt: skip
_NESTED, _BOUNDED_STRING, _BOUNDED_WSTRING = 1, 21, 22
_ARRAY, _BOUNDED_SEQUENCE, _SEQUENCE = 48, 96, 144


def _field_type(desc: FieldDesc) -> dict[str, Any]:
    offset = capacity = 0
    if desc[0] == Nodetype.ARRAY:
        inner, capacity = desc[1]
        offset = _ARRAY
    elif desc[0] == Nodetype.SEQUENCE:
        inner, capacity = desc[1]
        offset = _BOUNDED_SEQUENCE if capacity else _SEQUENCE
    else:
        inner = desc
    string_capacity, nested = 0, ""
    if inner[0] == Nodetype.NAME:
        type_id = _NESTED
        nested = str(inner[1])
    else:
        base, bound = inner[1]
        type_id = _TYPE_IDS[base]
        if base in ("string", "wstring") and bound:
            type_id = _BOUNDED_STRING if base == "string" else _BOUNDED_WSTRING
            string_capacity = int(bound)
    return {
        "type_id": type_id + offset,
        "capacity": int(capacity),
        "string_capacity": string_capacity,
        "nested_type_name": nested,
    }


def individual_description(fielddefs: Typesdict, typename: str) -> dict[str, Any]:
    """Return the ``IndividualTypeDescription`` of one type (no nested expansion)."""
    fields = fielddefs[typename][1] or [
        ("structure_needs_at_least_one_member", (Nodetype.BASE, ("uint8", 0)))
    ]
    return {
        "type_name": typename,
        "fields": [{"name": name, "type": _field_type(desc)} for name, desc in fields],
    }


def referenced_types(fielddefs: Mapping[str, Any], typename: str) -> list[str]:
    """Return every type reachable from ``typename`` (itself excluded), sorted by name."""
    seen: set[str] = set()
    stack = [typename]
    while stack:
        for _, desc in fielddefs[stack.pop()][1]:
            inner = desc[1][0] if desc[0] in (Nodetype.ARRAY, Nodetype.SEQUENCE) else desc
            if inner[0] == Nodetype.NAME and inner[1] not in seen:
                seen.add(str(inner[1]))
                stack.append(str(inner[1]))
    seen.discard(typename)
    return sorted(seen)


def type_description(fielddefs: Typesdict, typename: str) -> dict[str, Any]:
    """Return the ``TypeDescription`` that REP 2011 hashes."""
    return {
        "type_description": individual_description(fielddefs, typename),
        "referenced_type_descriptions": [
            individual_description(fielddefs, name)
            for name in referenced_types(fielddefs, typename)
        ],
    }


def rihs01(fielddefs: Typesdict, typename: str) -> str:
    """Return ``RIHS01_<sha256>`` of ``typename``; every referenced type must be present."""
    text = json.dumps(
        type_description(fielddefs, typename),
        separators=(", ", ": "),
        sort_keys=False,
        ensure_ascii=True,
    )
    return "RIHS01_" + sha256(text.encode("utf-8")).hexdigest()
