"""torch.compile (inductor) runtime; on CUDA with CUDA graphs (``mode="reduce-overhead"``).

This is the compiled path that can be checked on any CUDA machine, with or without TensorRT.
Compilation happens at creation (a warm-up on an example batch), so a failing compiler shows up
as RuntimeUnavailableError during selection rather than on the first sensor frame.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import numpy as np

from mm_ros.core.errors import RuntimeUnavailableError
from mm_ros.engines.runtimes.base import RuntimeKind, check_batch

if TYPE_CHECKING:
    from numpy.typing import NDArray
    from torch import nn


class TorchCompileRuntime:
    """Inductor-compiled module with static shapes for the batch sizes it has seen."""

    kind = RuntimeKind.TORCH_COMPILE

    def __init__(
        self,
        module: nn.Module,
        input_shape: tuple[int, ...],
        device: str = "cpu",
        warmup_batch: int = 1,
    ) -> None:
        import torch

        if device.startswith("cuda") and not torch.cuda.is_available():
            raise RuntimeUnavailableError(self.kind.value, f"device {device}: no CUDA GPU visible")
        self.input_shape = input_shape
        self.device = torch.device(device)
        self.mode = "reduce-overhead" if self.device.type == "cuda" else "default"
        self.module = module.to(self.device).eval()
        try:
            with warnings.catch_warnings():  # inductor's imports warn about torch.jit internals
                warnings.simplefilter("ignore", DeprecationWarning)
                self.compiled = torch.compile(self.module, mode=self.mode, dynamic=False)
                self.forward(np.zeros((warmup_batch, *input_shape), dtype=np.float32))
        except Exception as err:
            raise RuntimeUnavailableError(
                self.kind.value, f"compilation failed: {type(err).__name__}: {err}"
            ) from err

    def describe(self) -> str:
        """``torch <version> compile(<mode>) on <device>``."""
        import torch

        return f"torch {torch.__version__} compile({self.mode}) on {self.device}"

    def forward(self, batch: NDArray[np.float32]) -> NDArray[np.float32]:
        """Run without the input check."""
        import torch

        with torch.inference_mode():
            out = self.compiled(torch.from_numpy(batch).to(self.device))
        return out.float().cpu().numpy().copy()  # type: ignore[no-any-return]  # graph-owned buffer

    def run(self, batch: NDArray[np.float32]) -> NDArray[np.float32]:
        """(B, *input_shape) → (B, N, D)."""
        return self.forward(check_batch(batch, self.input_shape, self.describe()))

    def close(self) -> None:
        """Drop the compiled graph."""
        del self.compiled, self.module
