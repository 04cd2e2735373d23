"""Parse .msg/.srv/.action texts into rosbags field definitions, expanded as rosidl does.

A service ``pkg/srv/X`` becomes ``X_Request``, ``X_Response``, ``X_Event`` and the pseudo-type
``X`` (fields ``request_message``, ``response_message``, ``event_message``) that rosidl hashes.
An action ``pkg/action/X`` becomes ``X_Goal``, ``X_Result``, ``X_Feedback``, the services
``X_SendGoal`` and ``X_GetResult`` (each expanded as above), ``X_FeedbackMessage`` and the
pseudo-type ``X``.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, cast

from rosbags.interfaces import Nodetype
from rosbags.typesys import get_types_from_msg
from rosbags.typesys.base import TypesysError

from mm_ros.core.errors import DefinitionError

if TYPE_CHECKING:
    from rosbags.interfaces.typing import Fielddefs, FieldDesc, Typesdict

SERVICE_EVENT_INFO = "service_msgs/msg/ServiceEventInfo"
UUID = "unique_identifier_msgs/msg/UUID"
TIME = "builtin_interfaces/msg/Time"

PRIMITIVES = frozenset(
    {
        "bool", "byte", "char", "float32", "float64", "int8", "uint8", "int16", "uint16",
        "int32", "uint32", "int64", "uint64", "string", "wstring", "wchar",
    }
)  # fmt: skip
_TYPE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*/(msg|srv|action)/[A-Za-z][A-Za-z0-9_]*$")
_FIELD_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_FIELD_TYPE = re.compile(
    r"^(?:[A-Za-z][A-Za-z0-9_]*/)?[A-Za-z][A-Za-z0-9_]*(?:<=\d+)?(?:\[(?:<=)?\d*\])?$"
)
_CONSTANT = re.compile(r"^\S+\s+\S+?\s*=")
_TYPE_AND_NAME = 2  # words of a field line before an optional default value
_PLACEHOLDER: FieldDesc = (Nodetype.BASE, ("uint8", 0))


def interface_kind(typename: str) -> str:
    """Return ``msg``, ``srv`` or ``action`` for a full type name ``pkg/kind/Name``."""
    if not _TYPE_NAME.match(typename):
        msg = f"type name {typename!r} is not of the form 'package/msg|srv|action/Name'"
        raise DefinitionError(msg)
    return typename.split("/")[1]


def parse_interface(text: str, typename: str) -> Typesdict:
    """Parse one interface file's text; return every type it defines, helpers included."""
    kind = interface_kind(typename)
    parts = _split_sections(text)
    expected = {"msg": 1, "srv": 2, "action": 3}[kind]
    if len(parts) != expected:
        msg = (
            f"{typename}: a .{kind} file has {expected} section(s) separated by '---', "
            f"found {len(parts)}"
        )
        raise DefinitionError(msg)
    if kind == "msg":
        return {typename: _parse_struct(parts[0], typename)}
    if kind == "srv":
        return _service_types(typename, parts[0], parts[1])
    return _action_types(typename, *parts)


def _split_sections(text: str) -> list[str]:
    sections: list[list[str]] = [[]]
    for line in text.splitlines():
        if line.strip() == "---":
            sections.append([])
        else:
            sections[-1].append(line)
    return ["\n".join(lines) + "\n" for lines in sections]


def _check_lines(text: str, typename: str) -> None:
    """Reject lines rosbags' lenient parser would accept or silently misread."""
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        constant = _CONSTANT.match(line) is not None
        head = line.split("=", 1)[0] if constant else line
        words = head.split()
        if len(words) < _TYPE_AND_NAME:
            msg = f"{typename} line {number}: expected 'TYPE NAME', found {raw.strip()!r}"
            raise DefinitionError(msg)
        ftype, fname = words[0], words[1]
        if not _FIELD_TYPE.match(ftype):
            msg = f"{typename} line {number}: {ftype!r} is not a valid field type"
            raise DefinitionError(msg)
        if not _FIELD_NAME.match(fname):
            msg = f"{typename} line {number}: {fname!r} is not a valid field name"
            raise DefinitionError(msg)
        base = re.sub(r"(<=\d+)?(\[.*\])?$", "", ftype)
        if len(words) > _TYPE_AND_NAME and not constant and base not in PRIMITIVES:
            msg = (
                f"{typename} line {number}: default values are allowed for primitive "
                f"fields only, found {' '.join(words[2:])!r} after {ftype} {fname}"
            )
            raise DefinitionError(msg)


def _parse_struct(text: str, typename: str) -> tuple[list, Fielddefs]:  # type: ignore[type-arg]
    """Parse one message body; relative type names resolve to ``pkg/msg/X`` as rosidl does."""
    _check_lines(text, typename)
    pkg, _, name = typename.split("/")
    try:
        parsed = get_types_from_msg(text, f"{pkg}/msg/{name}")
    except TypesysError as err:
        msg = f"{typename}: cannot parse definition: {err}"
        raise DefinitionError(msg) from err
    consts, fields = parsed[f"{pkg}/msg/{name}"]
    if not fields:
        fields = [("structure_needs_at_least_one_member", _PLACEHOLDER)]
    return consts, list(fields)


def _named(typename: str) -> FieldDesc:
    return (Nodetype.NAME, typename)


def _at_most_one(typename: str) -> FieldDesc:
    """``typename[<=1]``: how an ``_Event`` carries its optional request and response."""
    return cast("FieldDesc", (Nodetype.SEQUENCE, (_named(typename), 1)))


def _service_types(typename: str, request: str, response: str) -> Typesdict:
    types: Typesdict = {
        f"{typename}_Request": _parse_struct(request, f"{typename}_Request"),
        f"{typename}_Response": _parse_struct(response, f"{typename}_Response"),
    }
    types.update(_service_wrappers(typename))
    return types


def _service_wrappers(typename: str) -> Typesdict:
    """Return the ``_Event`` type and the service pseudo-type around Request/Response."""
    request, response = f"{typename}_Request", f"{typename}_Response"
    return {
        f"{typename}_Event": (
            [],
            [
                ("info", _named(SERVICE_EVENT_INFO)),
                ("request", _at_most_one(request)),
                ("response", _at_most_one(response)),
            ],
        ),
        typename: (
            [],
            [
                ("request_message", _named(request)),
                ("response_message", _named(response)),
                ("event_message", _named(f"{typename}_Event")),
            ],
        ),
    }


def _action_types(typename: str, goal: str, result: str, feedback: str) -> Typesdict:
    goal_t, result_t, feedback_t = (f"{typename}_{s}" for s in ("Goal", "Result", "Feedback"))
    send_goal, get_result = f"{typename}_SendGoal", f"{typename}_GetResult"
    types: Typesdict = {
        goal_t: _parse_struct(goal, goal_t),
        result_t: _parse_struct(result, result_t),
        feedback_t: _parse_struct(feedback, feedback_t),
        f"{send_goal}_Request": ([], [("goal_id", _named(UUID)), ("goal", _named(goal_t))]),
        f"{send_goal}_Response": (
            [],
            [("accepted", (Nodetype.BASE, ("bool", 0))), ("stamp", _named(TIME))],
        ),
        f"{get_result}_Request": ([], [("goal_id", _named(UUID))]),
        f"{get_result}_Response": (
            [],
            [("status", (Nodetype.BASE, ("int8", 0))), ("result", _named(result_t))],
        ),
        f"{typename}_FeedbackMessage": (
            [],
            [("goal_id", _named(UUID)), ("feedback", _named(feedback_t))],
        ),
        typename: (
            [],
            [
                ("goal", _named(goal_t)),
                ("result", _named(result_t)),
                ("feedback", _named(feedback_t)),
                ("send_goal_service", _named(send_goal)),
                ("get_result_service", _named(get_result)),
                ("feedback_message", _named(f"{typename}_FeedbackMessage")),
            ],
        ),
    }
    types.update(_service_wrappers(send_goal))
    types.update(_service_wrappers(get_result))
    return types


def normalize_name(name: str) -> str:
    """Accept ``pkg/msg/Name``, ``pkg/Name`` or the DDS form ``pkg::msg::dds_::Name_``."""
    name = name.strip()
    dds = re.fullmatch(r"(\w+)::(msg|srv|action)::dds_::(\w+?)_", name)
    if dds:
        return "/".join(dds.groups())
    parts = name.split("/")
    if len(parts) == 2:  # noqa: PLR2004 - pkg/Name shorthand means a message
        return f"{parts[0]}/msg/{parts[1]}"
    return name


_SCHEMA_SEPARATOR = re.compile(r"^={80}[ \t]*$", re.M)


def parse_schema(text: str, typename: str) -> Typesdict:
    """Parse a ``ros2msg`` schema as rosbag2 embeds it in MCAP and ``/type_description``.

    The text is the type's own definition, then one ``MSG: pkg/Name`` section per nested type
    after a line of 80 ``=``. rosbag2 stores a service event type (``pkg/srv/X_Event``) as the
    ``.srv`` text of ``X``; it is expanded as rosidl expands the service.
    """
    sections = _SCHEMA_SEPARATOR.split(text)
    types: Typesdict = {}
    main = sections[0]
    service = typename.endswith("_Event") and "/srv/" in typename
    if service and len(_split_sections(main)) == 2:  # noqa: PLR2004 - request, response
        types.update(parse_interface(main, typename.removesuffix("_Event")))
    else:
        types[typename] = _parse_struct(main, typename)
    for section in sections[1:]:
        header, _, body = section.lstrip("\n").partition("\n")
        if not header.startswith("MSG: "):
            msg = f"{typename}: schema section starts with {header!r}, expected 'MSG: pkg/Name'"
            raise DefinitionError(msg)
        name = normalize_name(header.removeprefix("MSG: "))
        types[name] = _parse_struct(body, name)
    return types


def referenced_names(fields: Fielddefs) -> list[tuple[str, str]]:
    """Return ``(field, type)`` for every field of ``fields`` that names another type."""
    out = []
    for fname, desc in fields:
        inner = desc[1][0] if desc[0] in (Nodetype.ARRAY, Nodetype.SEQUENCE) else desc
        if inner[0] == Nodetype.NAME:
            out.append((fname, str(inner[1])))
    return out
