"""``mm-ros``: subcommands for interfaces today; the bus, nodes and tools join it later."""

from __future__ import annotations

import argparse
import importlib
import sys

from mm_ros import __version__
from mm_ros.core.errors import ConfigError, MmRosError, UnknownTypeError

EXIT_OK, EXIT_RUNTIME, EXIT_USAGE = 0, 1, 2

# One module per subcommand group; each has ``register(subparsers)``. Imported when the parser
# is built, so keep their top-level imports light (heavy ones go inside the handlers).
SUBCOMMANDS = [
    "mm_ros.cli.interfaces_cmd",
    "mm_ros.cli.bus_cmd",
    "mm_ros.cli.demo_cmd",
    "mm_ros.cli.doctor_cmd",
    "mm_ros.cli.launch_cmd",
    "mm_ros.cli.engines_cmd",
    "mm_ros.cli.ask_cmd",
    "mm_ros.cli.lifecycle_cmd",
    "mm_ros.cli.train_cmd",
    "mm_ros.cli.eval_cmd",
]


def build_parser() -> argparse.ArgumentParser:
    """Return the top-level parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="mm-ros",
        description="mm_ros: one multimodal model service for ROS 2 robots and headsets.",
    )
    parser.add_argument("--version", action="version", version=f"mm-ros {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in SUBCOMMANDS:
        importlib.import_module(module).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``mm-ros`` with ``argv``; return the process exit code (0, 1 runtime, 2 usage)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return int(args.handler(args))
    except (ConfigError, UnknownTypeError) as err:  # bad usage or input: exit 2
        print(f"mm-ros: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except MmRosError as err:
        print(f"mm-ros: error: {err}", file=sys.stderr)
        return EXIT_RUNTIME
    except KeyboardInterrupt:
        return 130


def entry_point() -> None:
    """Console-script entry point."""
    sys.exit(main())


if __name__ == "__main__":
    entry_point()
