"""Wire interfaces without ROS: type stores per distro, CDR and RIHS01 hashes."""

from __future__ import annotations

from mm_ros.core.audio import AudioLayout
from mm_ros.interfaces.idl import normalize_name
from mm_ros.interfaces.store import (
    DEFAULT_DISTRO,
    DISTROS,
    InterfaceStore,
    get_store,
)

__all__ = [
    "DEFAULT_DISTRO",
    "DISTROS",
    "AudioLayout",
    "InterfaceStore",
    "get_store",
    "normalize_name",
]
