"""Offline engine builds (``mm-ros engines build``): export → key → free-memory check → build.

Never run implicitly at launch: :mod:`mm_ros.engines.selection` calls it only when the adapter's
``build_if_missing`` setting is on.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mm_ros.engines.cache import EngineCache, EngineKey, ShapeProfile
from mm_ros.engines.device import available_memory_bytes, check_free_memory
from mm_ros.engines.manifest import BUILD_HEADROOM_MIB, DEFAULT_OPSET

if TYPE_CHECKING:
    from mm_ros.adapters.checkpoint import LoadedAdapter
    from mm_ros.engines.device import GpuIdentity
    from mm_ros.engines.manifest import Manifest

log = logging.getLogger(__name__)


def export_for_build(
    adapter: LoadedAdapter, cache_root: Path, precision: str, opset: int = DEFAULT_OPSET
) -> Path:
    """Return the ONNX an engine is built from, exporting it once per weights hash and precision."""
    from mm_ros.engines.export import export_onnx

    path = (
        cache_root / "onnx" / f"{adapter.spec.name}-{adapter.weights_sha256[:16]}-{precision}.onnx"
    )
    if not path.is_file():
        tmp = path.with_name(path.name + ".partial")
        export_onnx(
            adapter.module,
            adapter.spec.input_shape(),
            tmp,
            dynamo=True,
            opset=opset,
            fp16=precision == "fp16",
        )
        tmp.replace(path)
    return path


def engine_key(
    onnx_path: Path,
    identity: GpuIdentity,
    input_shape: tuple[int, ...],
    precision: str,
    max_batch: int,
    *,
    min_batch: int = 1,
    opt_batch: int = 1,
) -> EngineKey:
    """Return the cache key of an engine built from ``onnx_path`` on this machine."""
    from mm_ros.adapters.checkpoint import sha256_file

    profile = ShapeProfile(min_batch, min(opt_batch, max_batch), max_batch, input_shape)
    return EngineKey(
        onnx_sha256=sha256_file(onnx_path),
        tensorrt_version=identity.tensorrt_version,
        gpu_name=identity.gpu_name,
        compute_capability=identity.compute_capability,
        precision=precision,
        shape_profile=profile.label(),
    )


def profile_of(key: EngineKey, input_shape: tuple[int, ...]) -> ShapeProfile:
    """Rebuild the ShapeProfile a key was made from."""
    batches = key.shape_profile.split("x", 1)[0].split("-")
    low, opt, high = (int(b) for b in batches)
    return ShapeProfile(low, opt, high, input_shape)


def build_into_cache(
    name: str,
    onnx_path: Path,
    key: EngineKey,
    cache: EngineCache,
    workspace_mib: int,
    *,
    input_shape: tuple[int, ...] | None = None,
    progress: bool = True,
) -> Path:
    """Check free memory, build with a progress bar, store engine + sidecar; return its path."""
    from tqdm import tqdm

    from mm_ros.engines.runtimes.tensorrt import build_engine

    check_free_memory(
        (workspace_mib + BUILD_HEADROOM_MIB) << 20, available_memory_bytes(), f"building {name}"
    )
    shape = input_shape if input_shape is not None else _input_shape(onnx_path)
    bars: dict[str, tqdm[None]] = {}

    def on_step(phase: str, step: int, steps: int) -> None:
        bar = bars.get(phase)
        if bar is None:
            bar = bars[phase] = tqdm(
                total=steps or None, desc=f"{name}: {phase}", disable=not progress, leave=False
            )
        bar.update(step - bar.n)

    try:
        engine = build_engine(
            onnx_path,
            profile_of(key, shape),
            key.precision,
            workspace_mib << 20,
            timing_cache=cache.root / "timing.cache",
            on_step=on_step,
        )
    finally:
        for bar in bars.values():
            bar.close()
    path = cache.store(name, key, engine)
    log.info("built %s (%d bytes) for %s", path, len(engine), key.gpu_name)
    return path


def _input_shape(onnx_path: Path) -> tuple[int, ...]:
    import onnx

    model = onnx.load(str(onnx_path), load_external_data=False)
    dims = model.graph.input[0].type.tensor_type.shape.dim[1:]
    return tuple(int(d.dim_value) for d in dims)


@dataclass(frozen=True)
class BuildResult:
    """What happened to one manifest entry."""

    name: str
    path: Path
    status: str  # "built" | "up to date"


def build_manifest(manifest: Manifest, progress: bool = True) -> list[BuildResult]:
    """Export and build every manifest entry that has no valid engine in the cache."""
    from tqdm import tqdm

    from mm_ros.adapters.checkpoint import load_adapter
    from mm_ros.engines.device import gpu_identity

    identity = gpu_identity()
    cache = EngineCache(manifest.cache_dir)
    results = []
    for entry in tqdm(manifest.entries, desc="engines", unit="engine", disable=not progress):
        adapter = load_adapter(entry.adapter)
        onnx_path = export_for_build(adapter, cache.root, entry.precision, entry.opset)
        key = engine_key(
            onnx_path,
            identity,
            adapter.spec.input_shape(),
            entry.precision,
            entry.max_batch,
            min_batch=entry.min_batch,
            opt_batch=entry.opt_batch,
        )
        found = cache.lookup(entry.name, key)
        if found.hit:
            results.append(BuildResult(entry.name, found.path, "up to date"))
            continue
        path = build_into_cache(
            entry.name,
            onnx_path,
            key,
            cache,
            entry.workspace_mib,
            input_shape=adapter.spec.input_shape(),
            progress=progress,
        )
        results.append(BuildResult(entry.name, path, "built"))
    return results
