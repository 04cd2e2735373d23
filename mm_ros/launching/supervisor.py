"""Start, watch, respawn and stop the processes of a launch (one process per node).

Children run in their own process groups, so a terminal's Ctrl-C reaches only the supervisor,
which forwards SIGINT to every child, then SIGTERM, then SIGKILL after grace periods: no
orphans. A node with ``respawn`` is restarted after ``respawn_delay``, doubling (back-off, capped
at 30 s) while it keeps dying within 10 s of starting.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING

from mm_ros.core.stopping import StopFlag

if TYPE_CHECKING:
    from mm_ros.launching.context import ProcessSpec

STABLE_AFTER_S = 10.0  # a child that ran this long resets its back-off
MAX_BACKOFF_S = 30.0
GRACE_S = 5.0  # between SIGINT, SIGTERM and SIGKILL


@dataclass
class Child:
    """One node process and its restart state."""

    spec: ProcessSpec
    process: subprocess.Popen[str] | None = None
    started_at: float = 0.0
    restarts: int = 0
    backoff_s: float = 0.0
    next_start: float = 0.0
    log: IO[str] | None = None
    threads: list[threading.Thread] = field(default_factory=list)


class Supervisor:
    """Runs the processes until ``stop`` (signals call it)."""

    def __init__(
        self,
        specs: list[ProcessSpec],
        *,
        env: dict[str, str] | None = None,
        log_dir: Path | None = None,
        out: IO[str] = sys.stdout,
    ) -> None:
        self.children = [Child(spec) for spec in specs]
        self._env = env or dict(os.environ)
        self._log_dir = log_dir or Path(os.environ.get("MM_ROS_LOG_DIR", "log/launch"))
        self._out = out
        self._stop = StopFlag()  # set by signal handlers too: no lock
        self._lock = threading.Lock()

    def _say(self, text: str) -> None:
        with self._lock:
            self._out.write(text + "\n")
            self._out.flush()

    def _pump(self, child: Child, stream: IO[str]) -> None:
        for line in stream:
            if child.spec.output in ("screen", "both"):
                self._say(f"[{child.spec.label}] {line.rstrip()}")
            if child.log is not None:
                child.log.write(line)
                child.log.flush()

    def _start(self, child: Child) -> None:
        if child.spec.output in ("log", "both") and child.log is None:
            self._log_dir.mkdir(parents=True, exist_ok=True)
            child.log = (self._log_dir / f"{child.spec.label}.log").open("a")
        child.process = subprocess.Popen(
            child.spec.command,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=self._env,
            start_new_session=True,
        )
        child.started_at = time.monotonic()
        assert child.process.stdout is not None
        pump = threading.Thread(target=self._pump, args=(child, child.process.stdout), daemon=True)
        pump.start()
        child.threads.append(pump)
        self._say(f"[launch] started {child.spec.label} (pid {child.process.pid})")

    def start(self) -> None:
        """Start every process."""
        for child in self.children:
            self._start(child)

    def poll(self) -> bool:
        """Reap exits, schedule and run respawns; return False when nothing is left to run."""
        alive = False
        now = time.monotonic()
        for child in self.children:
            proc = child.process
            if proc is not None and proc.poll() is None:
                alive = True
                continue
            if proc is not None:  # just exited
                code = proc.returncode
                child.process = None
                self._say(f"[launch] {child.spec.label} exited with code {code}")
                if not child.spec.respawn or self._stop.is_set():
                    continue
                ran = now - child.started_at
                base = max(child.spec.respawn_delay_s, 0.1)
                child.backoff_s = (
                    base
                    if ran >= STABLE_AFTER_S or not child.backoff_s
                    else min(child.backoff_s * 2, MAX_BACKOFF_S)
                )
                child.next_start = now + child.backoff_s
                self._say(f"[launch] respawning {child.spec.label} in {child.backoff_s:.1f} s")
            if child.spec.respawn and not self._stop.is_set() and child.next_start:
                alive = True
                if now >= child.next_start:
                    child.next_start = 0.0
                    child.restarts += 1
                    self._start(child)
        return alive

    def run(self) -> int:
        """Start, supervise until every child is done or ``stop``; return an exit code."""
        self.start()
        while not self._stop.is_set() and self.poll():
            self._stop.wait(0.1)
        self.shutdown()
        return 0

    def stop(self) -> None:
        """Ask ``run`` to end (signal-safe)."""
        self._stop.set()

    def shutdown(self) -> None:
        """SIGINT every child, then SIGTERM, then SIGKILL; wait for all; close logs."""
        self._stop.set()
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
            running = [c for c in self.children if c.process and c.process.poll() is None]
            if not running:
                break
            for child in running:
                assert child.process is not None
                try:
                    os.killpg(child.process.pid, sig)
                except ProcessLookupError:
                    continue
            deadline = time.monotonic() + GRACE_S
            while time.monotonic() < deadline and any(
                c.process.poll() is None for c in running if c.process
            ):
                time.sleep(0.05)
        for child in self.children:
            for thread in child.threads:
                thread.join(timeout=1)
            if child.log is not None:
                child.log.close()
        self._say("[launch] all processes stopped")
