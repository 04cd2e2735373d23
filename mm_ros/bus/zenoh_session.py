"""Zenoh sessions configured as rmw_zenoh configures them, and the in-process router.

rmw_zenoh defaults (REFERENCE.md section 1): nodes are peers that connect to the router and
listen on an ephemeral port; multicast scouting off, gossip on; the router is needed for
discovery, data then flows peer to peer. Timestamping is on (advanced publishers need it).
"""

from __future__ import annotations

import json
import threading
from typing import TYPE_CHECKING, Any, cast

from mm_ros.bus.memory import keep_large_buffers
from mm_ros.bus.protocol import BusConfig, BusUnavailableError

if TYPE_CHECKING:
    import zenoh


def _config(
    mode: str, connect: tuple[str, ...], listen: tuple[str, ...], *, shm: bool, timeout_s: float
) -> zenoh.Config:
    import zenoh

    config = zenoh.Config()
    settings: dict[str, Any] = {
        "mode": mode,
        "connect/endpoints": list(connect),
        "scouting/multicast/enabled": False,
        "scouting/gossip/enabled": True,
        "timestamping/enabled": True,
        "transport/shared_memory/enabled": shm,
    }
    if listen:
        settings["listen/endpoints"] = list(listen)
    elif mode == "peer":
        settings["listen/endpoints"] = ["tcp/127.0.0.1:0"]
    if mode != "router" and connect:
        # fail fast with a clear error instead of retrying forever when no router is up
        settings["connect/timeout_ms"] = int(timeout_s * 1000)
        settings["connect/exit_on_failure"] = True
    for key, value in settings.items():
        config.insert_json5(key, json.dumps(value))
    return cast("zenoh.Config", config)


def open_session(config: BusConfig) -> zenoh.Session:
    """Open a peer or client session; raise ``BusUnavailableError`` naming the endpoints."""
    import zenoh

    if config.keep_large_buffers:
        keep_large_buffers()
    try:
        return zenoh.open(
            _config(
                config.mode,
                config.connect,
                config.listen,
                shm=config.shared_memory,
                timeout_s=config.connect_timeout_s,
            )
        )
    except zenoh.ZError as err:
        msg = (
            f"no Zenoh router reachable at {', '.join(config.connect)} within "
            f"{config.connect_timeout_s:g} s ({err}); start one with `mm-ros router` "
            "(or `ros2 run rmw_zenoh_cpp rmw_zenohd` on a ROS 2 machine), or pass --connect"
        )
        raise BusUnavailableError(msg) from err


class Router:
    """An in-process Zenoh router: the stand-in for ``rmw_zenohd``."""

    def __init__(
        self, listen: tuple[str, ...] = ("tcp/127.0.0.1:7447",), connect: tuple[str, ...] = ()
    ) -> None:
        self.listen = listen
        self.connect = connect
        self._session: zenoh.Session | None = None
        self._stop = threading.Event()

    def start(self) -> Router:
        """Open the router session; raise ``BusUnavailableError`` if the port is taken."""
        import zenoh

        try:
            self._session = zenoh.open(
                _config("router", self.connect, self.listen, shm=True, timeout_s=0)
            )
        except zenoh.ZError as err:
            msg = f"cannot start a Zenoh router on {', '.join(self.listen)}: {err}"
            raise BusUnavailableError(msg) from err
        return self

    @property
    def zid(self) -> str:
        """The router's Zenoh id."""
        if self._session is None:
            raise BusUnavailableError("router not started")
        return str(self._session.zid())

    def wait(self, timeout_s: float | None = None) -> bool:
        """Block until ``stop`` (or the timeout); return True when stopped."""
        return self._stop.wait(timeout_s)

    def stop(self) -> None:
        """Close the router session."""
        self._stop.set()
        if self._session is not None:
            self._session.close()  # type: ignore[no-untyped-call]
            self._session = None

    def __enter__(self) -> Router:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()
