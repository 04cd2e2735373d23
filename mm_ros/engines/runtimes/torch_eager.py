"""Torch eager runtime (CPU or CUDA): the reference every other runtime is compared with."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mm_ros.core.errors import RuntimeUnavailableError
from mm_ros.engines.runtimes.base import RuntimeKind, check_batch

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray
    from torch import nn


class TorchRuntime:
    """Runs the module as is under ``torch.inference_mode``."""

    kind = RuntimeKind.TORCH

    def __init__(
        self, module: nn.Module, input_shape: tuple[int, ...], device: str = "cpu"
    ) -> None:
        import torch

        if device.startswith("cuda") and not torch.cuda.is_available():
            raise RuntimeUnavailableError(self.kind.value, f"device {device}: no CUDA GPU visible")
        self.input_shape = input_shape
        self.device = torch.device(device)
        self.module = module.to(self.device).eval()

    def describe(self) -> str:
        """``torch <version> eager on <device>``."""
        import torch

        return f"torch {torch.__version__} eager on {self.device}"

    def forward(self, batch: NDArray[np.float32]) -> NDArray[np.float32]:
        """Run without the input check (callers have checked)."""
        import torch

        with torch.inference_mode():
            out = self.module(torch.from_numpy(batch).to(self.device))
        return out.float().cpu().numpy()  # type: ignore[no-any-return]

    def run(self, batch: NDArray[np.float32]) -> NDArray[np.float32]:
        """(B, *input_shape) → (B, N, D)."""
        return self.forward(check_batch(batch, self.input_shape, self.describe()))

    def close(self) -> None:
        """Drop the module reference (its memory goes with the last one)."""
        del self.module
