"""``mm-ros bag record | play``: rosbag2 recording (zenoh bus) and replay (either bus).

Recording stores the CDR bytes exactly as received with the receive time (what rosbag2 does);
replay publishes them again with the recorded spacing divided by ``rate``, optionally looping
and publishing ``/clock`` so nodes with ``use_sim_time`` follow the bag's time.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mm_ros.bus import naming
from mm_ros.bus.naming import QoS
from mm_ros.bus.protocol import BusError
from mm_ros.core.errors import ConfigError
from mm_ros.interfaces.bags import BagReader, BagWriter, QosProfile

if TYPE_CHECKING:
    from collections.abc import Collection

    from mm_ros.bus.protocol import Bus
    from mm_ros.bus.zenoh_bus import ZenohBus

log = logging.getLogger("mm_ros.bags")
CLOCK_HZ = 40.0  # /clock rate between messages: `ros2 bag play --clock` without a value
CLOCK_TYPE = "rosgraph_msgs/msg/Clock"
CLOCK_QOS = QoS(naming.Reliability.BEST_EFFORT, depth=1)  # rclcpp::ClockQoS: only the newest


def _offered(profile: QosProfile) -> QoS:
    """Return what the player offers for a recorded topic: reliable, transient-local.

    A DDS reader that asks for more than the writer offers gets nothing (a latched
    ``AudioInfo`` subscriber from a volatile player, a reliable one from a best-effort player),
    and a bag may have recorded either; the most a writer can offer matches every reader, and
    only readers that ask for history get it. History and depth stay as recorded.
    """
    return QoS(naming.Reliability.RELIABLE, naming.Durability.TRANSIENT_LOCAL,
               naming.History(profile.history), max(profile.depth, 1))  # fmt: skip


def record(bus: ZenohBus, out: Path, topics: dict[str, str], *, storage: str = "mcap",
           stop: threading.Event, duration_s: float | None = None) -> dict[str, int]:  # fmt: skip
    """Record ``{topic: type}`` into a new bag until ``stop`` is set or the duration ends.

    Callbacks only stamp and enqueue (unbounded: a recorder must not drop); this thread, which
    owns the storage (sqlite3 objects are tied to their thread), writes.
    """
    writer = BagWriter(out, bus.store, storage)
    counts = dict.fromkeys(topics, 0)
    pending: queue.SimpleQueue[tuple[str, int, bytes]] = queue.SimpleQueue()
    end = time.monotonic() + duration_s if duration_s is not None else None

    def drain() -> None:
        while True:
            try:
                topic, stamp, payload = pending.get_nowait()
            except queue.Empty:
                return
            writer.write(topic, stamp, payload)
            counts[topic] += 1

    try:
        for topic, typename in topics.items():
            writer.add_topic(topic, typename)

            def enqueue(item: Any, topic: str = topic) -> None:
                pending.put((topic, time.time_ns(), item[1]))

            bus.create_subscription(topic, typename, enqueue, QoS(depth=1000), raw=True)
        while not stop.wait(0.05):
            drain()
            if end is not None and time.monotonic() >= end:
                break
        drain()
    finally:
        writer.close()
    return counts


def play(bus: Bus, bag: BagReader, *, rate: float = 1.0, loop: bool = False,
         clock: bool = False, clock_hz: float = CLOCK_HZ, stop: threading.Event,
         topics: Collection[str] | None = None) -> int:  # fmt: skip
    """Publish a bag's messages with their recorded spacing / ``rate``; return how many.

    With ``clock``, ``/clock`` carries the bag's time: every ``1 / clock_hz`` s of wall time
    while waiting, and each message's recorded time just before that message. A node with
    ``use_sim_time`` then runs on bag time whatever the machine's speed or ``rate``; since
    Zenoh (like DDS) orders samples per topic only, its clock at a message's arrival is that
    message's time give or take one tick, so windows align by header stamps, not by arrival.
    ``topics`` (None: all) plays only those; /clock still follows every message's time.
    """
    if rate <= 0 or clock_hz <= 0:
        raise ConfigError(f"rate and clock_hz must be > 0, found {rate}, {clock_hz}")
    publishers = {}
    for info in bag.topics.values():
        if topics is not None and info.name not in topics:
            continue
        store = getattr(bus, "store", None)  # the zenoh bus learns types from the bag itself
        if store is not None and info.schema and info.typename not in store.names():
            store.add_schema(info.schema, info.typename)
        try:
            publishers[info.name] = bus.create_publisher(
                info.name, info.typename, _offered(info.qos)
            )
        except BusError as err:  # rclpy: a type whose package is not built here
            log.warning("not playing %s (%s): %s", info.name, info.typename, err)
    clock_pub = bus.create_publisher("/clock", CLOCK_TYPE, CLOCK_QOS) if clock else None

    def tick(stamp_ns: int) -> None:
        if clock_pub is not None:
            clock_pub.publish({"clock": {"sec": stamp_ns // 10**9, "nanosec": stamp_ns % 10**9}})

    time.sleep(0.5)  # let subscribers that were waiting for these topics match
    period_s = 1.0 / clock_hz
    sent = 0
    while not stop.is_set():
        start_wall, start_bag = time.monotonic(), None
        for message in bag.messages():
            if start_bag is None:
                start_bag = message.timestamp_ns
            due = start_wall + (message.timestamp_ns - start_bag) / 1e9 / rate
            while (wait := due - time.monotonic()) > 0:
                tick(start_bag + int((time.monotonic() - start_wall) * rate * 1e9))
                if stop.wait(min(wait, period_s) if clock_pub else wait):
                    return sent
            tick(message.timestamp_ns)
            publisher = publishers.get(message.topic)
            if publisher is not None:
                publisher.publish_raw(message.data)
                sent += 1
        if not loop:
            break
    return sent
