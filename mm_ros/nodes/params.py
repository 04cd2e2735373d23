"""Node parameters as one frozen config dataclass per node (STYLE.md point 3).

Every field of the dataclass is declared as a ROS parameter with its default and help text,
so a test can check that each declared parameter reaches the config, and ``--help`` lists them.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from mm_ros.bus.protocol import Bus

ConfigT = TypeVar("ConfigT")


def param(default: Any, help_text: str) -> Any:
    """Return a config field that is also a ROS parameter (``help_text`` shows in --help)."""
    return dataclasses.field(default=default, metadata={"help": help_text})


def declare_config(bus: Bus, cls: type[ConfigT]) -> ConfigT:
    """Declare one parameter per field of ``cls`` and build ``cls`` from their values."""
    values = {
        f.name: bus.declare_parameter(f.name, f.default, f.metadata.get("help", ""))
        for f in dataclasses.fields(cls)  # type: ignore[arg-type]
    }
    return cls(**values)


def describe_config(cls: type[Any]) -> str:
    """One line per parameter: name, type, default and help (for ``--help``)."""
    lines = []
    for f in dataclasses.fields(cls):
        kind = type(f.default).__name__
        lines.append(f"  {f.name} ({kind}, default {f.default!r}): {f.metadata.get('help', '')}")
    return "\n".join(lines)
