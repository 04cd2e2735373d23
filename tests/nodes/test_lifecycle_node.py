"""A managed node started the way ``mm-ros run`` starts it (``run_node``), on the zenoh bus."""

from __future__ import annotations

import signal
from typing import TYPE_CHECKING, ClassVar

import pytest

from mm_ros.core.lifecycle import Result, State
from mm_ros.nodes.lifecycle import LifecycleNode
from mm_ros.nodes.runner import EXIT_OK, EXIT_RUNTIME, run_node

if TYPE_CHECKING:
    from collections.abc import Iterator

    from mm_ros.bus.protocol import Bus


class ManagedNode(LifecycleNode):
    """Records its hooks; once active it closes its bus (as SIGINT would) so spin returns."""

    name = "managed"
    description = "test node"
    Config = type("Config", (), {})
    calls: ClassVar[list[str]] = []
    activate_result: ClassVar[Result | None] = None

    def __init__(self, bus: Bus) -> None:
        self.calls.append("constructed")
        super().__init__(bus)

    def on_configure(self, previous: State) -> Result | None:
        self.calls.append(f"configure from {previous.label}")

    def on_activate(self, previous: State) -> Result | None:
        self.calls.append("activate")
        if self.activate_result is None:
            self.bus.close()  # spin returns at once; shutdown then runs on a closed bus
        return self.activate_result

    def on_shutdown(self, previous: State) -> Result | None:
        self.calls.append(f"shutdown from {previous.label}")


@pytest.fixture
def run(monkeypatch: pytest.MonkeyPatch, router: str) -> Iterator:
    """``run_node(ManagedNode, argv)`` against the test router; pytest's signal handlers kept."""
    monkeypatch.setenv("MM_ROS_CONNECT", router)
    monkeypatch.setenv("MM_ROS_BUS", "zenoh")
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    ManagedNode.calls.clear()

    def start(*args: str, activate: Result | None = None) -> int:
        monkeypatch.setattr(ManagedNode, "activate_result", activate)
        return run_node(ManagedNode, ["--ros-args", *args])

    yield start
    for sig, handler in handlers.items():
        signal.signal(sig, handler)


def test_autostart_configures_activates_and_close_shuts_down(run) -> None:
    assert run() == EXIT_OK
    assert ManagedNode.calls == [
        "constructed",
        "configure from unconfigured",
        "activate",
        "shutdown from active",
    ]


def test_failed_autostart_exits_with_the_reason(run, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(activate=Result.FAILURE) == EXIT_RUNTIME
    err = capsys.readouterr().err
    assert "autostart activate failed: on_activate returned FAILURE (node is inactive)" in err
    assert ManagedNode.calls[-1] == "shutdown from inactive"


def test_managed_config_carries_autostart(make_zenoh) -> None:
    import dataclasses

    from mm_ros.nodes.lifecycle import ManagedConfig
    from mm_ros.nodes.params import declare_config, param

    @dataclasses.dataclass(frozen=True)
    class ServiceConfig(ManagedConfig):
        max_queue: int = param(8, "questions waiting at most")

    class Service(LifecycleNode):
        def __init__(self, bus: Bus) -> None:
            self.config = declare_config(bus, ServiceConfig)
            super().__init__(bus, autostart=self.config.autostart)

    bus = make_zenoh("service", ["--ros-args", "-p", "autostart:=false", "-p", "max_queue:=3"])
    node = Service(bus)
    assert node.config == ServiceConfig(autostart=False, max_queue=3)
    assert node.start() is State.UNCONFIGURED  # autostart off: waits for a manager
    assert bus.undeclared_overrides == []
