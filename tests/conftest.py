"""Shared fixtures: the repository root, the real-data folder, the ROS 2 tier."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

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
