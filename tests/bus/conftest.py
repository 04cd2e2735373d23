"""Fixtures for bus tests: a Zenoh router on a free port, nodes on either implementation.

``make_node`` is parametrized over the implementations; rclpy runs where it is importable
(the ROS tier runs this suite again inside the colcon-built workspace, see the Makefile).
"""

from __future__ import annotations

import importlib.util
import os
import socket
from collections.abc import Iterator

import pytest

from mm_ros.bus.protocol import BusConfig


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def router() -> Iterator[str]:
    from mm_ros.bus.zenoh_session import Router

    endpoint = f"tcp/127.0.0.1:{free_port()}"
    with Router((endpoint,)):
        yield endpoint


def _rclpy_ready() -> str | None:
    if importlib.util.find_spec("rclpy") is None:
        return "rclpy is not importable here; `make test` runs this suite in the ROS tier too"
    try:
        importlib.import_module("mm_ros.msg")
    except ImportError:
        return "mm_ros interfaces are not built here (source .ros/env.sh)"
    return None


@pytest.fixture
def make_zenoh(router: str) -> Iterator:
    """Nodes on the zenoh bus only (wire-format tests)."""
    from mm_ros.bus.zenoh_bus import ZenohBus

    nodes: list[ZenohBus] = []

    def make(name: str, args: list[str] | None = None) -> ZenohBus:
        node = ZenohBus(name, args=args, config=BusConfig(connect=(router,)))
        nodes.append(node)
        return node

    yield make
    for node in reversed(nodes):
        node.close()


@pytest.fixture(params=["zenoh", "rclpy"])
def make_node(request: pytest.FixtureRequest) -> Iterator:
    nodes: list = []
    if request.param == "rclpy":
        why = _rclpy_ready()
        if why and os.environ.get("MM_ROS_REQUIRE_RCLPY"):
            pytest.fail(f"the ROS tier run must exercise rclpy: {why}")
        if why:
            pytest.skip(why)
        from mm_ros.bus.rclpy_bus import RclpyBus

        def make(name: str, args: list[str] | None = None):
            node = RclpyBus(name, args=args)
            nodes.append(node)
            return node
    else:
        from mm_ros.bus.zenoh_bus import ZenohBus

        endpoint = request.getfixturevalue("router")

        def make(name: str, args: list[str] | None = None):
            node = ZenohBus(name, args=args, config=BusConfig(connect=(endpoint,)))
            nodes.append(node)
            return node

    yield make
    for node in reversed(nodes):
        node.close()
