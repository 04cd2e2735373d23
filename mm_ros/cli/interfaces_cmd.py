"""``mm-ros interfaces list | show TYPE | hash TYPE``: the wire types without a ROS install."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from mm_ros.core.errors import UnknownTypeError
from mm_ros.interfaces import DEFAULT_DISTRO, DISTROS, AudioLayout, get_store

EXIT_OK, EXIT_USAGE = 0, 2


def register(subparsers: Any) -> None:
    """Add ``interfaces`` and its subcommands to the top-level parser."""
    parser = subparsers.add_parser(
        "interfaces", help="list, show and hash the ROS 2 interface types mm_ros speaks"
    )
    parser.set_defaults(handler=lambda _args: _usage(parser))
    commands = parser.add_subparsers(dest="interfaces_command", metavar="SUBCOMMAND")

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--distro",
            default=DEFAULT_DISTRO,
            choices=sorted(DISTROS),
            help=f"ROS 2 distro whose definitions to use (default {DEFAULT_DISTRO})",
        )
        p.add_argument(
            "--audio-layout",
            default=AudioLayout.ROS_DRIVERS.value,
            choices=[a.value for a in AudioLayout],
            help="which audio_common_msgs package is on the wire (default ros-drivers)",
        )

    listing = commands.add_parser("list", help="list every known type")
    common(listing)
    listing.add_argument("--package", help="only types of this package, e.g. mm_ros")
    listing.add_argument("--hashes", action="store_true", help="print each type's hash too")
    listing.set_defaults(handler=_list)

    show = commands.add_parser("show", help="print a type's definition")
    common(show)
    show.add_argument("type", help="e.g. vision_msgs/msg/Detection2D or mm_ros/action/Ask")
    show.add_argument(
        "--description", action="store_true", help="print the REP 2011 type description JSON"
    )
    show.set_defaults(handler=_show)

    hashing = commands.add_parser("hash", help="print a type's RIHS01 hash")
    common(hashing)
    hashing.add_argument("type", help="e.g. std_msgs/msg/String")
    hashing.set_defaults(handler=_hash)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return EXIT_USAGE


def _unknown(err: UnknownTypeError) -> int:
    print(f"mm-ros interfaces: {err}", file=sys.stderr)
    return EXIT_USAGE


def _list(args: argparse.Namespace) -> int:
    store = get_store(args.distro, args.audio_layout)
    for name in store.names():
        if args.package and name.split("/", 1)[0] != args.package:
            continue
        print(f"{name} {store.hash(name)}" if args.hashes else name)
    return EXIT_OK


def _show(args: argparse.Namespace) -> int:
    store = get_store(args.distro, args.audio_layout)
    try:
        if args.description:
            print(json.dumps(store.type_description(args.type), indent=2))
        else:
            sys.stdout.write(store.definition(args.type))
    except UnknownTypeError as err:
        return _unknown(err)
    return EXIT_OK


def _hash(args: argparse.Namespace) -> int:
    store = get_store(args.distro, args.audio_layout)
    try:
        print(store.hash(args.type))
    except UnknownTypeError as err:
        return _unknown(err)
    return EXIT_OK
