"""Run a node class as an executable: ``--help``, the bus, spinning, exit codes."""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING, Any, Protocol

from mm_ros.core.errors import ConfigError, MmRosError
from mm_ros.nodes.params import describe_config

if TYPE_CHECKING:
    from mm_ros.bus.protocol import Bus

EXIT_OK, EXIT_RUNTIME, EXIT_USAGE = 0, 1, 2


class NodeClass(Protocol):
    """What a node module exposes to the runner."""

    name: str  # default node name
    description: str
    Config: type[Any]

    def __call__(self, bus: Bus) -> Any:
        """Build the node on ``bus``."""


def run_node(node_class: Any, argv: list[str]) -> int:
    """Open the bus, build the node, spin until SIGINT/SIGTERM; map errors to exit codes."""
    if "-h" in argv or "--help" in argv:
        print(
            f"usage: {node_class.name} [--ros-args -r from:=to -p name:=value "
            f"--params-file FILE --log-level LEVEL]\n\n{node_class.description}\n\n"
            f"parameters:\n{describe_config(node_class.Config)}"
        )
        return EXIT_OK
    logging.basicConfig(level=logging.INFO, format="[%(levelname)s] [%(name)s] %(message)s")
    from mm_ros.bus.select import open_bus

    node = bus = None
    try:
        bus = open_bus(node_class.name, args=argv)
        node = node_class(bus)
        if callable(getattr(node, "start", None)):  # managed nodes: autostart (nodes.lifecycle)
            node.start()
        bus.spin()
    except ConfigError as err:
        print(f"{node_class.name}: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except MmRosError as err:
        print(f"{node_class.name}: error: {err}", file=sys.stderr)
        return EXIT_RUNTIME
    except KeyboardInterrupt:
        pass
    finally:
        if node is not None and hasattr(node, "close"):
            node.close()
        if bus is not None:
            bus.close()
    return EXIT_OK
