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
    from collections.abc import Callable

    from mm_ros.bus.protocol import Bus

ConfigT = TypeVar("ConfigT")


def param(default: Any, help_text: str, *, live: bool = False) -> Any:
    """Return a config field that is also a ROS parameter (``help_text`` shows in --help).

    ``live``: the node takes a new value while it runs (``ros2 param set``); the others are
    read once at start and refuse a set, saying so.
    """
    return dataclasses.field(default=default, metadata={"help": help_text, "live": live})


def check_choice(name: str, value: str, choices: tuple[str, ...] | list[str]) -> str:
    """Return ``value`` if it is one of ``choices``, else raise naming both."""
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}, found {value!r}")
    return value


AUDIO_LAYOUTS = tuple(layout.value for layout in AudioLayout)


def declare_config(
    bus: Bus, cls: type[ConfigT], on_change: Callable[[ConfigT], None] | None = None
) -> ConfigT:
    """Declare one parameter per field of ``cls`` and build ``cls`` from their values.

    With ``on_change``, the ``live`` fields may be set while the node runs: the new config
    (validated by the dataclass, so a bad value is refused with its reason) goes to
    ``on_change``, which applies it. Without it every parameter is read-only.
    """
    current: dict[str, Any] = {}

    def setter(field: dataclasses.Field[Any]) -> Callable[[Any], None] | None:
        if on_change is None or not field.metadata.get("live"):
            return None
        apply_change = on_change

        def apply(value: Any) -> None:
            changed = dataclasses.replace(current["config"], **{field.name: value})
            apply_change(changed)
            current["config"] = changed

        return apply

    values = {
        f.name: bus.declare_parameter(f.name, f.default, f.metadata.get("help", ""), setter(f))
        for f in dataclasses.fields(cls)  # type: ignore[arg-type]
    }
    current["config"] = cls(**values)
    return current["config"]  # type: ignore[no-any-return]


def describe_config(cls: type[Any]) -> str:
    """One line per parameter: name, type, default and help (for ``--help``)."""
    lines = []
    for f in dataclasses.fields(cls):
        kind = type(f.default).__name__
        live = ", settable while running" if f.metadata.get("live") else ""
        lines.append(
            f"  {f.name} ({kind}, default {f.default!r}{live}): {f.metadata.get('help', '')}"
        )
    return "\n".join(lines)
