"""Freed multi-MB message buffers stay mapped: a 1080p frame per message stops page-faulting."""

from __future__ import annotations

import subprocess
import sys

import pytest

from mm_ros.bus.memory import keep_large_buffers

FRAMES = """
import resource, sys
from mm_ros.bus.memory import keep_large_buffers
applied = keep_large_buffers() if sys.argv[1] == "keep" else False
frame = bytes(1920 * 1080 * 3)
for _ in range(5):  # warm up
    bytes(bytearray(frame))
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):  # a message's CDR buffer and its copy, freed after each message
    bytes(bytearray(frame))
print(applied, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def faults(mode: str) -> tuple[bool, int]:
    out = subprocess.run(
        [sys.executable, "-c", FRAMES, mode], capture_output=True, text=True, check=True
    ).stdout.split()
    return out[0] == "True", int(out[1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt is Linux-only")
def test_kept_buffers_do_not_page_fault_per_frame() -> None:
    default_applied, default = faults("default")
    applied, kept = faults("keep")
    assert (default_applied, applied) == (False, True)
    pages = 20 * 2 * 1920 * 1080 * 3 // 4096  # every buffer fresh: ~60 000 first touches
    assert default > pages // 4  # glibc's defaults hand the memory back and fault it in again
    assert kept < pages // 100


def test_applying_twice_gives_the_same_answer() -> None:
    assert keep_large_buffers() == keep_large_buffers()
