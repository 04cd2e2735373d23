"""Bags over the zenoh bus: record, open with plain rosbags, replay with timing, real bags."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from mm_ros.bus import RELIABLE, SENSOR_DATA, QoS
from mm_ros.bus.bags import play, record
from mm_ros.bus.zenoh_bus import wait_until
from mm_ros.core.errors import ConfigError
from mm_ros.interfaces import get_store
from mm_ros.interfaces.bags import BagError, BagReader, BagWriter


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_record_image_imu_string_then_read_with_rosbags(
    make_zenoh, tmp_path: Path, storage: str
) -> None:
    from rosbags.highlevel import AnyReader

    talker, recorder = make_zenoh("talker"), make_zenoh("recorder")
    topics = {
        "/camera/image": "sensor_msgs/msg/Image",
        "/imu": "sensor_msgs/msg/Imu",
        "/chatter": "std_msgs/msg/String",
    }
    image = talker.create_publisher("/camera/image", topics["/camera/image"], SENSOR_DATA)
    imu = talker.create_publisher("/imu", topics["/imu"], SENSOR_DATA)
    chatter = talker.create_publisher("/chatter", topics["/chatter"], RELIABLE)
    stop = threading.Event()
    out = tmp_path / "bag"
    counts: dict[str, int] = {}
    thread = threading.Thread(
        target=lambda: counts.update(record(recorder, out, topics, storage=storage, stop=stop))
    )
    thread.start()
    wait_until(lambda: talker.count_subscribers("/imu") > 0, 10, "the recorder")
    frame = talker.msg("sensor_msgs/msg/Image")(
        height=480,
        width=640,
        encoding="rgb8",
        step=1920,
        data=np.full(480 * 640 * 3, 7, dtype=np.uint8),
    )
    for tick in range(400):  # 2 s or more of 200 Hz IMU, 30 Hz image, 10 Hz string
        imu.publish({"linear_acceleration": {"z": 9.81}})
        if tick % 7 == 0:
            image.publish(frame)
        if tick % 20 == 0:
            chatter.publish({"data": f"n{tick}"})
        time.sleep(0.005)
    time.sleep(0.3)
    stop.set()
    thread.join(10)
    assert counts["/imu"] > 100
    assert counts["/camera/image"] > 20
    store = get_store()
    with AnyReader([out]) as reader:
        by_topic = {c.topic: c for c in reader.connections}
        assert {t: c.msgtype for t, c in by_topic.items()} == topics
        for topic, typename in topics.items():
            assert by_topic[topic].digest == store.hash(typename)
        seen = dict.fromkeys(topics, 0)
        for connection, _stamp, raw in reader.messages():
            seen[connection.topic] += 1
            if connection.topic == "/camera/image":
                msg = reader.deserialize(raw, connection.msgtype)
                assert (msg.width, msg.height, int(msg.data[0])) == (640, 480, 7)
    assert seen == counts


def test_replay_at_twice_the_speed(make_zenoh, tmp_path: Path) -> None:
    store = get_store()
    path = tmp_path / "paced"
    writer = BagWriter(path, store)
    writer.add_topic("/tick", "std_msgs/msg/String")
    t0 = 1_700_000_000_000_000_000
    for i in range(30):  # 30 messages at 20 Hz: 1.45 s of bag, 0.725 s at 2x
        message = store.msg("std_msgs/msg/String")(data=str(i))
        writer.write("/tick", t0 + i * 50_000_000, store.serialize(message, "std_msgs/msg/String"))
    writer.close()
    player, listener = make_zenoh("player"), make_zenoh("listener")
    arrivals: list[tuple[str, float]] = []
    listener.create_subscription(
        "/tick",
        "std_msgs/msg/String",
        lambda m: arrivals.append((m.data, time.monotonic())),
        RELIABLE,
    )
    sent = play(player, BagReader(path), rate=2.0, stop=threading.Event())
    wait_until(lambda: len(arrivals) == 30, 10, "30 replayed messages")
    assert sent == 30
    assert [a[0] for a in arrivals] == [str(i) for i in range(30)]
    span = arrivals[-1][1] - arrivals[0][1]
    # 2x: half the recorded 1.45 s; a stall on a busy machine only lengthens it, and 1x would
    # take 1.45 s
    assert 0.725 * 0.7 < span < 0.725 * 1.9


def test_real_talker_bag_plays(shared_bags: Path, make_zenoh) -> None:
    player, listener = make_zenoh("player"), make_zenoh("listener")
    got: list[str] = []
    listener.create_subscription(
        "/topic", "std_msgs/msg/String", lambda m: got.append(m.data), RELIABLE
    )
    sent = play(player, BagReader(shared_bags / "talker"), rate=8.0, stop=threading.Event())
    wait_until(lambda: len(got) == 10, 10, "the talker's 10 strings")
    assert sent == 20
    assert got == [f"Hello, world! {i}" for i in range(10)]


def test_bad_bags_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(BagError, match="does not exist"):
        BagReader(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BagError, match=r"no \.mcap or \.db3"):
        BagReader(tmp_path / "empty")
    existing = tmp_path / "exists"
    existing.mkdir()
    with pytest.raises(BagError, match="exists already"):
        BagWriter(existing, get_store())


def write_ticks(path: Path, count: int, t0: int, spacing_ns: int) -> list[int]:
    """A bag of ``count`` std_msgs/String on /tick; return the recorded stamps."""
    store = get_store()
    writer = BagWriter(path, store)
    writer.add_topic("/tick", "std_msgs/msg/String")
    stamps = [t0 + i * spacing_ns for i in range(count)]
    for i, stamp in enumerate(stamps):
        message = store.msg("std_msgs/msg/String")(data=str(i))
        writer.write("/tick", stamp, store.serialize(message, "std_msgs/msg/String"))
    writer.close()
    return stamps


def test_replay_clock_gives_sim_time_nodes_the_bag_time(make_zenoh, tmp_path: Path) -> None:
    t0 = 1_700_000_000_123_456_789
    stamps = write_ticks(tmp_path / "ticks", 12, t0, 100_000_000)  # 1.1 s of bag, 0.275 s at 4x
    player = make_zenoh("player")
    node = make_zenoh("replayed", ["--ros-args", "-p", "use_sim_time:=true"])
    seen: list[tuple[int, int]] = []  # (message index, node clock when it arrived)
    clocks: list[int] = []
    node.create_subscription(
        "/tick", "std_msgs/msg/String", lambda m: seen.append((int(m.data), node.now_ns())),
        QoS(depth=100),
    )  # fmt: skip
    node.create_subscription(
        "/clock",
        "rosgraph_msgs/msg/Clock",
        lambda m: clocks.append(m.clock.sec * 10**9 + m.clock.nanosec),
        QoS(depth=1000),
    )
    assert node.now_ns() == 0  # sim time and no /clock yet
    sent = play(player, BagReader(tmp_path / "ticks"), rate=4.0, clock=True, stop=threading.Event())
    assert sent == 12
    wait_until(lambda: len(seen) == 12, 10, "12 replayed messages")
    assert [i for i, _ in seen] == list(range(12))
    # Zenoh (like DDS) orders samples per topic only: at a message's arrival the node's clock is
    # the bag time give or take one clock tick, never wall time (and not yet set, at most, for
    # the very first message)
    assert all(t0 <= now <= stamps[-1] for _, now in seen[1:])
    wait_until(lambda: node.now_ns() == stamps[-1], 10, "the clock at the last message's time")
    assert set(stamps) <= set(clocks)  # every message's own time went out on /clock
    assert min(clocks) == t0
    assert max(clocks) == stamps[-1]
    assert len(clocks) > len(stamps)  # ticks between messages too (40 Hz of wall time)


def test_replay_without_clock_announces_no_clock(make_zenoh, tmp_path: Path) -> None:
    write_ticks(tmp_path / "ticks", 2, 1_700_000_000_000_000_000, 1_000_000)
    player, observer = make_zenoh("player"), make_zenoh("observer")
    play(player, BagReader(tmp_path / "ticks"), stop=threading.Event())
    wait_until(lambda: observer.count_publishers("/tick") == 1, 10, "the /tick publisher")
    assert observer.count_publishers("/clock") == 0


@pytest.mark.parametrize(
    ("flags", "clock"), [([], None), (["--clock"], 40.0), (["--clock", "100"], 100.0)]
)
def test_bag_play_clock_flag(flags: list[str], clock: float | None) -> None:
    from mm_ros.cli.main import build_parser

    args = build_parser().parse_args(["bag", "play", "some_bag", *flags])
    assert args.clock == clock


def test_replay_rejects_bad_rates(make_zenoh, tmp_path: Path) -> None:
    write_ticks(tmp_path / "ticks", 1, 1_700_000_000_000_000_000, 1)
    player = make_zenoh("player")
    with pytest.raises(ConfigError, match=r"found 1\.0, 0"):
        play(player, BagReader(tmp_path / "ticks"), clock=True, clock_hz=0, stop=threading.Event())
