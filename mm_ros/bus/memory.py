"""Keep multi-megabyte message buffers mapped between messages (glibc's ``mallopt``).

A 1920x1080 rgb8 frame is 6.2 MB, and every message makes a few buffers that size: the CDR
encoding, Zenoh's copy of the payload, the received bytes. glibc serves blocks that large with
``mmap`` and gives them back with ``munmap`` on free (or trims the heap top), so the next message
touches brand-new pages: about 1 500 page faults per buffer. Measured here (a VM, zenoh 1.10):
``zenoh.ZBytes(bytearray(frame))`` took 11.3 ms with glibc's defaults and 0.56 ms with these
settings, and a 6 MB copy into reused memory takes 0.16 ms. The price is that up to
``TRIM_THRESHOLD_BYTES`` of freed memory stays with the process.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys

log = logging.getLogger(__name__)

M_TRIM_THRESHOLD = -1  # glibc malloc.h parameter numbers
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 32 << 20  # glibc's upper limit on 64-bit; a 4K rgb8 frame (25 MB) fits
TRIM_THRESHOLD_BYTES = 128 << 20  # freed heap kept before any is returned to the system

_applied: bool | None = None  # the outcome of the one attempt per process


def keep_large_buffers() -> bool:
    """Serve blocks up to 32 MB from the heap and keep 128 MB of it; True where it took effect.

    Process-wide and idempotent; a no-op (False) off Linux or on a C library without
    ``mallopt`` (musl).
    """
    global _applied  # noqa: PLW0603 - one process-wide setting, applied once
    if _applied is not None:
        return _applied
    _applied = False
    if sys.platform != "linux":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    _applied = bool(
        mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)
        and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)
    )
    log.debug("mallopt: large buffers kept mapped: %s", _applied)
    return _applied
