"""``mm-ros lifecycle`` against a managed node on the zenoh bus (in-process CLI calls)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mm_ros.cli.main import main
from mm_ros.core.lifecycle import Result, State
from mm_ros.nodes.lifecycle import LifecycleNode

if TYPE_CHECKING:
    import pytest


class Refusing(LifecycleNode):
    """Activation fails once, then works."""

    def __init__(self, bus) -> None:
        self.refusals = 1
        super().__init__(bus, autostart=False)

    def on_activate(self, previous: State) -> Result | None:
        if self.refusals:
            self.refusals -= 1
            return Result.FAILURE
        return None


def run(capsys: pytest.CaptureFixture[str], router: str, *args: str) -> tuple[int, str, str]:
    code = main(["lifecycle", *args, "--connect", router])
    out, err = capsys.readouterr()
    return code, out, err


def test_get_set_list_and_nodes(make_zenoh, router: str, capsys) -> None:
    node = Refusing(make_zenoh("managed", ["--ros-args", "-r", "__ns:=/robot"]))
    make_zenoh("plain")  # not managed: must not be listed
    assert run(capsys, router, "get", "/robot/managed") == (0, "unconfigured [1]\n", "")
    code, out, _ = run(capsys, router, "list", "robot/managed")
    assert code == 0
    assert out.splitlines() == [
        "- configure [1]", "\tStart: unconfigured", "\tGoal: configuring",
        "- shutdown [5]", "\tStart: unconfigured", "\tGoal: shuttingdown",
    ]  # fmt: skip
    code, out, _ = run(capsys, router, "list", "/robot/managed", "--all")
    assert out.count("- ") == 25
    code, _, err = run(capsys, router, "set", "/robot/managed", "activate")
    assert code == 1
    assert (
        "cannot 'activate' from state 'unconfigured'; available: configure [1], shutdown [5]" in err
    )
    assert run(capsys, router, "set", "/robot/managed", "1")[:2] == (
        0,
        "Transitioning successful\n",
    )
    code, _, err = run(capsys, router, "set", "/robot/managed", "activate")
    assert code == 1
    assert "Transitioning failed" in err
    assert node.lifecycle.state is State.INACTIVE
    assert run(capsys, router, "set", "/robot/managed", "activate")[0] == 0
    assert run(capsys, router, "get", "/robot/managed")[1] == "active [3]\n"
    assert run(capsys, router, "nodes")[1].split() == ["/robot/managed"]


def test_missing_node_is_a_clear_error(make_zenoh, router: str, capsys) -> None:
    code, _, err = run(capsys, router, "get", "/ghost", "--timeout", "0.5")
    assert code == 1
    assert "no lifecycle service /ghost/get_state within 0.5 s (is /ghost managed?)" in err
