"""Zenoh sessions configured as rmw_zenoh configures them, and the in-process router.

rmw_zenoh defaults (REFERENCE.md section 1): nodes are peers that connect to the router and
listen on an ephemeral port; multicast scouting off, gossip on; the router is needed for
discovery, data then flows peer to peer. Timestamping is on (advanced publishers need it).

A Zenoh configuration file (JSON5, Zenoh's own format: TLS and mutual TLS under
``transport/link/tls``, ``access_control``, ...) is the base when given: ``--zenoh-config FILE``
or, as rmw_zenoh reads them, ``ZENOH_SESSION_CONFIG_URI`` for nodes and
``ZENOH_ROUTER_CONFIG_URI`` for the router. Every setting the file makes wins; mm_ros fills in
only what it leaves at Zenoh's defaults (mode, endpoints, scouting, shared memory, the connect
timeout), and always turns timestamping on.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from mm_ros.bus.memory import keep_large_buffers
from mm_ros.bus.protocol import BusConfig, BusUnavailableError
from mm_ros.core.errors import ConfigError

if TYPE_CHECKING:
    import zenoh

SESSION_CONFIG_ENV = "ZENOH_SESSION_CONFIG_URI"  # rmw_zenoh's names for the two files
ROUTER_CONFIG_ENV = "ZENOH_ROUTER_CONFIG_URI"
REQUIRED = {"timestamping/enabled": True}  # advanced (latched) publishers need timestamps


def load_config_file(path: str) -> zenoh.Config:
    """Parse a Zenoh JSON5 configuration file; ``ConfigError`` naming the file on failure."""
    import zenoh

    if not Path(path).is_file():
        raise ConfigError(f"Zenoh configuration file {path!r} not found")
    try:
        return cast("zenoh.Config", zenoh.Config.from_file(path))
    except zenoh.ZError as err:
        raise ConfigError(f"Zenoh configuration file {path!r} is not valid: {err}") from err


def _config(
    mode: str,
    connect: tuple[str, ...],
    listen: tuple[str, ...],
    *,
    shm: bool,
    timeout_s: float,
    config_file: str = "",
) -> zenoh.Config:
    import zenoh

    config = load_config_file(config_file) if config_file else zenoh.Config()
    defaults = zenoh.Config()
    settings: dict[str, Any] = {
        "mode": mode,
        "connect/endpoints": list(connect),
        "scouting/multicast/enabled": False,
        "scouting/gossip/enabled": True,
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
        if config.get_json(key) == defaults.get_json(key):  # the file left it: ours
            config.insert_json5(key, json.dumps(value))
    for key, value in REQUIRED.items():
        config.insert_json5(key, json.dumps(value))
    return cast("zenoh.Config", config)


def config_file_argument(rest: tuple[str, ...] | list[str]) -> str | None:
    """Return FILE of ``--zenoh-config FILE`` in a node's own arguments, else None."""
    for i, token in enumerate(rest):
        if token == "--zenoh-config":
            if i + 1 >= len(rest):
                raise ConfigError("--zenoh-config needs a file name")
            return str(rest[i + 1])
        if token.startswith("--zenoh-config="):
            return token.split("=", 1)[1]
    return None


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
                config_file=config.zenoh_config,
            )
        )
    except zenoh.ZError as err:
        where = ", ".join(config.connect)
        if config.zenoh_config:
            where += f" (or the endpoints in {config.zenoh_config})"
        msg = (
            f"no Zenoh router reachable at {where} within "
            f"{config.connect_timeout_s:g} s ({err}); start one with `mm-ros router` "
            "(or `ros2 run rmw_zenoh_cpp rmw_zenohd` on a ROS 2 machine), or pass --connect"
        )
        if config.zenoh_config:
            msg += "; with TLS, check the certificates the file names"
        raise BusUnavailableError(msg) from err


class Router:
    """An in-process Zenoh router: the stand-in for ``rmw_zenohd``."""

    def __init__(
        self,
        listen: tuple[str, ...] = ("tcp/127.0.0.1:7447",),
        connect: tuple[str, ...] = (),
        config_file: str = "",
    ) -> None:
        self.listen = listen
        self.connect = connect
        self.config_file = config_file  # a Zenoh JSON5 file (TLS, access control); "" = none
        self._session: zenoh.Session | None = None
        self._stop = threading.Event()

    def start(self) -> Router:
        """Open the router session; raise ``BusUnavailableError`` if the port is taken."""
        import zenoh

        config = _config(
            "router", self.connect, self.listen, shm=True, timeout_s=0, config_file=self.config_file
        )
        listening = json.loads(config.get_json("listen/endpoints"))
        if isinstance(listening, list):  # the file may give them per mode instead
            self.listen = tuple(listening)
        try:
            self._session = zenoh.open(config)
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
