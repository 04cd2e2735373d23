"""``bag_player`` replays a bag with /clock; sim-time nodes follow it (zenoh bus)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from mm_ros.bus import QoS
from mm_ros.bus.zenoh_bus import wait_until
from mm_ros.core.errors import ConfigError
from mm_ros.nodes.bag_player_node import BagPlayerNode
from tests.bus.test_bags import write_ticks


def test_plays_with_clock_then_closes(make_zenoh, tmp_path: Path) -> None:
    stamps = write_ticks(tmp_path / "ticks", 5, 1_700_000_000_000_000_000, 50_000_000)
    listener = make_zenoh("monitor", ["--ros-args", "-p", "use_sim_time:=true"])
    got: list[str] = []
    listener.create_subscription("/tick", "std_msgs/msg/String", lambda m: got.append(m.data),
                                 QoS(depth=100))  # fmt: skip
    bus = make_zenoh("bag_player", ["--ros-args", "-p", f"bag:={tmp_path / 'ticks'}",
                                    "-p", "rate:=5.0"])  # fmt: skip
    player = BagPlayerNode(bus)
    player.start()
    closed = threading.Event()
    threading.Thread(target=lambda: (bus.spin(30), closed.set()), daemon=True).start()
    assert closed.wait(30), "the player's bus stays open after the bag ended"
    assert player.sent == 5
    wait_until(lambda: len(got) == 5, 10, "5 replayed messages")
    assert got == [str(i) for i in range(5)]
    wait_until(lambda: listener.now_ns() == stamps[-1], 10, "the listener on bag time")
    player.close()


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ([], r"bag_player needs a bag: pass -p bag:=PATH"),
        (["-p", "bag:=x", "-p", "rate:=0.0"], r"rate and clock_hz must be > 0, found 0\.0"),
    ],
)
def test_bad_parameters(make_zenoh, args: list[str], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        BagPlayerNode(make_zenoh("bag_player", ["--ros-args", *args]))


def test_missing_bag_fails_at_start(make_zenoh, tmp_path: Path) -> None:
    from mm_ros.interfaces.bags import BagError

    node = BagPlayerNode(make_zenoh("bag_player", ["--ros-args", "-p", f"bag:={tmp_path}/nope"]))
    with pytest.raises(BagError, match="does not exist"):
        node.start()
