"""Pick a runtime per adapter from a preference list; every fallback is logged and kept.

The table :data:`FACTORIES` maps each :class:`RuntimeKind` to a function building it from an
adapter and an :class:`EngineConfig`; a factory raises RuntimeUnavailableError with the reason
(library missing, no GPU, no engine in the cache, ...), and selection moves on to the next kind.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from mm_ros.core.errors import ConfigError, EngineError, RuntimeUnavailableError
from mm_ros.engines.device import check_device, cuda_index, resolve_device
from mm_ros.engines.runtimes.base import Runtime, RuntimeKind
from mm_ros.engines.runtimes.onnxruntime import CPU_EP, CUDA_EP, TRT_EP, OrtOptions

if TYPE_CHECKING:
    from mm_ros.adapters.checkpoint import LoadedAdapter
    from mm_ros.engines.device import GpuIdentity

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EngineConfig:
    """How one adapter is run."""

    preference: tuple[RuntimeKind, ...] = (
        RuntimeKind.TENSORRT,
        RuntimeKind.ONNXRUNTIME,
        RuntimeKind.TORCH,
    )  # fastest first; torch always works, so it ends the list
    device: str = "auto"  # torch runtimes: auto (cuda when visible) | cpu | cuda | cuda:N
    onnx_path: str = ""  # exported ONNX for onnxruntime ("" = <adapter>/model.onnx)
    engine_cache_dir: str = "engines/cache"
    engine_name: str = ""  # manifest name of the TensorRT engine ("" = adapter name)
    precision: str = "fp16"
    max_batch: int = 4
    build_if_missing: bool = False  # never build a TensorRT engine at launch unless asked
    workspace_mib: int = 1024
    ort_providers: tuple[str, ...] = (TRT_EP, CUDA_EP, CPU_EP)

    def __post_init__(self) -> None:
        if not self.preference:
            raise ConfigError(
                "engine preference list is empty: expected e.g. [tensorrt, onnxruntime, torch]"
            )
        if self.max_batch < 1:
            raise ConfigError(f"max_batch must be >= 1, found {self.max_batch}")
        check_device(self.device, "adapter device")


@dataclass(frozen=True)
class Fallback:
    """A runtime that was skipped, and why."""

    kind: RuntimeKind
    reason: str


@dataclass
class Selection:
    """The runtime in use and every runtime skipped before it (for /diagnostics)."""

    runtime: Runtime
    fallbacks: list[Fallback] = field(default_factory=list)

    def diagnostics(self) -> dict[str, str]:
        """Key/values for a diagnostics entry."""
        out = {"runtime": self.runtime.kind.value, "running": self.runtime.describe()}
        for fb in self.fallbacks:
            out[f"skipped.{fb.kind.value}"] = fb.reason
        return out


Factory = Callable[["LoadedAdapter", EngineConfig], Runtime]


def _torch(adapter: LoadedAdapter, config: EngineConfig) -> Runtime:
    from mm_ros.engines.runtimes.torch_eager import TorchRuntime

    return TorchRuntime(adapter.module, adapter.spec.input_shape(), config.device)


def _torch_compile(adapter: LoadedAdapter, config: EngineConfig) -> Runtime:
    from mm_ros.engines.runtimes.torch_compile import TorchCompileRuntime

    return TorchCompileRuntime(adapter.module, adapter.spec.input_shape(), config.device)


def _onnxruntime(adapter: LoadedAdapter, config: EngineConfig) -> Runtime:
    from mm_ros.engines.runtimes.onnxruntime import OnnxRuntime

    path = Path(config.onnx_path) if config.onnx_path else adapter.folder / "model.onnx"
    options = OrtOptions(
        providers=config.ort_providers,
        trt_cache_dir=str(Path(config.engine_cache_dir) / "ort-trt"),
        trt_workspace_bytes=config.workspace_mib << 20,
        max_batch=config.max_batch,
        device_id=cuda_index(config.device) or 0,
    )
    return OnnxRuntime(path, adapter.spec.input_shape(), options)


def _tensorrt(adapter: LoadedAdapter, config: EngineConfig) -> Runtime:
    from mm_ros.engines.device import gpu_identity
    from mm_ros.engines.runtimes.tensorrt import on_device

    index = cuda_index(config.device)
    identity = gpu_identity(index or 0)  # raises RuntimeUnavailableError without tensorrt / GPU
    if index is None:
        raise RuntimeUnavailableError(
            RuntimeKind.TENSORRT.value,
            f"adapter device is {config.device!r}; TensorRT engines run on cuda or cuda:N",
        )
    with on_device(index):  # engines deserialize onto the current CUDA device
        return _tensorrt_on(adapter, config, identity, index)


def _tensorrt_on(
    adapter: LoadedAdapter, config: EngineConfig, identity: GpuIdentity, index: int
) -> Runtime:
    from mm_ros.engines.builder import engine_key, export_for_build
    from mm_ros.engines.cache import EngineCache
    from mm_ros.engines.runtimes.tensorrt import TensorRTRuntime, deserialize

    name = config.engine_name or adapter.spec.name
    cache = EngineCache(Path(config.engine_cache_dir))
    onnx_path = export_for_build(adapter, cache.root, config.precision)
    key = engine_key(
        onnx_path, identity, adapter.spec.input_shape(), config.precision, config.max_batch
    )
    engine, reason = cache.load(name, key, deserialize)
    if engine is None:
        if not config.build_if_missing:
            raise RuntimeUnavailableError(
                RuntimeKind.TENSORRT.value,
                f"{reason}; build_if_missing is off (run `mm-ros engines build`)",
            )
        from mm_ros.engines.builder import build_into_cache

        build_into_cache(name, onnx_path, key, cache, config.workspace_mib)
        engine, reason = cache.load(name, key, deserialize)
        if engine is None:
            raise RuntimeUnavailableError(
                RuntimeKind.TENSORRT.value, f"fresh build unusable: {reason}"
            )
    return TensorRTRuntime(engine, adapter.spec.input_shape(), index)


FACTORIES: dict[RuntimeKind, Factory] = {
    RuntimeKind.TENSORRT: _tensorrt,
    RuntimeKind.ONNXRUNTIME: _onnxruntime,
    RuntimeKind.TORCH_COMPILE: _torch_compile,
    RuntimeKind.TORCH: _torch,
}


def select_runtime(
    adapter: LoadedAdapter,
    config: EngineConfig,
    factories: Mapping[RuntimeKind, Factory] = FACTORIES,
    preference: Sequence[RuntimeKind] | None = None,
) -> Selection:
    """Create the first runtime in the preference list that works; log every one skipped."""
    config = replace(config, device=resolve_device(config.device, "adapter device"))
    fallbacks: list[Fallback] = []
    for kind in preference or config.preference:
        try:
            runtime = factories[kind](adapter, config)
        except RuntimeUnavailableError as err:
            fallbacks.append(Fallback(kind, err.reason))
            log.warning(
                "adapter %s: runtime %s unavailable, falling back: %s",
                adapter.spec.name,
                kind.value,
                err.reason,
            )
            continue
        log.info("adapter %s: running on %s", adapter.spec.name, runtime.describe())
        return Selection(runtime, fallbacks)
    reasons = "; ".join(f"{fb.kind.value}: {fb.reason}" for fb in fallbacks)
    raise EngineError(f"adapter {adapter.spec.name}: no runtime available ({reasons})")
