"""``--ros-args`` and ROS 2 parameter files, parsed the way rcl parses them.

    --ros-args -r from:=to -r __ns:=/robot -r __node:=name -p key:=value
               --params-file FILE --log-level LEVEL [--]

Parameter values are YAML scalars or lists (``-p rate:=30``, ``-p names:="[a, b]"``).
Parameter files are the ROS params YAML: ``<node or /**>: {ros__parameters: {...}}``; nested
maps flatten with ``.``; node keys may be the node name, its fully qualified name or a pattern
with ``*`` (one token) and ``**`` (any number of tokens).
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mm_ros.bus.naming import Remap
from mm_ros.core.errors import ConfigError

LOG_LEVELS = ("debug", "info", "warn", "error", "fatal")


class RosArgsError(ConfigError):
    """A ``--ros-args`` token or a parameter file is malformed (exit code 2 at the CLI)."""


@dataclass(frozen=True)
class RosArgs:
    """What a node was started with."""

    remaps: tuple[Remap, ...] = ()
    node_name: str | None = None  # from -r __node:=
    namespace: str | None = None  # from -r __ns:=
    params: dict[str, Any] = field(default_factory=dict)  # -p, applied after files
    params_files: tuple[Path, ...] = ()
    log_level: str = "info"
    rest: tuple[str, ...] = ()  # arguments outside --ros-args, for the program itself


def parse_value(text: str) -> Any:
    """Parse a ``-p`` value as YAML (``30`` int, ``1.5`` float, ``true`` bool, ``[1, 2]``)."""
    try:
        return yaml.safe_load(text) if text != "" else ""
    except yaml.YAMLError as err:
        raise RosArgsError(f"parameter value {text!r} is not valid YAML: {err}") from err


def assignment(token: str, flag: str) -> tuple[str, str]:
    """Split ``NAME:=VALUE`` (remaps, parameters, launch arguments); ``flag`` names the option."""
    if ":=" not in token:
        raise RosArgsError(f"{flag} expects NAME:=VALUE, found {token!r}")
    name, value = token.split(":=", 1)
    if not name:
        raise RosArgsError(f"{flag} expects NAME:=VALUE, found {token!r} (empty name)")
    return name, value


def parse_ros_args(argv: list[str]) -> RosArgs:  # noqa: PLR0912 - a flat token scanner
    """Split ``argv`` into ROS arguments and the program's own arguments."""
    remaps: list[Remap] = []
    params: dict[str, Any] = {}
    files: list[Path] = []
    node_name = namespace = None
    log_level = "info"
    rest: list[str] = []
    inside = False
    tokens = iter(argv)
    for token in tokens:
        if token == "--ros-args":
            inside = True
            continue
        if not inside:
            rest.append(token)
            continue
        if token == "--":
            inside = False
            continue
        if token in ("-r", "--remap", "-p", "--param", "--params-file", "--log-level"):
            value = next(tokens, None)
            if value is None:
                raise RosArgsError(f"{token} needs a value at the end of --ros-args")
            if token in ("-r", "--remap"):
                source, target = assignment(value, token)
                if source == "__node":
                    node_name = target
                elif source == "__ns":
                    namespace = target
                else:
                    remaps.append(Remap(source, target))
            elif token in ("-p", "--param"):
                name, raw = assignment(value, token)
                params[name] = parse_value(raw)
            elif token == "--params-file":
                path = Path(value)
                if not path.is_file():
                    raise RosArgsError(f"--params-file {value!r}: no such file")
                files.append(path)
            else:
                level = value.split(":=")[-1].lower()
                if level not in LOG_LEVELS:
                    raise RosArgsError(f"--log-level {value!r}: expected one of {LOG_LEVELS}")
                log_level = level
        else:
            raise RosArgsError(f"unknown --ros-args token {token!r}")
    return RosArgs(
        tuple(remaps), node_name, namespace, params, tuple(files), log_level, tuple(rest)
    )


def _flatten(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, dict):
        for key, inner in value.items():
            _flatten(f"{prefix}.{key}" if prefix else str(key), inner, out)
    else:
        out[prefix] = value


def _node_pattern(key: str) -> re.Pattern[str]:
    key = key if key.startswith("/") else "/**/" + key  # a bare name matches in any namespace
    parts = []
    for token in key.strip("/").split("/"):
        if token == "**":
            parts.append(r"(?:/[^/]+)*")
        elif token == "*":
            parts.append(r"/[^/]+")
        else:
            parts.append("/" + re.escape(token))
    return re.compile("".join(parts) + "$")


def load_params_file(path: Path, fully_qualified_node: str) -> dict[str, Any]:
    """Parameters a params file gives the node ``/ns/name`` (wildcard sections first)."""
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as err:
        raise RosArgsError(f"params file {path}: {err}") from err
    if not isinstance(data, dict):
        raise RosArgsError(
            f"params file {path}: expected a map of node names, found {type(data).__name__}"
        )
    general: dict[str, Any] = {}
    specific: dict[str, Any] = {}
    for key, section in data.items():
        if not isinstance(section, dict) or "ros__parameters" not in section:
            raise RosArgsError(f"params file {path}: section {key!r} has no 'ros__parameters'")
        if not _node_pattern(str(key)).match(fully_qualified_node):
            continue
        target = general if "*" in str(key) else specific
        _flatten("", section["ros__parameters"] or {}, target)
    return {**general, **specific}


def checked_parameter(name: str, default: Any, overrides: dict[str, Any], node: str) -> Any:
    """Value of a parameter: its override if of the default's type (int -> float is fine).

    A string that parses (as YAML, like ``-p``) to the declared type is taken as that type:
    real ``ros2 launch`` hands a quoted YAML ``value: "1.0"`` to the node as the string
    ``'1.0'``, and ROS 2 users write launch files that way. Anything else of another type
    than the default is an error naming both.
    """
    value = overrides.get(name, default)
    if default is None or value is default:
        return value
    if isinstance(value, str) and not isinstance(default, str):
        with contextlib.suppress(RosArgsError):
            parsed = parse_value(value)
            value = parsed if _fits(parsed, default) else value
    if not _fits(value, default):
        msg = (
            f"parameter {name!r} of {node}: expected {type(default).__name__} "
            f"(default {default!r}), found {value!r}"
        )
        raise RosArgsError(msg)
    return float(value) if isinstance(default, float) else value


def _fits(value: Any, default: Any) -> bool:
    """Return True when ``value`` may stand for a parameter declared with ``default``."""
    same = isinstance(value, type(default)) and not (
        isinstance(value, bool) and not isinstance(default, bool)
    )
    widening = isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool)
    return same or widening


def ros_tokens(args: RosArgs) -> list[str]:
    """Return the remapping part of ``args`` as ``--ros-args`` tokens (for rclpy)."""
    tokens = ["--ros-args"]
    for rule in args.remaps:
        tokens += ["-r", f"{rule.source}:={rule.target}"]
    if args.node_name:
        tokens += ["-r", f"__node:={args.node_name}"]
    if args.namespace:
        tokens += ["-r", f"__ns:={args.namespace}"]
    return tokens


def parameter_overrides(args: RosArgs, fully_qualified_node: str) -> dict[str, Any]:
    """All overrides for one node: files in order, then ``-p`` (which wins)."""
    out: dict[str, Any] = {}
    for path in args.params_files:
        out.update(load_params_file(path, fully_qualified_node))
    out.update(args.params)
    return out
