"""``engines/manifest.yaml``: which adapters to export and build, at which precision and batch."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

from mm_ros.core.errors import ManifestError
from mm_ros.engines.runtimes.tensorrt import PRECISIONS

MANIFEST_VERSION = 1
DEFAULT_WORKSPACE_MIB = 1024  # fits an 8 GB Orin Nano next to the LLM
DEFAULT_OPSET = 18  # safe for TensorRT 10.3 and 11 (REFERENCE.md section 5)
BUILD_HEADROOM_MIB = 512  # parser, builder and tactic buffers beyond the workspace


class BatchJson(TypedDict):
    """``engines[].batch``."""

    min: int
    opt: int
    max: int


class EntryJson(TypedDict, total=False):
    """``engines[]``: ``name`` and ``adapter`` required, the rest defaulted."""

    name: str
    adapter: str
    precision: str
    batch: BatchJson
    workspace_mib: int
    opset: int


class ManifestJson(TypedDict):
    """The manifest file."""

    version: int
    cache_dir: str
    engines: list[EntryJson]


@dataclass(frozen=True)
class ManifestEntry:
    """One engine to build; paths resolved against the manifest's folder."""

    name: str
    adapter: Path
    precision: str = "fp16"  # what GPUs want; fp32 when parity matters more than speed
    min_batch: int = 1
    opt_batch: int = 1  # one frame per question is the common case
    max_batch: int = 4
    workspace_mib: int = DEFAULT_WORKSPACE_MIB
    opset: int = DEFAULT_OPSET


@dataclass(frozen=True)
class Manifest:
    """The parsed manifest."""

    path: Path
    cache_dir: Path
    entries: tuple[ManifestEntry, ...]


def _int(data: dict[str, Any], key: str, default: int, where: str) -> int:
    value = data.get(key, default)
    if type(value) is not int or value < 1:
        raise ManifestError(f"{where}.{key}: expected a positive integer, found {value!r}")
    return value


def parse_manifest(data: object, path: Path) -> Manifest:
    """Validate parsed YAML; every error names the entry and field."""
    if not isinstance(data, dict):
        raise ManifestError(f"{path}: expected a mapping at the top, found {type(data).__name__}")
    if data.get("version") != MANIFEST_VERSION:
        raise ManifestError(
            f"{path}: expected version: {MANIFEST_VERSION}, found {data.get('version')!r}"
        )
    raw_entries = data.get("engines")
    if not isinstance(raw_entries, list) or not raw_entries:
        raise ManifestError(
            f"{path}: expected a non-empty list under engines, found {raw_entries!r}"
        )
    base = path.parent
    cache_dir = data.get("cache_dir", "cache")
    if not isinstance(cache_dir, str):
        raise ManifestError(f"{path}: cache_dir: expected a path string, found {cache_dir!r}")
    entries = [
        _parse_entry(raw, f"{path}: engines[{i}]", base) for i, raw in enumerate(raw_entries)
    ]
    names = [e.name for e in entries]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ManifestError(f"{path}: duplicate engine names {duplicates}")
    return Manifest(path, (base / cache_dir).resolve(), tuple(entries))


def load_manifest(path: Path) -> Manifest:
    """Read and validate a manifest YAML file."""
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise ManifestError(f"cannot read manifest {path}: {err}") from err
    except yaml.YAMLError as err:
        raise ManifestError(f"{path} is not valid YAML: {err}") from err
    return parse_manifest(data, path)


def _parse_entry(raw: object, where: str, base: Path) -> ManifestEntry:
    if not isinstance(raw, dict):
        raise ManifestError(f"{where}: expected a mapping, found {raw!r}")
    for field in ("name", "adapter"):
        if not isinstance(raw.get(field), str) or not raw[field]:
            raise ManifestError(f"{where}: missing {field} (a non-empty string)")
    unknown = sorted(set(raw) - set(EntryJson.__annotations__))
    if unknown:
        raise ManifestError(f"{where}: unknown field(s) {unknown}")
    precision = raw.get("precision", "fp16")
    if precision not in PRECISIONS:
        raise ManifestError(f"{where}.precision: expected one of {PRECISIONS}, found {precision!r}")
    batch = raw.get("batch", {})
    if not isinstance(batch, dict):
        raise ManifestError(f"{where}.batch: expected {{min, opt, max}}, found {batch!r}")
    entry = ManifestEntry(
        name=raw["name"],
        adapter=(base / raw["adapter"]).resolve(),
        precision=precision,
        min_batch=_int(batch, "min", 1, f"{where}.batch"),
        opt_batch=_int(batch, "opt", 1, f"{where}.batch"),
        max_batch=_int(batch, "max", 4, f"{where}.batch"),
        workspace_mib=_int(raw, "workspace_mib", DEFAULT_WORKSPACE_MIB, where),
        opset=_int(raw, "opset", DEFAULT_OPSET, where),
    )
    if not entry.min_batch <= entry.opt_batch <= entry.max_batch:
        raise ManifestError(f"{where}.batch: need min <= opt <= max, found {batch}")
    return entry
