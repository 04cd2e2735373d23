"""Fixtures for bus tests: a Zenoh router on a free port, and nodes connected to it."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from mm_ros.bus.protocol import BusConfig
from mm_ros.bus.zenoh_bus import ZenohBus
from mm_ros.bus.zenoh_session import Router


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def router() -> Iterator[str]:
    endpoint = f"tcp/127.0.0.1:{free_port()}"
    with Router((endpoint,)):
        yield endpoint


@pytest.fixture
def make_node(router: str) -> Iterator:
    nodes: list[ZenohBus] = []

    def make(name: str, args: list[str] | None = None, **config) -> ZenohBus:
        node = ZenohBus(name, args=args, config=BusConfig(connect=(router,), **config))
        nodes.append(node)
        return node

    yield make
    for node in nodes:
        node.close()
