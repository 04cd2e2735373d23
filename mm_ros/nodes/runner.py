"""Run a node class as an executable: ``--help``, the bus, spinning, exit codes."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from typing import TYPE_CHECKING, Any, Protocol

from mm_ros.bus.signals import SHUTDOWN_SIGNALS
from mm_ros.core.errors import ConfigError, MmRosError
from mm_ros.nodes.params import describe_config

if TYPE_CHECKING:
    from mm_ros.bus.protocol import Bus

EXIT_OK, EXIT_RUNTIME, EXIT_USAGE = 0, 1, 2
# Winding down takes well under a second; longer than this is a hang (ros2 launch would send
# SIGTERM at 5 s and SIGKILL at 10 s). The scheduler gives a running question 5 s to stop.
SHUTDOWN_LIMIT_S = 8.0


class NodeClass(Protocol):
    """What a node module exposes to the runner."""

    name: str  # default node name
    description: str
    Config: type[Any]

    def __call__(self, bus: Bus) -> Any:
        """Build the node on ``bus``."""


class _Shutdown:
    """SIGINT/SIGTERM for the whole life of a node process.

    While the node spins, a signal asks the bus to stop spinning, so the node winds down in
    order (goals in flight get their error result, then the bus closes). Before that (the node
    still loading its model) the first signal interrupts the loading. Signals during the
    wind-down, and after it while the interpreter exits, are ignored: ``ros2 launch`` sends its
    SIGINT after the terminal's own Ctrl-C, and to a node that has just ended by itself.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.bus: Bus | None = None
        self.stage = "starting"  # -> spinning -> closing
        self.received: str | None = None

    def __call__(self, signum: int, _frame: object) -> None:
        # no lock and no log line here (see mm_ros.bus.signals): run_node logs after spin
        first = self.received is None
        self.received = signal.Signals(signum).name
        if self.stage == "spinning" and self.bus is not None:
            self.bus.request_shutdown()
        elif self.stage == "starting" and first:
            raise KeyboardInterrupt

    def install(self) -> None:
        """Handle the shutdown signals from now on (main thread only)."""
        if threading.current_thread() is threading.main_thread():
            for sig in SHUTDOWN_SIGNALS:
                signal.signal(sig, self)


def _watchdog(name: str) -> threading.Timer:
    """Exit the process if winding down takes longer than ``SHUTDOWN_LIMIT_S``."""

    def force() -> None:
        print(
            f"{name}: shutdown took longer than {SHUTDOWN_LIMIT_S:g} s; exiting now",
            file=sys.stderr,
            flush=True,
        )
        os._exit(EXIT_RUNTIME)

    timer = threading.Timer(SHUTDOWN_LIMIT_S, force)
    timer.daemon = True
    timer.start()
    return timer


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

    shutdown = _Shutdown(node_class.name)
    shutdown.install()
    node = bus = None
    code = EXIT_OK
    try:
        bus = shutdown.bus = open_bus(node_class.name, args=argv)
        node = node_class(bus)
        if callable(getattr(node, "start", None)):  # managed nodes: autostart (nodes.lifecycle)
            node.start()
        shutdown.stage = "spinning"
        if shutdown.received is None:  # a signal between the two lines above stops here
            logging.getLogger("mm_ros").info(
                "%s running (Ctrl-C or SIGTERM stops it)", bus.fully_qualified_name
            )
            bus.spin()
    except ConfigError as err:
        print(f"{node_class.name}: error: {err}", file=sys.stderr)
        code = EXIT_USAGE
    except MmRosError as err:
        print(f"{node_class.name}: error: {err}", file=sys.stderr)
        code = EXIT_RUNTIME
    except KeyboardInterrupt:
        pass
    finally:
        shutdown.stage = "closing"
        if shutdown.received is not None:
            logging.getLogger("mm_ros").info("%s: %s, shutting down", node_class.name,
                                             shutdown.received)  # fmt: skip
        watchdog = _watchdog(node_class.name)
        if node is not None and hasattr(node, "close"):
            node.close()
        if bus is not None:
            bus.close()
        watchdog.cancel()
        # the handlers stay installed (ignoring): a signal while the interpreter exits (a second
        # or two with torch loaded) would otherwise end a cleanly stopped node as killed
    return code
