"""Native TensorRT: build an engine from ONNX and run it. The only module importing ``tensorrt``.

Written against both majors (REFERENCE.md section 5):

- TensorRT 10 (JetPack 6 on Orin: 10.3) has the tensor-name API (``num_io_tensors``,
  ``set_input_shape``, ``set_tensor_address``, ``execute_async_v3``) and still the weak-typing
  ``BuilderFlag.FP16``; strongly typed networks are opt-in (``NetworkDefinitionCreationFlag.
  STRONGLY_TYPED``).
- TensorRT 11 (desktop pip) is strongly typed only: no ``BuilderFlag.FP16``, so FP16 engines
  come from an FP16 ONNX (``mm-ros engines export --fp16``).

The decisions (:func:`plan_build`) are pure functions of the version and the flags present, so
they are unit-tested without the library; :func:`tensorrt_module` is the lazy import.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from mm_ros.core.errors import EngineError, RuntimeUnavailableError
from mm_ros.engines.runtimes.base import RuntimeKind, check_batch

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    import numpy as np
    from numpy.typing import NDArray

    from mm_ros.engines.cache import ShapeProfile

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "fp16")


def tensorrt_module() -> ModuleType:
    """Import ``tensorrt`` or raise RuntimeUnavailableError saying why and what to do."""
    try:
        import tensorrt as module
    except ImportError as err:
        raise RuntimeUnavailableError(
            RuntimeKind.TENSORRT.value,
            f"python module tensorrt not importable ({err}); on Jetson use JetPack's (a venv "
            "with --system-site-packages), on desktops `pip install tensorrt`",
        ) from err
    found: ModuleType = module
    return found


def major_version(version: str) -> int:
    """``"10.3.0.30"`` → 10; raises EngineError on a version it cannot read."""
    head = version.split(".", 1)[0]
    if not head.isdigit():
        raise EngineError(f"cannot read a TensorRT major version from {version!r}")
    return int(head)


@dataclass(frozen=True)
class BuildPlan:
    """How to configure the builder for one precision on one TensorRT version."""

    strongly_typed: bool  # network created with STRONGLY_TYPED (dtypes come from the ONNX)
    fp16_flag: bool  # set BuilderFlag.FP16 (weak typing; TensorRT 10 only)
    precision: str


def plan_build(major: int, has_fp16_flag: bool, precision: str, onnx_is_fp16: bool) -> BuildPlan:
    """Choose strongly typed vs weak typing for ``precision`` (fp32 | fp16).

    fp16 from an fp16 ONNX is strongly typed on every version; fp16 from an fp32 ONNX needs
    the FP16 builder flag, which TensorRT 11 removed.
    """
    if precision not in PRECISIONS:
        raise EngineError(f"precision: expected one of {PRECISIONS}, found {precision!r}")
    if major < 10:  # noqa: PLR2004 - the tensor-name API starts at 10
        raise EngineError(f"TensorRT {major}.x is too old: mm_ros needs TensorRT 10 or 11")
    if precision == "fp32":
        if onnx_is_fp16:
            raise EngineError("an fp32 engine needs an fp32 ONNX; this one is fp16")
        return BuildPlan(strongly_typed=True, fp16_flag=False, precision=precision)
    if onnx_is_fp16:
        return BuildPlan(strongly_typed=True, fp16_flag=False, precision=precision)
    if not has_fp16_flag:
        raise EngineError(
            f"TensorRT {major} has no BuilderFlag.FP16 (strongly typed only): export an fp16 "
            "ONNX with `mm-ros engines export --fp16` and build from it"
        )
    return BuildPlan(strongly_typed=False, fp16_flag=True, precision=precision)


def network_flags(trt: Any, plan: BuildPlan) -> int:
    """Creation flags for ``builder.create_network``; explicit batch is implicit since 10."""
    flags = 0
    kinds = trt.NetworkDefinitionCreationFlag
    if plan.strongly_typed and hasattr(kinds, "STRONGLY_TYPED"):
        flags |= 1 << int(kinds.STRONGLY_TYPED)
    return flags


def make_progress_monitor(trt: Any, on_step: Callable[[str, int, int], None]) -> Any:
    """Return an ``IProgressMonitor`` calling ``on_step(phase, step, steps)``, or None."""
    base = getattr(trt, "IProgressMonitor", None)
    if base is None:
        return None

    class Monitor(base):  # type: ignore[misc, valid-type]
        def __init__(self) -> None:
            super().__init__()
            self.steps: dict[str, int] = {}

        def phase_start(self, phase_name: str, parent_phase: str | None, num_steps: int) -> None:
            self.steps[phase_name] = num_steps

        def step_complete(self, phase_name: str, step: int) -> bool:
            on_step(phase_name, step + 1, self.steps.get(phase_name, 0))
            return True  # False would cancel the build

        def phase_finish(self, phase_name: str) -> None:
            self.steps.pop(phase_name, None)

    return Monitor()


def build_engine(
    onnx_path: Path,
    profile: ShapeProfile,
    precision: str,
    workspace_bytes: int,
    *,
    timing_cache: Path | None = None,
    on_step: Callable[[str, int, int], None] | None = None,
) -> bytes:
    """Build a serialized engine from ``onnx_path`` with one optimisation profile."""
    trt = tensorrt_module()
    import onnx

    model = onnx.load(str(onnx_path), load_external_data=False)
    onnx_is_fp16 = model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT16
    major = major_version(str(trt.__version__))
    plan = plan_build(major, hasattr(trt.BuilderFlag, "FP16"), precision, onnx_is_fp16)
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(network_flags(trt, plan))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise EngineError(f"TensorRT could not parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_bytes)
    if plan.fp16_flag:
        config.set_flag(trt.BuilderFlag.FP16)
    optimisation = builder.create_optimization_profile()
    name = network.get_input(0).name
    optimisation.set_shape(name, profile.min_shape, profile.opt_shape, profile.max_shape)
    config.add_optimization_profile(optimisation)
    cache_blob = timing_cache.read_bytes() if timing_cache and timing_cache.is_file() else b""
    cache = config.create_timing_cache(cache_blob)
    config.set_timing_cache(cache, ignore_mismatch=False)
    monitor = make_progress_monitor(trt, on_step) if on_step else None
    if monitor is not None:
        config.progress_monitor = monitor
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise EngineError(f"TensorRT {trt.__version__} failed to build {onnx_path} ({plan})")
    if timing_cache is not None:
        timing_cache.parent.mkdir(parents=True, exist_ok=True)
        timing_cache.write_bytes(bytes(config.get_timing_cache().serialize()))
    return bytes(serialized)


_RUNTIME: dict[str, Any] = {}  # one trt.Runtime (and its logger) per process, outliving engines


def deserialize(engine_bytes: bytes) -> Any:
    """Deserialize an engine; None (foreign version/GPU, corrupt) means a cache miss."""
    trt = tensorrt_module()
    if "runtime" not in _RUNTIME:
        _RUNTIME["logger"] = trt.Logger(trt.Logger.WARNING)
        _RUNTIME["runtime"] = trt.Runtime(_RUNTIME["logger"])
    return _RUNTIME["runtime"].deserialize_cuda_engine(engine_bytes)


@contextlib.contextmanager
def on_device(index: int) -> Iterator[None]:
    """Make CUDA device ``index`` current: TensorRT deserializes and runs engines there."""
    import torch

    if not torch.cuda.is_available():  # nothing to switch; what needs CUDA says so itself
        yield
        return
    with torch.cuda.device(index):
        yield


class TensorRTRuntime:
    """Runs a deserialized engine with torch CUDA tensors as buffers (tensor-name API, v3).

    ``device_index`` must be the CUDA device the engine was deserialized on (`on_device`).
    """

    kind = RuntimeKind.TENSORRT

    def __init__(self, engine: Any, input_shape: tuple[int, ...], device_index: int = 0) -> None:
        trt = tensorrt_module()
        import torch

        if not torch.cuda.is_available():
            raise RuntimeUnavailableError(self.kind.value, "no CUDA GPU visible to torch")
        self.trt_version = str(trt.__version__)
        self.input_shape = input_shape
        self.index = device_index
        self.device = f"cuda:{device_index}"
        self.engine = engine
        with on_device(device_index):
            self.context = engine.create_execution_context()
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        if len(inputs) != 1 or len(outputs) != 1:
            raise EngineError(
                f"adapter engines have 1 input and 1 output, found {inputs} {outputs}"
            )
        self.input_name, self.output_name = inputs[0], outputs[0]
        dtypes = {trt.DataType.FLOAT: torch.float32, trt.DataType.HALF: torch.float16}
        self.input_dtype = dtypes[engine.get_tensor_dtype(self.input_name)]
        self.output_dtype = dtypes[engine.get_tensor_dtype(self.output_name)]
        self.stream = torch.cuda.Stream(device=self.device)  # type: ignore[no-untyped-call]

    def describe(self) -> str:
        """``tensorrt <version> engine on cuda:N``."""
        return f"tensorrt {self.trt_version} engine on {self.device}"

    def forward(self, batch: NDArray[np.float32]) -> NDArray[np.float32]:
        """Run without the input check."""
        import torch

        # copies, buffers and the engine on one stream of the engine's device
        with torch.cuda.device(self.index), torch.cuda.stream(self.stream):
            x = torch.from_numpy(batch).to(self.device, dtype=self.input_dtype).contiguous()
            self.context.set_input_shape(self.input_name, tuple(x.shape))
            out = torch.empty(
                tuple(self.context.get_tensor_shape(self.output_name)),
                dtype=self.output_dtype,
                device=self.device,
            )
            self.context.set_tensor_address(self.input_name, x.data_ptr())
            self.context.set_tensor_address(self.output_name, out.data_ptr())
            if not self.context.execute_async_v3(self.stream.cuda_stream):
                raise EngineError(f"{self.describe()}: execute_async_v3 failed on {batch.shape}")
        self.stream.synchronize()
        return out.float().cpu().numpy()

    def run(self, batch: NDArray[np.float32]) -> NDArray[np.float32]:
        """(B, *input_shape) → (B, N, D)."""
        return self.forward(check_batch(batch, self.input_shape, self.describe()))

    def close(self) -> None:
        """Release the context and engine (device memory)."""
        del self.context, self.engine
