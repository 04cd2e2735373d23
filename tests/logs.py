"""Quieting loggers in tests without leaking the change into later tests."""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterator


@contextlib.contextmanager
def quiet_logs(name: str = "mm_ros", level: int = logging.ERROR) -> Iterator[None]:
    """Raise ``name``'s level to ``level`` inside the block; put the old level back after."""
    logger = logging.getLogger(name)
    before = logger.level
    logger.setLevel(level)
    try:
        yield
    finally:
        logger.setLevel(before)


def logger_levels() -> dict[str, int]:
    """The level set on every ``mm_ros`` logger and on the root logger (0 = inherited)."""
    manager = logging.Logger.manager
    levels = {
        name: logger.level
        for name, logger in manager.loggerDict.items()
        if isinstance(logger, logging.Logger) and (name == "mm_ros" or name.startswith("mm_ros."))
    }
    levels[""] = logging.getLogger().level
    return levels
