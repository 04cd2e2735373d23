"""``bag_player``: replay a rosbag2 bag on the bus with ``/clock``, for replay launch files.

The launchable twin of ``mm-ros bag play --clock``: nodes started next to it with
``use_sim_time:=true`` run on the bag's time, so a replay gives the same windows (aligned by
header stamps) on any machine. It exits when the bag ends (unless ``loop``). ``wait_for_ask``
and ``wait_for_subscribers`` hold the start until the model service and the consumers are up.
On either bus: on rclpy it plays the topics whose message packages are built in the sourced
ROS 2 (a topic of any other type is skipped with a warning naming it).
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

from mm_ros.bus.bags import CLOCK_HZ, play
from mm_ros.bus.protocol import BusTimeoutError
from mm_ros.core.errors import ConfigError
from mm_ros.nodes.lifecycle import wait_until_active
from mm_ros.nodes.params import declare_config, param
from mm_ros.nodes.runner import run_node

if TYPE_CHECKING:
    from mm_ros.bus.protocol import Bus
    from mm_ros.interfaces.bags import BagReader

DESCRIPTION = __doc__ or ""
log = logging.getLogger("mm_ros.bag_player")


@dataclass(frozen=True)
class BagPlayerConfig:
    """Parameters of ``bag_player``."""

    bag: str = param("", "bag folder or storage file to play (required)")
    rate: float = param(1.0, "speed factor; sim-time nodes follow it")
    loop: bool = param(False, "start again at the end instead of exiting")
    clock: bool = param(True, "publish /clock from the bag's time")
    clock_hz: float = param(CLOCK_HZ, "/clock rate between messages (Hz of wall time)")
    topics: str = param("", "comma-separated topics to play; empty = all")
    wait_for_subscribers: str = param(
        "",
        "comma-separated topics that must have a subscriber "
        "before playing (the nodes that consume the bag are up)",
    )
    wait_for_ask: str = param(
        "",
        "an mm_ros/action/Ask server (e.g. /mm/ask) to wait for "
        "before playing: the model is loaded",
    )
    wait_timeout_s: float = param(120.0, "how long to wait for those, then fail")

    def __post_init__(self) -> None:
        if not self.bag:
            raise ConfigError("bag_player needs a bag: pass -p bag:=PATH (bag:=PATH in a launch)")
        if self.rate <= 0 or self.clock_hz <= 0:
            raise ConfigError(f"rate and clock_hz must be > 0, found {self.rate}, {self.clock_hz}")
        if self.wait_timeout_s <= 0:
            raise ConfigError(f"wait_timeout_s must be > 0, found {self.wait_timeout_s}")

    def topic_names(self) -> tuple[str, ...] | None:
        """Return the ``topics`` list (None: all)."""
        return _names(self.topics) or None


def _names(text: str) -> tuple[str, ...]:
    return tuple(t.strip() for t in text.split(",") if t.strip())


class BagPlayerNode:
    """Plays the bag on a worker thread from ``start``; closes its bus at the end."""

    name = "bag_player"
    description = DESCRIPTION
    Config = BagPlayerConfig

    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self.config = declare_config(bus, BagPlayerConfig)
        self.sent = 0
        self._stop = threading.Event()
        self._worker: threading.Thread | None = None

    def start(self) -> None:
        """Open the bag (errors surface here) and start playing."""
        from mm_ros.interfaces.bags import BagReader

        bag = BagReader(self.config.bag)
        wanted = self.config.topic_names()
        missing = [t for t in wanted or () if t not in bag.topics]
        if missing:
            raise ConfigError(
                f"topics {missing} are not in {self.config.bag}; it has {sorted(bag.topics)}"
            )
        self._wait_for_consumers()
        self._worker = threading.Thread(target=self._play, args=(bag,), name="bag", daemon=True)
        self._worker.start()

    def _wait_for_consumers(self) -> None:
        """Block until the Ask server and a subscriber of each listed topic are there.

        A replay that starts before the model is loaded feeds windows nobody asks about in
        time; one that starts before the evaluator listens changes which moments it scores.
        """
        from mm_ros.bus.zenoh_bus import wait_until

        cfg = self.config
        deadline = time.monotonic() + cfg.wait_timeout_s
        if cfg.wait_for_ask:
            client = self.bus.create_action_client(cfg.wait_for_ask, "mm_ros/action/Ask")
            log.info("waiting for the Ask server %s", cfg.wait_for_ask)
            node = cfg.wait_for_ask.rsplit("/", 1)[0] or "/"
            if not client.wait_for_server(cfg.wait_timeout_s) or not wait_until_active(
                self.bus, node, max(deadline - time.monotonic(), 0.0)
            ):
                raise BusTimeoutError(
                    f"no active Ask server on {cfg.wait_for_ask} after {cfg.wait_timeout_s:g} s "
                    f"(wait_for_ask); is the model service running and its model loaded?"
                )
        for topic in _names(cfg.wait_for_subscribers):
            left = max(deadline - time.monotonic(), 0.0)
            what = f"a subscriber of {topic} (wait_for_subscribers)"
            wait_until(partial(self._has_subscriber, topic), left, what)

    def _has_subscriber(self, topic: str) -> bool:
        return self.bus.count_subscribers(topic) > 0

    def _play(self, bag: BagReader) -> None:
        cfg = self.config
        try:
            self.sent = play(self.bus, bag, rate=cfg.rate, loop=cfg.loop, clock=cfg.clock,
                             clock_hz=cfg.clock_hz, stop=self._stop,
                             topics=cfg.topic_names())  # fmt: skip
            log.info("played %d messages from %s", self.sent, cfg.bag)
        finally:
            self.bus.request_shutdown()  # spin returns: the process ends with the bag

    def close(self) -> None:
        """Stop playing."""
        self._stop.set()
        if self._worker is not None and self._worker is not threading.current_thread():
            self._worker.join(timeout=5)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``bag_player``."""
    return run_node(BagPlayerNode, list(sys.argv[1:] if argv is None else argv))
