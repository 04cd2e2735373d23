"""Field tools over the bus, for machines without ROS 2.

``mm-ros router | topic list|echo|hz|pub | node list | service call | action send | run``.
Every subcommand that talks to the bus takes ``--connect``, ``--domain`` and ``--distro``
(defaults: ``MM_ROS_CONNECT`` or tcp/127.0.0.1:7447, ``ROS_DOMAIN_ID`` or 0, jazzy).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import TYPE_CHECKING, Any

from mm_ros.core.errors import ConfigError, MmRosError

if TYPE_CHECKING:
    from mm_ros.bus.naming import GraphEntity
    from mm_ros.bus.zenoh_bus import ZenohBus

EXIT_OK, EXIT_RUNTIME, EXIT_USAGE = 0, 1, 2
ARRAY_SHOWN = 16  # topic echo prints this many items of a long array, then a count


def _bus_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--connect",
        action="append",
        metavar="ENDPOINT",
        help="Zenoh endpoint to connect to (default $MM_ROS_CONNECT or "
        "tcp/127.0.0.1:7447); repeatable",
    )
    parser.add_argument("--domain", type=int, help="ROS domain id (default $ROS_DOMAIN_ID or 0)")
    parser.add_argument(
        "--distro",
        choices=["humble", "jazzy", "kilted"],
        help="ROS 2 distro of the peers (hashes in keys; default jazzy)",
    )
    parser.add_argument(
        "--mode",
        choices=["peer", "client"],
        help="Zenoh mode: peer (default) or client (e.g. from a headset)",
    )
    parser.add_argument(
        "--zenoh-config",
        metavar="FILE",
        help="Zenoh JSON5 config the session starts from: TLS, mutual TLS, access control "
        "(default $ZENOH_SESSION_CONFIG_URI); its settings win over the flags above",
    )


def open_cli_bus(args: argparse.Namespace) -> ZenohBus:
    """Open a node named after the CLI process on the configured endpoint."""
    from mm_ros.bus.protocol import BusConfig
    from mm_ros.bus.zenoh_bus import ZenohBus

    config = BusConfig.from_env(
        connect=tuple(args.connect) if args.connect else None,
        domain=args.domain,
        distro=args.distro,
        mode=args.mode,
        zenoh_config=args.zenoh_config,
    )
    return ZenohBus(f"mm_ros_cli_{os.getpid()}", config=config)


def register(subparsers: Any) -> None:  # noqa: PLR0915 - one flat table of subcommands
    """Add the bus subcommands."""
    router = subparsers.add_parser("router", help="run a Zenoh router (stand-in for rmw_zenohd)")
    router.add_argument(
        "--listen",
        action="append",
        metavar="ENDPOINT",
        help="endpoint to listen on (default $MM_ROS_CONNECT or tcp/127.0.0.1:7447); repeatable",
    )
    router.add_argument(
        "--connect", action="append", metavar="ENDPOINT", help="other routers to mesh with"
    )
    router.add_argument(
        "--zenoh-config",
        metavar="FILE",
        help="Zenoh JSON5 router config: TLS certificates, mutual TLS, access control "
        "(default $ZENOH_ROUTER_CONFIG_URI); its settings win over --listen/--connect",
    )
    router.set_defaults(handler=_router)

    topic = subparsers.add_parser("topic", help="list, echo, measure and publish topics")
    topics = topic.add_subparsers(dest="topic_command", metavar="SUBCOMMAND", required=True)
    listing = topics.add_parser("list", help="topics visible on the bus")
    _bus_options(listing)
    listing.add_argument("-t", "--show-types", action="store_true", help="print types too")
    listing.set_defaults(handler=_topic_list)
    echo = topics.add_parser("echo", help="print messages as YAML documents")
    _bus_options(echo)
    echo.add_argument("topic")
    echo.add_argument("--type", help="message type; default: the type its publishers announce")
    echo.add_argument("--count", type=int, help="exit after this many messages")
    echo.add_argument("--timeout", type=float, help="exit with code 1 after this many seconds")
    echo.add_argument("--full", action="store_true", help="print long arrays in full")
    echo.set_defaults(handler=_topic_echo)
    hz = topics.add_parser("hz", help="measure the publishing rate")
    _bus_options(hz)
    hz.add_argument("topic")
    hz.add_argument("--type", help="message type; default: the type its publishers announce")
    hz.add_argument("--window", type=int, default=100, help="messages per statistic")
    hz.add_argument("--duration", type=float, help="stop after this many seconds")
    hz.set_defaults(handler=_topic_hz)
    pub = topics.add_parser("pub", help="publish a message given as YAML")
    _bus_options(pub)
    pub.add_argument("topic")
    pub.add_argument("type", help="e.g. std_msgs/msg/String")
    pub.add_argument("values", nargs="?", default="{}", help="YAML, e.g. '{data: hi}'")
    pub.add_argument("--rate", type=float, default=1.0, help="Hz (default 1)")
    pub.add_argument("--count", type=int, help="publish this many, then exit (default: forever)")
    pub.add_argument("--qos", choices=["reliable", "sensor_data", "latched"], default="reliable")
    pub.set_defaults(handler=_topic_pub)

    node = subparsers.add_parser("node", help="nodes on the bus")
    nodes = node.add_subparsers(dest="node_command", metavar="SUBCOMMAND", required=True)
    node_list = nodes.add_parser("list", help="fully qualified names of the visible nodes")
    _bus_options(node_list)
    node_list.set_defaults(handler=_node_list)

    service = subparsers.add_parser("service", help="call services")
    services = service.add_subparsers(dest="service_command", metavar="SUBCOMMAND", required=True)
    call = services.add_parser("call", help="call a service with a YAML request")
    _bus_options(call)
    call.add_argument("name")
    call.add_argument("type", help="e.g. lifecycle_msgs/srv/GetState")
    call.add_argument("values", nargs="?", default="{}", help="YAML request")
    call.add_argument("--timeout", type=float, default=5.0, help="seconds (default 5)")
    call.set_defaults(handler=_service_call)

    action = subparsers.add_parser("action", help="send action goals")
    actions = action.add_subparsers(dest="action_command", metavar="SUBCOMMAND", required=True)
    send = actions.add_parser("send", help="send a goal given as YAML and wait for the result")
    _bus_options(send)
    send.add_argument("name")
    send.add_argument("type", help="e.g. mm_ros/action/Ask")
    send.add_argument("values", nargs="?", default="{}", help="YAML goal")
    send.add_argument("--feedback", action="store_true", help="print feedback as it arrives")
    send.add_argument("--timeout", type=float, default=60.0, help="seconds for the result")
    send.set_defaults(handler=_action_send)

    bag = subparsers.add_parser("bag", help="record, play and inspect rosbag2 bags")
    bags = bag.add_subparsers(dest="bag_command", metavar="SUBCOMMAND", required=True)
    record = bags.add_parser("record", help="record topics into a new rosbag2 bag")
    _bus_options(record)
    record.add_argument("topics", nargs="+", help="topics to record (types from the graph)")
    record.add_argument("-o", "--output", required=True, help="bag folder to create")
    record.add_argument("--storage", choices=["mcap", "sqlite3"], default="mcap")
    record.add_argument("--duration", type=float, help="stop after this many seconds")
    record.add_argument(
        "--type",
        action="append",
        default=[],
        metavar="TOPIC:=TYPE",
        help="type of a topic that has no publisher yet",
    )
    record.set_defaults(handler=_bag_record)
    play = bags.add_parser("play", help="publish a bag's messages with their recorded timing")
    _bus_options(play)
    play.add_argument("bag", help="bag folder or storage file")
    play.add_argument("--rate", type=float, default=1.0, help="speed factor (default 1)")
    play.add_argument("--loop", action="store_true", help="start again at the end")
    play.add_argument(
        "--clock",
        type=float,
        nargs="?",
        const=40.0,
        default=None,
        metavar="HZ",
        help="publish /clock from the bag's time (HZ between messages, default 40) and at "
        "every message's time, for nodes with use_sim_time",
    )
    play.set_defaults(handler=_bag_play)
    info = bags.add_parser("info", help="topics, types, counts, rates and duration of a bag")
    info.add_argument("bag", help="bag folder or storage file")
    info.set_defaults(handler=_bag_info)

    run = subparsers.add_parser("run", help="run an mm_ros executable (pip twin of `ros2 run`)")
    run.add_argument("executable")
    run.add_argument("arguments", nargs=argparse.REMAINDER, help="e.g. --ros-args -p seed:=7")
    run.set_defaults(handler=_run)


# -- helpers -----------------------------------------------------------------------------


def _yaml_values(text: str, what: str) -> dict[str, Any]:
    import yaml

    try:
        values = yaml.safe_load(text) if text.strip() else {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{what} is not valid YAML: {err}") from err
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise ConfigError(f"{what}: expected a YAML map like '{{data: hi}}', found {text!r}")
    return values


def _shorten(value: Any, full: bool) -> Any:
    if isinstance(value, dict):
        return {k: _shorten(v, full) for k, v in value.items()}
    if isinstance(value, list):
        if not full and len(value) > ARRAY_SHOWN:
            return [
                *(_shorten(v, full) for v in value[:ARRAY_SHOWN]),
                f"... {len(value) - ARRAY_SHOWN} more ({len(value)} items)",
            ]
        return [_shorten(v, full) for v in value]
    return value


def to_yaml(message: Any, *, full: bool = False) -> str:
    """Return a message as a YAML document (long arrays shortened unless ``full``)."""
    import yaml

    from mm_ros.interfaces.values import to_dict

    return str(
        yaml.safe_dump(
            _shorten(to_dict(message), full), sort_keys=False, allow_unicode=True, width=100
        )
    )


def _publishers(bus: ZenohBus, topic: str) -> list[GraphEntity]:
    from mm_ros.bus.naming import EntityKind

    return [e for e in bus.graph() if e.kind is EntityKind.PUBLISHER and e.name == topic]


def _topic_type(
    bus: ZenohBus, topic: str, given: str | None, timeout_s: float | None
) -> tuple[str, Any]:
    """Return the type to subscribe with and the QoS matching the publishers."""
    from mm_ros.bus.naming import RELIABLE

    deadline = time.monotonic() + (timeout_s if timeout_s is not None else 10.0)
    pubs = _publishers(bus, topic)
    while not pubs and not given:  # without --type, wait for a publisher to learn the type
        if time.monotonic() >= deadline:
            msg = f"no publisher of {topic} visible on the bus; pass --type to wait for one"
            raise MmRosError(msg)
        time.sleep(0.1)
        pubs = _publishers(bus, topic)
    types = sorted({p.typename for p in pubs})
    if given:
        typename = bus.store.resolve(given)
    elif len(types) == 1:
        typename = types[0]
    else:
        raise MmRosError(f"{topic} is published with several types {types}; pass --type")
    latched = [p.qos for p in pubs if p.qos is not None and p.qos.durability.value == 1]
    return typename, (latched[0] if latched else RELIABLE)


# -- handlers ----------------------------------------------------------------------------


def _router(args: argparse.Namespace) -> int:
    from mm_ros.bus.protocol import DEFAULT_CONNECT
    from mm_ros.bus.zenoh_session import ROUTER_CONFIG_ENV, Router

    env = os.environ.get("MM_ROS_CONNECT")
    listen = tuple(args.listen or (env.split(",") if env else [DEFAULT_CONNECT]))
    config_file = args.zenoh_config or os.environ.get(ROUTER_CONFIG_ENV, "")
    router = Router(listen, tuple(args.connect or ()), config_file).start()
    print(
        f"Zenoh router {router.zid} listening on {', '.join(router.listen)} (Ctrl-C to stop)",
        flush=True,
    )
    _stop_on_signals().wait()
    router.stop()
    return EXIT_OK


def _topic_list(args: argparse.Namespace) -> int:
    from mm_ros.bus.naming import EntityKind

    with open_cli_bus(args) as bus:
        topics: dict[str, set[str]] = {}
        for entity in bus.graph():
            if entity.kind in (EntityKind.PUBLISHER, EntityKind.SUBSCRIPTION):
                topics.setdefault(entity.name, set()).add(entity.typename)
    for name in sorted(topics):
        print(f"{name} [{', '.join(sorted(topics[name]))}]" if args.show_types else name)
    return EXIT_OK


def _topic_echo(args: argparse.Namespace) -> int:
    import queue

    with open_cli_bus(args) as bus:
        topic = bus.resolve(args.topic)
        typename, qos = _topic_type(bus, topic, args.type, args.timeout)
        messages: queue.SimpleQueue[Any] = queue.SimpleQueue()
        bus.create_subscription(topic, typename, messages.put, qos)
        deadline = time.monotonic() + args.timeout if args.timeout else None
        shown = 0
        while args.count is None or shown < args.count:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                print(
                    f"mm-ros topic echo: {shown} message(s) on {topic} within {args.timeout:g} s",
                    file=sys.stderr,
                )
                return EXIT_RUNTIME if args.count else EXIT_OK
            try:
                message = messages.get(timeout=min(remaining or 0.5, 0.5))
            except queue.Empty:
                if bus.shutdown_requested:
                    return EXIT_OK
                continue
            sys.stdout.write(to_yaml(message, full=args.full) + "---\n")
            sys.stdout.flush()
            shown += 1
    return EXIT_OK


def _topic_hz(args: argparse.Namespace) -> int:
    import threading

    import numpy as np

    with open_cli_bus(args) as bus:
        topic = bus.resolve(args.topic)
        typename, qos = _topic_type(bus, topic, args.type, None)
        stamps: list[float] = []
        lock = threading.Lock()

        def arrived(_item: Any) -> None:
            with lock:
                stamps.append(time.monotonic())
                del stamps[: -args.window - 1]

        bus.create_subscription(topic, typename, arrived, qos, raw=True)
        end = time.monotonic() + args.duration if args.duration else None
        while end is None or time.monotonic() < end:
            bus.spin(1.0)
            if bus.shutdown_requested:
                break
            with lock:
                gaps = np.diff(stamps) if len(stamps) > 1 else np.array([])
            if gaps.size:
                print(
                    f"average rate: {1.0 / gaps.mean():.3f}\n\tmin: {gaps.min():.3f}s "
                    f"max: {gaps.max():.3f}s std dev: {gaps.std():.5f}s window: "
                    f"{gaps.size + 1}",
                    flush=True,
                )
            else:
                print(f"no new messages on {topic}", flush=True)
    return EXIT_OK


def _topic_pub(args: argparse.Namespace) -> int:
    from mm_ros.bus.naming import PRESETS, EntityKind
    from mm_ros.interfaces.values import from_dict

    if args.rate <= 0:
        raise ConfigError(f"--rate must be > 0 Hz, found {args.rate}")
    values = _yaml_values(args.values, "message")
    from mm_ros.interfaces import get_store

    from_dict(get_store(args.distro or "jazzy"), args.type, values)  # bad type/values: no bus
    with open_cli_bus(args) as bus:
        topic = bus.resolve(args.topic)
        message = from_dict(bus.store, args.type, values)
        publisher = bus.create_publisher(topic, args.type, PRESETS[args.qos])
        deadline = time.monotonic() + 1.0  # give subscribers a moment to match, like ros2 -w
        while time.monotonic() < deadline and not any(
            e.kind is EntityKind.SUBSCRIPTION and e.name == topic and e.zid != bus.zid
            for e in bus.graph(timeout_s=0.3)
        ):
            time.sleep(0.05)
        sent = 0
        next_at = time.monotonic()
        while args.count is None or sent < args.count:
            publisher.publish(message)
            sent += 1
            print(f"publishing #{sent}: {values}", flush=True)
            next_at += 1.0 / args.rate
            bus.spin(max(0.0, next_at - time.monotonic()))
            if bus.shutdown_requested:
                break
    return EXIT_OK


def _node_list(args: argparse.Namespace) -> int:
    from mm_ros.bus.naming import EntityKind

    with open_cli_bus(args) as bus:
        names = {
            f"{e.namespace.rstrip('/')}/{e.node}" for e in bus.graph() if e.kind is EntityKind.NODE
        }
    for name in sorted(names):
        print(name)
    return EXIT_OK


def _service_call(args: argparse.Namespace) -> int:
    values = _yaml_values(args.values, "request")
    with open_cli_bus(args) as bus:
        client = bus.create_client(args.name, args.type)
        if not client.wait_for_service(args.timeout):
            print(
                f"mm-ros service call: no server for {bus.resolve(args.name)} within "
                f"{args.timeout:g} s",
                file=sys.stderr,
            )
            return EXIT_RUNTIME
        response = client.call(values, timeout_s=args.timeout)
        sys.stdout.write(to_yaml(response))
    return EXIT_OK


def _action_send(args: argparse.Namespace) -> int:
    values = _yaml_values(args.values, "goal")
    with open_cli_bus(args) as bus:
        client = bus.create_action_client(args.name, args.type)
        if not client.wait_for_server(min(args.timeout, 10.0)):
            print(f"mm-ros action send: no server for {bus.resolve(args.name)}", file=sys.stderr)
            return EXIT_RUNTIME

        def show(feedback: Any) -> None:
            sys.stdout.write("feedback:\n" + to_yaml(feedback) + "---\n")
            sys.stdout.flush()

        goal = client.send_goal(values, feedback=show if args.feedback else None)
        if not goal.accepted:
            print("Goal rejected", file=sys.stderr)
            return EXIT_RUNTIME
        print(f"Goal accepted with ID: {goal.goal_id.hex()}", flush=True)
        status, result = goal.result(args.timeout)
        sys.stdout.write("result:\n" + to_yaml(result) + f"status: {status.name}\n")
    return EXIT_OK if status.name == "SUCCEEDED" else EXIT_RUNTIME


def _stop_on_signals() -> Any:
    import signal

    from mm_ros.core.stopping import StopFlag

    stop = StopFlag()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    return stop


def _bag_record(args: argparse.Namespace) -> int:
    from pathlib import Path

    from mm_ros.bus.bags import record
    from mm_ros.bus.ros_args import assignment

    given = dict(assignment(item, "--type") for item in args.type)
    stop = _stop_on_signals()
    with open_cli_bus(args) as bus:
        topics = {}
        for name in args.topics:
            topic = bus.resolve(name)
            topics[topic], _qos = _topic_type(bus, topic, given.get(name) or given.get(topic), 10)
        print(
            f"recording {', '.join(sorted(topics))} into {args.output} (Ctrl-C to stop)", flush=True
        )
        counts = record(
            bus,
            Path(args.output),
            topics,
            storage=args.storage,
            stop=stop,
            duration_s=args.duration,
        )
    for topic, count in sorted(counts.items()):
        print(f"{topic}: {count} messages")
    return EXIT_OK


def _bag_play(args: argparse.Namespace) -> int:
    from mm_ros.bus.bags import CLOCK_HZ, play
    from mm_ros.interfaces.bags import BagReader

    if args.rate <= 0:
        raise ConfigError(f"--rate must be > 0, found {args.rate}")
    bag = BagReader(args.bag)
    stop = _stop_on_signals()
    with open_cli_bus(args) as bus:
        sent = play(
            bus,
            bag,
            rate=args.rate,
            loop=args.loop,
            clock=args.clock is not None,
            clock_hz=CLOCK_HZ if args.clock is None else args.clock,
            stop=stop,
        )
    print(f"played {sent} messages from {args.bag}")
    return EXIT_OK


def _bag_info(args: argparse.Namespace) -> int:
    from mm_ros.interfaces.bags import BagReader

    bag = BagReader(args.bag)
    first, last = bag.duration_ns()
    duration = (last - first) / 1e9
    total = sum(t.count for t in bag.topics.values())
    size = sum(f.stat().st_size for f in bag.files)
    print(f"Files:        {', '.join(f.name for f in bag.files)}")
    print(f"Storage:      {bag.storage}")
    print(f"Bag size:     {size / 1e6:.1f} MB")
    print(f"Duration:     {duration:.3f} s")
    print(f"Start:        {first / 1e9:.3f}  End: {last / 1e9:.3f}")
    print(f"Messages:     {total}")
    print("Topics:")
    for info in sorted(bag.topics.values(), key=lambda t: t.name):
        rate = f"{(info.count - 1) / duration:.1f} Hz" if duration > 0 and info.count > 1 else "-"
        print(f"  {info.name} | {info.typename} | {info.count} msgs | {rate}")
    return EXIT_OK


def _run(args: argparse.Namespace) -> int:
    from mm_ros.cli.executables import EXECUTABLES, run_process

    if args.executable not in EXECUTABLES:
        print(
            f"mm-ros run: unknown executable {args.executable!r}; known: "
            f"{', '.join(sorted(EXECUTABLES))}",
            file=sys.stderr,
        )
        return EXIT_USAGE
    return run_process(args.executable, list(args.arguments))  # never returns: it exits
