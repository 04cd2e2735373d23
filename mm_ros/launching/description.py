"""ROS 2 YAML launch files as a description tree (no execution here).

Supported, as in ``launch_yaml``/``launch_ros``: ``arg``, ``let``, ``node`` (``pkg``, ``exec``,
``name``, ``namespace``, ``param`` with ``name``/``value`` or ``from``, ``remap``, ``output``,
``respawn``, ``respawn_delay``), ``group`` (a list of actions, scoped), ``push_ros_namespace``
and ``include`` (``file``, ``arg``). Values may hold substitutions (see ``substitutions``).
Anything else is an error naming the file, the line and the tag.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mm_ros.core.errors import ConfigError


class LaunchFileError(ConfigError):
    """A launch file is malformed: the message names file, line and tag."""


@dataclass(frozen=True)
class Where:
    """Where an action was written."""

    file: Path
    line: int  # 1-based

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True)
class Arg:
    """``arg``: a launch argument with an optional default."""

    where: Where
    name: str
    default: str | None = None
    description: str = ""


@dataclass(frozen=True)
class Let:
    """``let``: set a launch variable."""

    where: Where
    name: str
    value: str


@dataclass(frozen=True)
class Param:
    """One ``param`` of a node: ``name``/``value`` or a params file (``from``)."""

    name: str | None = None
    value: str | None = None
    from_file: str | None = None


@dataclass(frozen=True)
class Node:
    """``node``: one process."""

    where: Where
    pkg: str
    exec: str
    name: str | None = None
    namespace: str | None = None
    params: tuple[Param, ...] = ()
    remaps: tuple[tuple[str, str], ...] = ()
    output: str = "screen"
    respawn: str = "false"
    respawn_delay: str = "0.0"


@dataclass(frozen=True)
class PushNamespace:
    """``push_ros_namespace``: prefix the namespace of what follows in this scope."""

    where: Where
    namespace: str


@dataclass(frozen=True)
class Group:
    """``group``: a scope for variables and namespaces."""

    where: Where
    actions: tuple[Any, ...] = ()


@dataclass(frozen=True)
class Include:
    """``include``: another launch file with arguments."""

    where: Where
    file: str
    args: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class LaunchDescription:
    """A parsed launch file."""

    path: Path
    actions: tuple[Any, ...] = field(default_factory=tuple)


_ATTRIBUTES = {
    "arg": ({"name"}, {"default", "description"}),
    "let": ({"name", "value"}, set()),
    "node": (
        {"pkg", "exec"},
        {"name", "namespace", "param", "remap", "output", "respawn", "respawn_delay"},
    ),
    "push_ros_namespace": ({"namespace"}, set()),
    "include": ({"file"}, {"arg"}),
}
_ALIASES = {"push-ros-namespace": "push_ros_namespace", "respawn-delay": "respawn_delay"}


class _LineLoader(yaml.SafeLoader):
    """A YAML loader that remembers the line of every mapping (for error messages)."""


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    mapping = loader.construct_mapping(node, deep=True)
    mapping["__line__"] = node.start_mark.line + 1
    return mapping


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def load(path: Path) -> LaunchDescription:
    """Parse a YAML launch file; raise ``LaunchFileError`` naming file, line and tag."""
    try:
        data = yaml.load(path.read_text(), Loader=_LineLoader)  # noqa: S506 - SafeLoader subclass
    except OSError as err:
        raise LaunchFileError(f"launch file {path}: {err}") from err
    except yaml.YAMLError as err:
        raise LaunchFileError(f"launch file {path} is not valid YAML: {err}") from err
    if not isinstance(data, dict) or "launch" not in data:
        raise LaunchFileError(f"{path}: expected a top-level 'launch:' list")
    return LaunchDescription(path, _actions(path, data["launch"], data.get("__line__", 1)))


def _actions(path: Path, items: Any, line: int) -> tuple[Any, ...]:
    if not isinstance(items, list):
        raise LaunchFileError(f"{path}:{line}: expected a list of actions")
    return tuple(_action(path, item, line) for item in items)


def _action(path: Path, item: Any, parent_line: int) -> Any:
    if not isinstance(item, dict):
        raise LaunchFileError(f"{path}:{parent_line}: expected '- tag: ...', found {item!r}")
    line = int(item.get("__line__", parent_line))
    tags = [k for k in item if k != "__line__"]
    if len(tags) != 1:
        raise LaunchFileError(f"{path}:{line}: expected one tag per list item, found {tags}")
    tag = _ALIASES.get(tags[0], tags[0])
    body = item[tags[0]]
    where = Where(path, line)
    if tag == "group":
        group_line = int(body.get("__line__", line)) if isinstance(body, dict) else line
        children = body.get("children", []) if isinstance(body, dict) else body
        return Group(where, _actions(path, children, group_line))
    if tag not in _ATTRIBUTES:
        raise LaunchFileError(
            f"{path}:{line}: unknown tag {tag!r} (supported: "
            f"{', '.join(sorted([*_ATTRIBUTES, 'group']))})"
        )
    if not isinstance(body, dict):
        raise LaunchFileError(f"{path}:{line}: tag {tag!r} expects attributes, found {body!r}")
    attrs = {_ALIASES.get(str(k), str(k)): v for k, v in body.items() if k != "__line__"}
    required, optional = _ATTRIBUTES[tag]
    unknown = set(attrs) - required - optional
    if unknown:
        raise LaunchFileError(
            f"{path}:{line}: tag {tag!r} has unknown attribute(s) "
            f"{sorted(unknown)} (allowed: {sorted(required | optional)})"
        )
    missing = required - set(attrs)
    if missing:
        raise LaunchFileError(f"{path}:{line}: tag {tag!r} needs {sorted(missing)}")
    if tag == "arg":
        default = attrs.get("default")
        return Arg(
            where,
            _text(attrs["name"]),
            None if default is None else _text(default),
            _text(attrs.get("description", "")),
        )
    if tag == "let":
        return Let(where, _text(attrs["name"]), _text(attrs["value"]))
    if tag == "push_ros_namespace":
        return PushNamespace(where, _text(attrs["namespace"]))
    if tag == "include":
        return Include(
            where,
            _text(attrs["file"]),
            _pairs(path, line, attrs.get("arg", []), "arg", "name", value="value"),
        )
    return _node(path, where, attrs)


def _pairs(
    path: Path, line: int, items: Any, tag: str, key: str, *, value: str
) -> tuple[tuple[str, str], ...]:
    if not isinstance(items, list):
        raise LaunchFileError(f"{path}:{line}: {tag!r} expects a list of {{{key}, {value}}}")
    out = []
    for item in items:
        item_line = item.get("__line__", line) if isinstance(item, dict) else line
        if not isinstance(item, dict) or set(item) - {"__line__"} != {key, value}:
            raise LaunchFileError(
                f"{path}:{item_line}: {tag!r} entry needs exactly {key!r} "
                f"and {value!r}, found {item!r}"
            )
        out.append((_text(item[key]), _text(item[value])))
    return tuple(out)


def _node(path: Path, where: Where, attrs: dict[str, Any]) -> Node:
    params = []
    for item in attrs.get("param", []) or []:
        item_line = item.get("__line__", where.line) if isinstance(item, dict) else where.line
        keys = set(item) - {"__line__"} if isinstance(item, dict) else set()
        if keys == {"from"}:
            params.append(Param(from_file=_text(item["from"])))
        elif keys == {"name", "value"}:
            params.append(Param(name=_text(item["name"]), value=_text(item["value"])))
        else:
            raise LaunchFileError(
                f"{path}:{item_line}: 'param' entry needs name+value or from, found {sorted(keys)}"
            )
    output = _text(attrs.get("output", "screen"))
    if output not in ("screen", "log", "both"):
        raise LaunchFileError(f"{where}: node output must be screen, log or both, found {output!r}")
    return Node(
        where,
        _text(attrs["pkg"]),
        _text(attrs["exec"]),
        _text(attrs["name"]) if "name" in attrs else None,
        _text(attrs["namespace"]) if "namespace" in attrs else None,
        tuple(params),
        _pairs(path, where.line, attrs.get("remap", []) or [], "remap", "from", value="to"),
        output,
        _text(attrs.get("respawn", "false")),
        _text(attrs.get("respawn_delay", "0.0")),
    )
