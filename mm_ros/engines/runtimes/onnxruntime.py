"""ONNX Runtime: TensorRT EP (engine/timing caches), CUDA EP, CPU EP, in the configured order.

ONNX Runtime silently drops providers it cannot create; this module compares what was asked
with ``session.get_providers()`` and reports every dropped provider (REFERENCE.md section 5).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mm_ros.core.errors import ConfigError, EngineError, RuntimeUnavailableError
from mm_ros.engines.export import INPUT_NAME
from mm_ros.engines.runtimes.base import RuntimeKind, check_batch

if TYPE_CHECKING:
    from numpy.typing import NDArray

log = logging.getLogger(__name__)

TRT_EP = "TensorrtExecutionProvider"
CUDA_EP = "CUDAExecutionProvider"
CPU_EP = "CPUExecutionProvider"


@dataclass(frozen=True)
class OrtOptions:
    """Session settings."""

    providers: tuple[str, ...] = (TRT_EP, CUDA_EP, CPU_EP)  # preference order
    trt_cache_dir: str = ""  # TensorRT EP engine + timing caches; "" disables them
    trt_fp16: bool = False  # TensorRT EP weak-typed fp16 (TensorRT 10 only; 11 needs fp16 ONNX)
    trt_workspace_bytes: int = 1 << 30  # 1 GiB fits an 8 GB Orin next to the LLM
    intra_op_threads: int = 0  # 0 = ONNX Runtime's default (one per physical core)
    max_batch: int = 4  # TensorRT EP shape profile: batch 1 (opt 1) .. max_batch
    device_id: int = 0  # CUDA device of the CUDA and TensorRT EPs (the adapter device's N)

    def __post_init__(self) -> None:
        if not self.providers:
            raise ConfigError("onnxruntime: expected at least one execution provider, found none")


def provider_options(
    name: str, options: OrtOptions, input_name: str = "", input_shape: tuple[int, ...] = ()
) -> dict[str, Any]:
    """Return the options of one execution provider.

    The CUDA and TensorRT EPs run on CUDA device ``device_id``. TensorRT EP gets its engine and
    timing caches, so engines are not rebuilt at every start, and an explicit batch profile, so
    it does not rebuild for every new batch size.
    """
    if name == CUDA_EP:
        return {"device_id": options.device_id}
    if name != TRT_EP:
        return {}
    trt: dict[str, Any] = {
        "device_id": options.device_id,
        "trt_fp16_enable": options.trt_fp16,
        "trt_max_workspace_size": options.trt_workspace_bytes,
    }
    if input_name and input_shape:
        dims = "x".join(str(d) for d in input_shape)
        trt |= {
            "trt_profile_min_shapes": f"{input_name}:1x{dims}",
            "trt_profile_opt_shapes": f"{input_name}:1x{dims}",
            "trt_profile_max_shapes": f"{input_name}:{options.max_batch}x{dims}",
        }
    if options.trt_cache_dir:
        trt |= {
            "trt_engine_cache_enable": True,
            "trt_engine_cache_path": options.trt_cache_dir,
            "trt_timing_cache_enable": True,
            "trt_timing_cache_path": options.trt_cache_dir,
        }
    return trt


class OnnxRuntime:
    """An InferenceSession over an exported adapter; ``providers_used`` is what really runs."""

    kind = RuntimeKind.ONNXRUNTIME

    def __init__(self, onnx_path: Path, input_shape: tuple[int, ...], options: OrtOptions) -> None:
        try:
            import onnxruntime as ort
        except ImportError as err:
            raise RuntimeUnavailableError(
                self.kind.value,
                f"python module onnxruntime not installed ({err}); install mm-ros[cpu] or "
                "mm-ros[gpu] (never both)",
            ) from err
        if not onnx_path.is_file():
            raise RuntimeUnavailableError(
                self.kind.value, f"no ONNX file at {onnx_path}: run `mm-ros engines export` first"
            )
        self.input_shape = input_shape
        self.version = str(ort.__version__)
        available = set(ort.get_available_providers())
        asked = [p for p in options.providers if p in available]
        self.dropped: dict[str, str] = {
            p: "not in this onnxruntime build" for p in options.providers if p not in available
        }
        if not asked:
            raise RuntimeUnavailableError(
                self.kind.value,
                f"none of {list(options.providers)} available (this build has {sorted(available)})",
            )
        session_options = ort.SessionOptions()
        session_options.intra_op_num_threads = options.intra_op_threads
        if options.trt_cache_dir:
            Path(options.trt_cache_dir).mkdir(parents=True, exist_ok=True)
        try:
            self.session = ort.InferenceSession(
                str(onnx_path),
                sess_options=session_options,
                providers=[
                    (p, provider_options(p, options, INPUT_NAME, input_shape)) for p in asked
                ],
            )
        except Exception as err:
            raise RuntimeUnavailableError(
                self.kind.value, f"cannot create a session for {onnx_path}: {err}"
            ) from err
        self.providers_used: list[str] = list(self.session.get_providers())
        for p in asked:
            if p not in self.providers_used:
                self.dropped[p] = "failed to initialise (ONNX Runtime fell back silently)"
        for provider, why in self.dropped.items():
            log.warning("onnxruntime: provider %s not used: %s", provider, why)
        self.input_name = self.session.get_inputs()[0].name
        self.input_is_fp16 = self.session.get_inputs()[0].type == "tensor(float16)"

    def describe(self) -> str:
        """``onnxruntime <version> [providers really used]``."""
        return f"onnxruntime {self.version} [{', '.join(self.providers_used)}]"

    def forward(self, batch: NDArray[np.float32]) -> NDArray[np.float32]:
        """Run without the input check."""
        feed = batch.astype(np.float16) if self.input_is_fp16 else batch
        try:
            (out,) = self.session.run(None, {self.input_name: feed})
        except Exception as err:
            raise EngineError(f"{self.describe()}: run failed on {batch.shape}: {err}") from err
        return np.asarray(out, dtype=np.float32)

    def run(self, batch: NDArray[np.float32]) -> NDArray[np.float32]:
        """(B, *input_shape) → (B, N, D)."""
        return self.forward(check_batch(batch, self.input_shape, self.describe()))

    def close(self) -> None:
        """Drop the session."""
        del self.session
