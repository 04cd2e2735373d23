"""The runtime protocol every implementation follows, and the input check they share."""

from __future__ import annotations

from enum import Enum
from typing import TYPE_CHECKING, Protocol

import numpy as np

from mm_ros.core.errors import AdapterInputError

if TYPE_CHECKING:
    from numpy.typing import NDArray


class RuntimeKind(str, Enum):
    """Runtimes, fastest first on a GPU machine (DESIGN.md section 8)."""

    TENSORRT = "tensorrt"  # native TensorRT engine from the cache
    ONNXRUNTIME = "onnxruntime"  # TensorRT EP / CUDA EP / CPU EP, in the configured order
    TORCH_COMPILE = "torch_compile"  # inductor; CUDA graphs on GPU
    TORCH = "torch"  # eager, CPU or CUDA


class Runtime(Protocol):
    """Runs one adapter: ``(B, *input_shape)`` float32 → ``(B, N, D)`` float32."""

    kind: RuntimeKind
    input_shape: tuple[int, ...]

    def describe(self) -> str:
        """Say what is really running, e.g. ``onnxruntime 1.31 [CPUExecutionProvider]``."""
        ...

    def run(self, batch: NDArray[np.float32]) -> NDArray[np.float32]:
        """Encode a batch; raises AdapterInputError on a wrong shape/dtype/non-finite input."""
        ...

    def close(self) -> None:
        """Release the session/engine/device memory."""
        ...


def check_batch(batch: object, input_shape: tuple[int, ...], what: str) -> NDArray[np.float32]:
    """Return ``batch`` if it is a finite float32 ``(B, *input_shape)`` array.

    Otherwise raise AdapterInputError naming what was expected and what was found.
    """
    expected = f"float32 (B, {', '.join(str(d) for d in input_shape)})"
    if not isinstance(batch, np.ndarray):
        raise AdapterInputError(f"{what}: expected {expected} array, found {type(batch).__name__}")
    if batch.dtype != np.float32:
        raise AdapterInputError(f"{what}: expected {expected}, found dtype {batch.dtype}")
    if batch.ndim != len(input_shape) + 1 or tuple(batch.shape[1:]) != input_shape:
        raise AdapterInputError(f"{what}: expected {expected}, found shape {batch.shape}")
    if batch.shape[0] < 1:
        raise AdapterInputError(f"{what}: expected a batch of at least 1, found {batch.shape}")
    bad = int(np.count_nonzero(~np.isfinite(batch)))
    if bad:
        raise AdapterInputError(f"{what}: expected finite values, found {bad} NaN/Inf")
    return np.ascontiguousarray(batch)
