"""Substitutions and the expansion of a description into processes to start.

``$(var NAME)``, ``$(env NAME [DEFAULT])`` and ``$(find-pkg-share mm_ros)``; groups scope
variables and namespaces; includes take arguments. The result is a flat list of resolved
``ProcessSpec`` values, so what would run can be printed or tested without starting anything.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from mm_ros.launching.description import (
    Arg,
    Group,
    Include,
    LaunchFileError,
    Let,
    Node,
    PushNamespace,
    load,
)

_SUBSTITUTION = re.compile(r"\$\(([a-z-]+)(?:\s+([^)]*))?\)")
PACKAGE = "mm_ros"


def package_share() -> Path:
    """Folder holding ``launch/`` and ``config/``: source checkout, colcon share or wheel."""
    package = Path(__file__).resolve().parents[1]
    candidates = [package.parent, package / "share"]
    if len(package.parents) > 3:  # noqa: PLR2004 - <prefix>/lib/pythonX.Y/site-packages/mm_ros
        candidates.append(package.parents[3] / "share" / PACKAGE)
    for candidate in candidates:
        if (candidate / "launch").is_dir():
            return candidate
    raise LaunchFileError(
        f"the {PACKAGE} share folder (launch/, config/) was not found near {package}"
    )


@dataclass
class Scope:
    """Launch variables and the namespace stack; copied on entering a group or include."""

    variables: dict[str, str] = field(default_factory=dict)
    namespace: str = ""

    def child(self) -> Scope:
        """Return a copy for a nested scope (group or include)."""
        return Scope(dict(self.variables), self.namespace)


def substitute(text: str, scope: Scope, where: object) -> str:
    """Resolve every ``$(...)`` in ``text``."""

    def one(match: re.Match[str]) -> str:
        kind, arg = match.group(1), (match.group(2) or "").strip()
        if kind == "var":
            if arg not in scope.variables:
                known = ", ".join(sorted(scope.variables)) or "none"
                raise LaunchFileError(f"{where}: $(var {arg}) is not set (known: {known})")
            return scope.variables[arg]
        if kind == "env":
            name, _, default = arg.partition(" ")
            value = os.environ.get(name, default or None)
            if value is None:
                raise LaunchFileError(
                    f"{where}: environment variable {name} is not set and has no default"
                )
            return value
        if kind == "find-pkg-share":
            if arg != PACKAGE:
                raise LaunchFileError(
                    f"{where}: $(find-pkg-share {arg}): without ROS 2 only "
                    f"{PACKAGE}'s share folder is known"
                )
            return str(package_share())
        raise LaunchFileError(
            f"{where}: unknown substitution $({kind} ...) (supported: var, env, find-pkg-share)"
        )

    return _SUBSTITUTION.sub(one, text)


@dataclass(frozen=True)
class ProcessSpec:
    """One node process, fully resolved."""

    label: str  # e.g. sim_world-1
    command: tuple[str, ...]
    output: str
    respawn: bool
    respawn_delay_s: float
    where: str


def _truthy(text: str, where: object) -> bool:
    if text.lower() in ("true", "1", "yes"):
        return True
    if text.lower() in ("false", "0", "no"):
        return False
    raise LaunchFileError(f"{where}: expected true or false, found {text!r}")


def _join(outer: str, inner: str) -> str:
    if inner.startswith("/"):
        return inner
    parts = [p for p in (outer.strip("/"), inner.strip("/")) if p]
    return "/" + "/".join(parts) if parts else ""


def expand(path: Path, arguments: dict[str, str], *, executables: set[str]) -> list[ProcessSpec]:
    """Resolve a launch file with ``name:=value`` arguments into processes."""
    specs: list[ProcessSpec] = []
    _expand_file(path, arguments, Scope(), specs, executables, depth=0)
    return specs


def _expand_file(  # noqa: PLR0917 - recursion state, private
    path: Path,
    arguments: dict[str, str],
    scope: Scope,
    specs: list[ProcessSpec],
    executables: set[str],
    depth: int,
) -> None:
    if depth > 20:  # noqa: PLR2004 - a cycle of includes
        raise LaunchFileError(f"{path}: includes nest deeper than 20 (a cycle?)")
    description = load(path)
    declared = {a.name for a in description.actions if isinstance(a, Arg)}
    unknown = set(arguments) - declared
    if unknown and depth == 0:
        raise LaunchFileError(
            f"{path}: unknown launch argument(s) {sorted(unknown)}; declared: "
            f"{sorted(declared) or 'none'}"
        )
    scope.variables.update({k: v for k, v in arguments.items() if k in declared})
    _expand_actions(description.actions, scope, specs, executables, depth)


def _expand_actions(
    actions: tuple[object, ...],
    scope: Scope,
    specs: list[ProcessSpec],
    executables: set[str],
    depth: int,
) -> None:
    for action in actions:
        if isinstance(action, Arg):
            if action.name not in scope.variables:
                if action.default is None:
                    raise LaunchFileError(
                        f"{action.where}: launch argument {action.name!r} has "
                        f"no default: pass {action.name}:=VALUE"
                    )
                scope.variables[action.name] = substitute(action.default, scope, action.where)
        elif isinstance(action, Let):
            scope.variables[action.name] = substitute(action.value, scope, action.where)
        elif isinstance(action, PushNamespace):
            scope.namespace = _join(
                scope.namespace, substitute(action.namespace, scope, action.where)
            )
        elif isinstance(action, Group):
            _expand_actions(action.actions, scope.child(), specs, executables, depth)
        elif isinstance(action, Include):
            target = Path(substitute(action.file, scope, action.where))
            if not target.is_file():
                raise LaunchFileError(f"{action.where}: included file {target} does not exist")
            args = {k: substitute(v, scope, action.where) for k, v in action.args}
            _expand_file(target, args, scope.child(), specs, executables, depth + 1)
        elif isinstance(action, Node):
            specs.append(_process(action, scope, executables, len(specs) + 1))


def _process(node: Node, scope: Scope, executables: set[str], index: int) -> ProcessSpec:
    where = node.where
    pkg, exe = substitute(node.pkg, scope, where), substitute(node.exec, scope, where)
    if pkg != PACKAGE:
        raise LaunchFileError(
            f"{where}: node pkg {pkg!r}: without ROS 2 only {PACKAGE} "
            "executables run (use `ros2 launch` for others)"
        )
    if exe not in executables:
        raise LaunchFileError(
            f"{where}: node exec {exe!r} is not an {PACKAGE} executable "
            f"(known: {', '.join(sorted(executables))})"
        )
    ros_args: list[str] = []
    name = substitute(node.name, scope, where) if node.name else None
    if name:
        ros_args += ["-r", f"__node:={name}"]
    namespace = _join(scope.namespace, substitute(node.namespace or "", scope, where))
    if namespace:
        ros_args += ["-r", f"__ns:={namespace}"]
    for param in node.params:
        if param.from_file is not None:
            file = substitute(param.from_file, scope, where)
            if not Path(file).is_file():
                raise LaunchFileError(f"{where}: param file {file} does not exist")
            ros_args += ["--params-file", file]
        else:
            ros_args += ["-p", f"{param.name}:={substitute(param.value or '', scope, where)}"]
    for source, target in node.remaps:
        ros_args += [
            "-r",
            f"{substitute(source, scope, where)}:={substitute(target, scope, where)}",
        ]
    try:
        delay = float(substitute(node.respawn_delay, scope, where))
    except ValueError as err:
        raise LaunchFileError(
            f"{where}: respawn_delay must be seconds, found {node.respawn_delay!r}"
        ) from err
    command = (sys.executable, "-m", "mm_ros.cli.main", "run", exe, "--ros-args", *ros_args)
    return ProcessSpec(
        f"{name or exe}-{index}",
        command,
        node.output,
        _truthy(substitute(node.respawn, scope, where), where),
        delay,
        str(where),
    )
