"""A node's declared parameters: values, types, which may change while it runs, and how.

One table serves both buses, so ``ros2 param set`` on rclpy and ``Bus.set_parameter`` on zenoh
accept and refuse exactly the same values with the same reasons.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from mm_ros.bus.ros_args import checked_parameter
from mm_ros.core.errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Callable

READ_ONLY = "read at start: give it with -p NAME:=VALUE or a params file, then restart the node"


class ParameterTable:
    """Declared parameters of one node; setting runs the parameter's ``on_set`` first."""

    def __init__(self, node: str) -> None:
        self.node = node  # fully qualified, for messages
        self._values: dict[str, Any] = {}
        self._defaults: dict[str, Any] = {}
        self._setters: dict[str, Callable[[Any], None]] = {}
        self._lock = threading.Lock()  # one set at a time: on_set sees a consistent node

    def declare(
        self,
        name: str,
        default: Any,
        overrides: dict[str, Any],
        on_set: Callable[[Any], None] | None = None,
    ) -> Any:
        """Record ``name`` with its start value (override or default) and return the value."""
        value = checked_parameter(name, default, overrides, self.node)
        self._values[name] = value
        self._defaults[name] = default
        if on_set is not None:
            self._setters[name] = on_set
        return value

    def __contains__(self, name: object) -> bool:
        return name in self._values

    def names(self) -> list[str]:
        """Return the declared names, sorted."""
        return sorted(self._values)

    def get(self, name: str) -> Any:
        """Value of a declared parameter."""
        if name not in self._values:
            raise ConfigError(f"parameter {name!r} was never declared on {self.node}")
        return self._values[name]

    def writable(self, name: str) -> bool:
        """Return True when ``name`` may change while the node runs."""
        return name in self._setters

    def set(self, name: str, value: Any) -> Any:
        """Check ``value`` against the declared type, let the node apply it, keep it.

        Raises ``ConfigError`` naming why when the parameter is unknown or read-only, the
        value is of another type, or the node refuses it; the old value stays then.
        """
        if name not in self._values:
            raise ConfigError(f"parameter {name!r} is not declared on {self.node}")
        if name not in self._setters:
            raise ConfigError(f"parameter {name!r} of {self.node} is read-only: {READ_ONLY}")
        value = checked_parameter(name, self._defaults[name], {name: value}, self.node)
        with self._lock:
            self._setters[name](value)
            self._values[name] = value
        return value
