"""Shared fixtures: the repository root, the real-data folder, the ROS 2 tier; test order.

``MM_ROS_TEST_ORDER=reverse`` runs the files (and the tests in each) in reverse order,
``MM_ROS_TEST_ORDER=random:SEED`` in a shuffled one (each file's tests stay together, so module
fixtures are still built once): a test that passes only after another one shows up that way.
"""

from __future__ import annotations

import logging
import os
import random
import subprocess
import sys
from itertools import groupby
from pathlib import Path

import pytest

from tests.logs import logger_levels

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data" / "rosbag2"
ROS_ROOT = Path(os.environ.get("MM_ROS_TIER", REPO / ".ros"))


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def shared_bags() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real ROS 2 recordings not found at {SHARED_DATA} (only next to a checkout)")
    return SHARED_DATA


def worker_index() -> int:
    """0, or the number of this pytest-xdist worker (gw0, gw1, ...): keeps DDS domains apart."""
    return int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    order = os.environ.get("MM_ROS_TEST_ORDER", "")
    if not order:
        return
    modules = [list(tests) for _, tests in groupby(items, key=lambda i: i.nodeid.split("::")[0])]
    if order == "reverse":
        modules = [tests[::-1] for tests in reversed(modules)]
    elif order.startswith("random:"):
        shuffle = random.Random(order.removeprefix("random:")).shuffle
        shuffle(modules)
        for tests in modules:
            shuffle(tests)
    else:
        raise pytest.UsageError(
            f"MM_ROS_TEST_ORDER must be reverse or random:SEED, found {order!r}"
        )
    items[:] = [item for tests in modules for item in tests]
    config.pluginmanager.get_plugin("terminalreporter").write_line(f"test order: {order}")


@pytest.fixture(autouse=True)
def _logger_levels_restored() -> object:
    """Fail a test that leaves an mm_ros logger at another level than it found it."""
    before = logger_levels()
    yield
    after = logger_levels()
    changed = {
        name or "root": (before.get(name, 0), level)
        for name, level in after.items()
        if level != before.get(name, 0)
    }
    for name, (level, _) in changed.items():
        logging.getLogger("" if name == "root" else name).setLevel(level)
    if changed:
        pytest.fail(
            f"logger levels changed and not restored (name: (before, after)): {changed}; "
            "use tests.logs.quiet_logs or caplog.set_level, which put them back"
        )


class RosTier:
    """Runs Python inside the built ROS 2 workspace (rclpy, generated mm_ros interfaces)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.install = root / "install"
        self.env = dict(
            os.environ,
            ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
            ROS_DOMAIN_ID=str(20 + worker_index()),
        )  # keep DDS on this host

    def command(self, *args: str) -> list[str]:
        """``python ARGS`` with the workspace sourced (env.sh written by tools/ros_tier.py)."""
        return ["bash", "-c", f". '{self.root / 'env.sh'}' && exec \"$@\"", "ros-tier", *args]

    def popen(self, *args: str, **kwargs) -> subprocess.Popen:
        return subprocess.Popen(self.command(*args), env=self.env, **kwargs)

    def run(
        self, *args: str, stdin: str | None = None, timeout: float = 120, check: bool = True
    ) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            self.command(*args),
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=self.env,
            check=False,
        )
        if check and proc.returncode:
            raise AssertionError(f"{args} failed ({proc.returncode}):\n{proc.stderr}")
        return proc


@pytest.fixture(scope="session")
def ros_tier() -> RosTier:
    skip = ROS_ROOT / "SKIP"
    if skip.is_file():
        pytest.skip(f"ROS 2 tier unavailable: {skip.read_text().strip()}")
    if not (ROS_ROOT / "env.sh").is_file():
        pytest.skip(
            f"ROS 2 tier not built: run `make ros-tier` ({sys.executable} tools/ros_tier.py) first"
        )
    return RosTier(ROS_ROOT)
