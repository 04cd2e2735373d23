"""Node parameters as one frozen config dataclass per node (STYLE.md point 3).

Every field of the dataclass is declared as a ROS parameter with its default and help text,
so a test can check that each declared parameter reaches the config, and ``--help`` lists them.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, TypeVar

from mm_ros.core.audio import AudioLayout
from mm_ros.core.errors import ConfigError

if TYPE_CHECKING:
    from mm_ros.bus.protocol import Bus

ConfigT = TypeVar("ConfigT")


def param(default: Any, help_text: str) -> Any:
    """Return a config field that is also a ROS parameter (``help_text`` shows in --help)."""
    return dataclasses.field(default=default, metadata={"help": help_text})


def check_choice(name: str, value: str, choices: tuple[str, ...] | list[str]) -> str:
    """Return ``value`` if it is one of ``choices``, else raise naming both."""
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}, found {value!r}")
    return value


AUDIO_LAYOUTS = tuple(layout.value for layout in AudioLayout)


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
