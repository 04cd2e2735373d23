"""``mm-ros lifecycle nodes | get | set | list``: drive managed nodes without ROS 2.

The pip twin of ``ros2 lifecycle``, over the same standard services (``~/get_state``,
``~/change_state``, ``~/get_available_transitions``, ``~/get_transition_graph``), so it works
against mm_ros nodes and against rclcpp/rclpy lifecycle nodes on rmw_zenoh alike.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from mm_ros.cli.bus_cmd import _bus_options, open_cli_bus
from mm_ros.core.errors import MmRosError

if TYPE_CHECKING:
    from mm_ros.bus.zenoh_bus import ZenohBus

EXIT_OK, EXIT_RUNTIME = 0, 1
GET_STATE = "lifecycle_msgs/srv/GetState"
TRANSITIONS = "lifecycle_msgs/srv/GetAvailableTransitions"


def register(subparsers: Any) -> None:
    """Add ``lifecycle``."""
    parser = subparsers.add_parser("lifecycle", help="get and change the state of managed nodes")
    sub = parser.add_subparsers(dest="lifecycle_command", metavar="SUBCOMMAND", required=True)
    nodes = sub.add_parser("nodes", help="managed nodes visible on the bus")
    _bus_options(nodes)
    nodes.set_defaults(handler=_nodes)
    get = sub.add_parser("get", help="print a node's current state")
    set_ = sub.add_parser("set", help="trigger a transition (label such as configure, or its id)")
    listing = sub.add_parser("list", help="transitions available now (--all: the whole graph)")
    for cmd in (get, set_, listing):
        _bus_options(cmd)
        cmd.add_argument("node", help="node name, e.g. /model_service")
        cmd.add_argument("--timeout", type=float, default=5.0, help="seconds (default 5)")
    set_.add_argument(
        "transition", help="configure, activate, deactivate, cleanup, shutdown or an id"
    )
    listing.add_argument("-a", "--all", action="store_true", help="every transition of the graph")
    get.set_defaults(handler=_get)
    set_.set_defaults(handler=_set)
    listing.set_defaults(handler=_list)


class _MissingError(MmRosError):
    """The node or its lifecycle service is not on the bus."""


def _node(name: str) -> str:
    return name if name.startswith("/") else f"/{name}"


def _call(
    bus: ZenohBus, node: str, service: str, typename: str, request: Any, *, timeout: float
) -> Any:
    client = bus.create_client(f"{node}/{service}", typename)
    if not client.wait_for_service(timeout):
        msg = f"no lifecycle service {node}/{service} within {timeout:g} s (is {node} managed?)"
        raise _MissingError(msg)
    return client.call(request, timeout_s=timeout)


def _describe(item: Any) -> str:
    return (
        f"- {item.transition.label} [{item.transition.id}]\n"
        f"\tStart: {item.start_state.label}\n\tGoal: {item.goal_state.label}"
    )


def _nodes(args: argparse.Namespace) -> int:
    with open_cli_bus(args) as bus:
        names = sorted(
            {
                e.name.removesuffix("/get_state")
                for e in bus.graph()
                if e.typename == GET_STATE and e.name.endswith("/get_state")
            }
        )
    print("\n".join(names))
    return EXIT_OK


def _get(args: argparse.Namespace) -> int:
    node = _node(args.node)
    with open_cli_bus(args) as bus:
        try:
            state = _call(bus, node, "get_state", GET_STATE, {}, timeout=args.timeout).current_state
        except _MissingError as err:
            print(f"mm-ros lifecycle get: {err}", file=sys.stderr)
            return EXIT_RUNTIME
    print(f"{state.label} [{state.id}]")
    return EXIT_OK


def _list(args: argparse.Namespace) -> int:
    node = _node(args.node)
    service = "get_transition_graph" if args.all else "get_available_transitions"
    with open_cli_bus(args) as bus:
        try:
            items = _call(
                bus, node, service, TRANSITIONS, {}, timeout=args.timeout
            ).available_transitions
        except _MissingError as err:
            print(f"mm-ros lifecycle list: {err}", file=sys.stderr)
            return EXIT_RUNTIME
    for item in items:
        print(_describe(item))
    return EXIT_OK


def _set(args: argparse.Namespace) -> int:
    node = _node(args.node)
    wanted = args.transition
    with open_cli_bus(args) as bus:
        try:
            state = _call(bus, node, "get_state", GET_STATE, {}, timeout=args.timeout).current_state
            items = _call(
                bus, node, "get_available_transitions", TRANSITIONS, {}, timeout=args.timeout
            ).available_transitions
            match = [i for i in items if wanted in (str(i.transition.label), str(i.transition.id))]
            if not match:
                valid = ", ".join(f"{i.transition.label} [{i.transition.id}]" for i in items)
                print(
                    f"mm-ros lifecycle set: cannot {wanted!r} from state {state.label!r}; "
                    f"available: {valid or 'none'}",
                    file=sys.stderr,
                )
                return EXIT_RUNTIME
            transition = match[0].transition
            request = {"transition": {"id": int(transition.id), "label": str(transition.label)}}
            response = _call(
                bus,
                node,
                "change_state",
                "lifecycle_msgs/srv/ChangeState",
                request,
                timeout=args.timeout,
            )
        except _MissingError as err:
            print(f"mm-ros lifecycle set: {err}", file=sys.stderr)
            return EXIT_RUNTIME
    if not response.success:
        print(
            f"Transitioning failed: {node} refused or failed {transition.label!r} "
            "(the node's log says why; `mm-ros lifecycle get` shows where it is now)",
            file=sys.stderr,
        )
        return EXIT_RUNTIME
    print("Transitioning successful")
    return EXIT_OK
