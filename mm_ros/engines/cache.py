"""The engine cache: serialized engines keyed by everything that makes one valid.

Key = ONNX hash + TensorRT version + GPU name + compute capability + precision + shape profile
(REFERENCE.md section 5). Each engine ``<name>-<digest16>.engine`` has a sidecar
``<name>-<digest16>.json`` with the full key and the engine's own hash. A missing, corrupt or
foreign engine is a cache *miss* with a logged reason, never a crash.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

from mm_ros.core.errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Callable

log = logging.getLogger(__name__)

ENGINE_SUFFIX = ".engine"
SIDECAR_SUFFIX = ".json"
DIGEST_CHARS = 16  # of the key's sha256 in file names; the sidecar holds the full key


@dataclass(frozen=True)
class ShapeProfile:
    """One TensorRT optimisation profile for the single input: batch range, fixed sample shape."""

    min_batch: int
    opt_batch: int
    max_batch: int
    sample_shape: tuple[int, ...]  # input shape without the batch axis

    def __post_init__(self) -> None:
        if not 1 <= self.min_batch <= self.opt_batch <= self.max_batch:
            raise ConfigError(
                f"shape profile: need 1 <= min <= opt <= max batch, found "
                f"{self.min_batch}/{self.opt_batch}/{self.max_batch}"
            )

    @property
    def min_shape(self) -> tuple[int, ...]:
        """Smallest input shape."""
        return (self.min_batch, *self.sample_shape)

    @property
    def opt_shape(self) -> tuple[int, ...]:
        """Shape TensorRT tunes for."""
        return (self.opt_batch, *self.sample_shape)

    @property
    def max_shape(self) -> tuple[int, ...]:
        """Largest input shape."""
        return (self.max_batch, *self.sample_shape)

    def label(self) -> str:
        """``1-1-4x3x224x224``: readable, used in the key."""
        dims = "x".join(str(d) for d in self.sample_shape)
        return f"{self.min_batch}-{self.opt_batch}-{self.max_batch}x{dims}"


@dataclass(frozen=True)
class EngineKey:
    """Everything an engine's validity depends on."""

    onnx_sha256: str
    tensorrt_version: str
    gpu_name: str
    compute_capability: str  # "8.7" (Orin), "9.0" (H100)
    precision: str  # fp32 | fp16
    shape_profile: str  # ShapeProfile.label()

    def digest(self) -> str:
        """sha256 of the canonical JSON of the key."""
        text = json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()

    def differences(self, other: EngineKey) -> list[str]:
        """Fields that differ, as ``field: mine != other``."""
        return [
            f"{f.name}: {getattr(self, f.name)!r} != {getattr(other, f.name)!r}"
            for f in fields(self)
            if getattr(self, f.name) != getattr(other, f.name)
        ]


class SidecarJson(TypedDict):
    """``<engine>.json`` next to each engine."""

    name: str
    key: dict[str, str]
    engine_sha256: str
    engine_bytes: int
    created_utc: str


@dataclass(frozen=True)
class Lookup:
    """Result of a cache lookup: the engine bytes on a hit, the reason on a miss."""

    engine: bytes | None
    path: Path
    reason: str  # "hit" or why it missed

    @property
    def hit(self) -> bool:
        """True when a valid engine was found."""
        return self.engine is not None


@dataclass(frozen=True)
class Entry:
    """One cache entry as listed by ``mm-ros engines list``."""

    name: str
    path: Path
    key: EngineKey | None  # None when the sidecar is unreadable
    problem: str  # "" when the file matches its sidecar


def _key_from_json(data: object) -> EngineKey | None:
    if not isinstance(data, dict):
        return None
    names = {f.name for f in fields(EngineKey)}
    if set(data) != names or not all(isinstance(v, str) for v in data.values()):
        return None
    return EngineKey(**data)


class EngineCache:
    """A folder of engines and sidecars; writes are atomic (temp file + rename)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path_for(self, name: str, key: EngineKey) -> Path:
        """Where the engine for (name, key) lives."""
        return self.root / f"{name}-{key.digest()[:DIGEST_CHARS]}{ENGINE_SUFFIX}"

    def store(self, name: str, key: EngineKey, engine: bytes) -> Path:
        """Write the engine and its sidecar; return the engine path."""
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.path_for(name, key)
        sidecar: SidecarJson = {
            "name": name,
            "key": asdict(key),
            "engine_sha256": hashlib.sha256(engine).hexdigest(),
            "engine_bytes": len(engine),
            "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        _atomic_write(path, engine)
        _atomic_write(path.with_suffix(SIDECAR_SUFFIX), json.dumps(sidecar, indent=2).encode())
        return path

    def lookup(self, name: str, key: EngineKey) -> Lookup:
        """Return the engine for (name, key) or a miss whose reason is logged."""
        path = self.path_for(name, key)
        engine, reason = self._read_checked(path, key)
        if engine is None:
            log.warning("engine cache miss for %s at %s: %s", name, path, reason)
        return Lookup(engine, path, "hit" if engine is not None else reason)

    def load(
        self, name: str, key: EngineKey, deserialize: Callable[[bytes], Any]
    ) -> tuple[Any, str]:
        """Look up and deserialize; a None or failing deserialization is a logged miss."""
        found = self.lookup(name, key)
        if found.engine is None:
            return None, found.reason
        try:
            engine = deserialize(found.engine)
        except Exception as err:  # noqa: BLE001 - any failure here means "rebuild", never crash
            reason = f"deserialization raised {type(err).__name__}: {err}"
        else:
            if engine is not None:
                return engine, "hit"
            reason = "deserialization returned None (built by another TensorRT version or GPU?)"
        log.warning("engine cache miss for %s at %s: %s", name, found.path, reason)
        return None, reason

    def _read_checked(self, path: Path, key: EngineKey) -> tuple[bytes | None, str]:
        if not path.is_file():
            return None, "no engine built for this key (run `mm-ros engines build`)"
        meta, stored, problem = read_sidecar(path)
        if stored is None:
            return None, problem
        if stored != key:
            return None, "foreign engine: " + "; ".join(stored.differences(key))
        engine = path.read_bytes()
        if hashlib.sha256(engine).hexdigest() != meta.get("engine_sha256"):
            return None, (
                f"corrupt engine: {len(engine)} bytes, sha256 differs from the sidecar "
                f"({meta.get('engine_bytes')} bytes recorded)"
            )
        return engine, "hit"

    def entries(self) -> list[Entry]:
        """Every engine file in the cache with its sidecar key and any integrity problem."""
        if not self.root.is_dir():
            return []
        found = []
        for path in sorted(self.root.glob(f"*{ENGINE_SUFFIX}")):
            name = path.stem.rsplit("-", 1)[0]
            _, key, problem = read_sidecar(path)
            if key is not None and self.path_for(name, key) != path:
                problem = "file name does not match the key in its sidecar (copied or renamed?)"
            elif key is not None:
                _, reason = self._read_checked(path, key)
                problem = "" if reason == "hit" else reason
            found.append(Entry(name, path, key, problem))
        return found


def read_sidecar(engine_path: Path) -> tuple[dict[str, Any], EngineKey | None, str]:
    """Return the sidecar of an engine, its key (None if unusable) and the problem if any."""
    sidecar = engine_path.with_suffix(SIDECAR_SUFFIX)
    try:
        meta = json.loads(sidecar.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}, None, f"sidecar {sidecar.name} missing: origin of the engine unknown"
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        return {}, None, f"sidecar {sidecar.name} unreadable: {err}"
    if not isinstance(meta, dict):
        return {}, None, f"sidecar {sidecar.name} is not an object"
    key = _key_from_json(meta.get("key"))
    return meta, key, "" if key is not None else f"sidecar {sidecar.name} has no valid key"


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
