"""``engines.device.gpu_memory``: torch.cuda figures for /diagnostics (None without a GPU)."""

from __future__ import annotations

import pytest
import torch

from mm_ros.core.diagnostics import DiagnosticLimits, gpu_health
from mm_ros.engines.device import gpu_memory


@pytest.mark.parametrize("device", ["cpu", "cuda:0"])
def test_none_without_cuda_or_on_cpu(device: str) -> None:
    if device.startswith("cuda") and torch.cuda.is_available():
        pytest.skip("a GPU is present: see test_figures_on_a_gpu")
    assert gpu_memory(device) is None


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_figures_on_a_gpu() -> None:
    block = torch.empty(64 << 20, dtype=torch.uint8, device="cuda:0")  # 64 MiB held
    figures = gpu_memory("cuda:0")
    assert figures is not None
    assert figures.allocated_bytes >= block.numel()
    assert figures.reserved_bytes >= figures.allocated_bytes
    assert 0 < figures.free_bytes < figures.total_bytes  # type: ignore[operator]
    assert gpu_health(figures, DiagnosticLimits()).values["device"].startswith("cuda:0 ")
