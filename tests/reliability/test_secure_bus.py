"""The zenoh bus over TLS, mutual TLS and access control, configured by a Zenoh config file.

Certificates are made here (tests/reliability/certs.py); the router and the nodes read the same
JSON5 files a robot would pass with ``--zenoh-config`` / ``ZENOH_SESSION_CONFIG_URI``.
"""

from __future__ import annotations

import json
import re
import threading
import time
from typing import TYPE_CHECKING, Any

import pytest

from mm_ros.bus.naming import RELIABLE
from mm_ros.bus.protocol import BusConfig, BusUnavailableError
from mm_ros.bus.zenoh_bus import ZenohBus, wait_until
from mm_ros.bus.zenoh_session import Router
from mm_ros.core.errors import ConfigError
from tests.bus.conftest import free_port
from tests.reliability.certs import Authority, Leaf

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

WAIT_S = 20.0
STRING = "std_msgs/msg/String"


def tls_settings(ca: Path, leaf: Leaf | None, *, mutual: bool) -> dict[str, Any]:
    tls: dict[str, Any] = {"root_ca_certificate": str(ca), "enable_mtls": mutual}
    if leaf is not None:
        tls |= {
            "listen_certificate": str(leaf.certificate),
            "listen_private_key": str(leaf.key),
            "connect_certificate": str(leaf.certificate),
            "connect_private_key": str(leaf.key),
        }
    return {"transport": {"link": {"tls": tls}}}


def write(path: Path, config: dict[str, Any]) -> str:
    path.write_text(json.dumps(config, indent=2))  # JSON is JSON5
    return str(path)


@pytest.fixture
def authority(tmp_path: Path) -> Authority:
    return Authority(tmp_path / "pki")


@pytest.fixture
def nodes() -> Iterator[list[ZenohBus]]:
    opened: list[ZenohBus] = []
    yield opened
    for node in reversed(opened):
        node.close()


def tls_router(tmp_path: Path, ca: Authority, extra: dict[str, Any] | None = None) -> Router:
    config = tls_settings(ca.certificate, ca.issue("router"), mutual=True) | (extra or {})
    endpoint = f"tls/127.0.0.1:{free_port()}"
    return Router((endpoint,), config_file=write(tmp_path / "router.json5", config)).start()


def session_file(tmp_path: Path, name: str, ca: Path, leaf: Leaf | None, mode: str) -> str:
    config = tls_settings(ca, leaf, mutual=True) | {"mode": mode}
    if mode == "peer":  # peers listen too, over TLS as well (never a plain TCP port)
        config["listen"] = {"endpoints": ["tls/127.0.0.1:0"]}
    return write(tmp_path / f"{name}.json5", config)


def test_mutual_tls_bus_carries_topics_and_refuses_nodes_without_a_trusted_certificate(
    tmp_path: Path, authority: Authority, nodes: list[ZenohBus]
) -> None:
    router = tls_router(tmp_path, authority)
    try:
        endpoint = router.listen[0]
        robot = session_file(
            tmp_path, "robot", authority.certificate, authority.issue("robot"), "peer"
        )
        config = BusConfig(connect=(endpoint,), connect_timeout_s=3.0)
        talker = ZenohBus("talker", config=BusConfig(**{**config.__dict__, "zenoh_config": robot}))
        nodes.append(talker)
        # the node's own argument, as `model_service --zenoh-config FILE --ros-args ...`
        listener = ZenohBus("listener", args=["--zenoh-config", robot], config=config)
        nodes.append(listener)
        assert listener.config.zenoh_config == robot
        heard: list[str] = []
        got = threading.Event()

        def on_message(message: Any) -> None:
            heard.append(message.data)
            got.set()

        listener.create_subscription("/secure/chatter", STRING, on_message, RELIABLE)
        publisher = talker.create_publisher("/secure/chatter", STRING, RELIABLE)
        deadline = time.monotonic() + WAIT_S
        while not got.wait(0.1) and time.monotonic() < deadline:
            publisher.publish({"data": "over mutual TLS"})
        assert heard[:1] == ["over mutual TLS"]
        wait_until(
            lambda: {"/talker", "/listener"} <= set(talker.node_names()), WAIT_S, "both nodes"
        )

        stranger_ca = Authority(tmp_path / "other-pki", "someone else's CA")
        refused = {
            "no client certificate": session_file(
                tmp_path, "anonymous", authority.certificate, None, "client"
            ),
            "a certificate from another CA": session_file(
                tmp_path, "stranger", authority.certificate, stranger_ca.issue("robot"), "client"
            ),
        }
        for why, path in refused.items():
            expected = re.escape(f"or the endpoints in {path}")
            with pytest.raises(BusUnavailableError, match=expected) as err:
                ZenohBus(
                    "intruder",
                    config=BusConfig(connect=(endpoint,), connect_timeout_s=2.0, zenoh_config=path),
                )
            assert "check the certificates" in str(err.value), why
        plain = f"tcp/{endpoint.removeprefix('tls/')}"  # TCP to the TLS port: no session either
        with pytest.raises(BusUnavailableError):
            ZenohBus("plain", config=BusConfig(connect=(plain,), connect_timeout_s=2.0))
    finally:
        router.stop()


def test_router_access_control_drops_what_a_subject_may_not_put(
    tmp_path: Path, authority: Authority, nodes: list[ZenohBus]
) -> None:
    # clients route everything through the router, so its access control sees every sample;
    # the subject is the common name of the client's certificate (mutual TLS)
    acl = {
        "access_control": {
            "enabled": True,
            "default_permission": "allow",
            "rules": [
                {
                    "id": "no questions",
                    "permission": "deny",
                    "flows": ["ingress"],
                    "messages": ["put"],
                    "key_exprs": ["*/mm/question/**"],
                }
            ],
            "subjects": [{"id": "visitors", "cert_common_names": ["visitor"]}],
            "policies": [{"rules": ["no questions"], "subjects": ["visitors"]}],
        }
    }
    router = tls_router(tmp_path, authority, acl)
    try:
        config = BusConfig(connect=router.listen, mode="client", connect_timeout_s=3.0)

        def client(name: str) -> ZenohBus:
            path = session_file(
                tmp_path, name, authority.certificate, authority.issue(name), "client"
            )
            node = ZenohBus(name, config=BusConfig(**{**config.__dict__, "zenoh_config": path}))
            nodes.append(node)
            return node

        service, robot, visitor = client("service"), client("robot"), client("visitor")
        heard: list[tuple[str, str]] = []
        lock = threading.Lock()

        def keep(topic: str) -> Any:
            def on_message(message: Any) -> None:
                with lock:
                    heard.append((topic, message.data))

            return on_message

        for topic in ("/mm/question", "/mm/chat"):
            service.create_subscription(topic, STRING, keep(topic), RELIABLE)
        sends = [
            (visitor.create_publisher("/mm/question", STRING, RELIABLE), "visitor asks"),
            (robot.create_publisher("/mm/question", STRING, RELIABLE), "robot asks"),
            (visitor.create_publisher("/mm/chat", STRING, RELIABLE), "visitor chats"),
        ]
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            for publisher, text in sends:  # the visitor's question goes first every round
                publisher.publish({"data": text})
            time.sleep(0.1)
            with lock:
                texts = {text for _, text in heard}
            if {"robot asks", "visitor chats"} <= texts:
                break
        with lock:
            texts = {text for _, text in heard}
        assert {"robot asks", "visitor chats"} <= texts, heard
        assert "visitor asks" not in texts
    finally:
        router.stop()


def test_a_missing_or_broken_zenoh_config_is_a_clear_error(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.json5")
    expected = re.escape(f"Zenoh configuration file {missing!r} not found")
    with pytest.raises(ConfigError, match=expected):
        ZenohBus("n", config=BusConfig(zenoh_config=missing))
    broken = tmp_path / "broken.json5"
    broken.write_text("{ mode: ")
    with pytest.raises(ConfigError, match=r"broken\.json5' is not valid"):
        Router((f"tcp/127.0.0.1:{free_port()}",), config_file=str(broken)).start()
