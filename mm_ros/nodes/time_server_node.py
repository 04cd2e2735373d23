"""``time_server``: answer headsets' clock exchanges with this machine's clock.

Run it on the robot (next to the router) so `mm_ros.stream.HeadsetStreamer` can convert its
stamps to the robot's clock. Requests and answers are ``sensor_msgs/TimeReference``.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mm_ros.nodes.params import declare_config, param
from mm_ros.nodes.runner import run_node
from mm_ros.stream.clock import REQUEST_TOPIC, RESPONSE_TOPIC, TimeServer

if TYPE_CHECKING:
    from mm_ros.bus.protocol import Bus

DESCRIPTION = __doc__ or ""


@dataclass(frozen=True)
class TimeServerConfig:
    """Parameters of ``time_server``."""

    request_topic: str = param(REQUEST_TOPIC, "TimeReference requests from headsets")
    response_topic: str = param(RESPONSE_TOPIC, "TimeReference answers (stamp = robot clock)")


class TimeServerNode:
    """A `TimeServer` on the node's bus."""

    name = "time_server"
    description = DESCRIPTION
    Config = TimeServerConfig

    def __init__(self, bus: Bus) -> None:
        self.config = declare_config(bus, TimeServerConfig)
        self.server = TimeServer(bus, self.config.request_topic, self.config.response_topic)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``time_server``."""
    return run_node(TimeServerNode, list(sys.argv[1:] if argv is None else argv))
