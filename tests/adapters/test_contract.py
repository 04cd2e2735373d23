"""One contract for every adapter x reducer x runtime available here (DESIGN.md section 8)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pytest

from mm_ros.adapters.build import example_input
from mm_ros.engines.export import parity_report
from mm_ros.engines.runtimes.onnxruntime import CPU_EP, OnnxRuntime, OrtOptions
from mm_ros.engines.runtimes.torch_compile import TorchCompileRuntime
from mm_ros.engines.runtimes.torch_eager import TorchRuntime
from tests.adapters.conftest import EXPORTERS, SPEC_IDS, SPECS, TinyAdapters

if TYPE_CHECKING:
    from mm_ros.adapters.spec import AdapterSpec
    from mm_ros.engines.runtimes.base import Runtime

RUNTIMES = ["torch", "onnxruntime-dynamo", "onnxruntime-legacy"]
FP32_ATOL = 1e-4


def make_runtime(tiny: TinyAdapters, spec: AdapterSpec, runtime: str) -> Runtime:
    adapter = tiny.adapter(spec)
    if runtime == "torch":
        return TorchRuntime(adapter.module, spec.input_shape())
    if runtime == "torch_compile":
        return TorchCompileRuntime(adapter.module, spec.input_shape())
    exporter = runtime.split("-", 1)[1]
    options = OrtOptions(providers=(CPU_EP,))
    return OnnxRuntime(tiny.onnx_path(spec, exporter), spec.input_shape(), options)


def check_contract(runtime: Runtime, spec: AdapterSpec) -> None:
    batch = example_input(spec, 4, seed=1).numpy()
    out = runtime.run(batch)
    assert out.shape == (4, spec.token_count, spec.llm_width)  # (B, N, d)
    assert out.dtype == np.float32
    assert np.isfinite(out).all()
    assert np.array_equal(out, runtime.run(batch)), "same input, different output"
    singles = np.concatenate([runtime.run(batch[i : i + 1]) for i in range(4)])
    np.testing.assert_allclose(out, singles, atol=1e-5, rtol=0)
    assert not np.allclose(out[0], out[1]), "different inputs gave the same tokens"


@pytest.mark.parametrize("runtime", RUNTIMES)
@pytest.mark.parametrize("spec", SPECS, ids=SPEC_IDS)
def test_contract(tiny: TinyAdapters, spec: AdapterSpec, runtime: str) -> None:
    check_contract(make_runtime(tiny, spec, runtime), spec)


def test_contract_torch_compile(tiny: TinyAdapters) -> None:
    # inductor on 2 CPU cores costs ~30 s per adapter, so the CPU suite compiles one adapter;
    # the compiled path is the same code for every adapter (a GPU run covers CUDA graphs).
    spec = SPECS[0]
    check_contract(make_runtime(tiny, spec, "torch_compile"), spec)


@pytest.mark.parametrize("exporter", list(EXPORTERS))
@pytest.mark.parametrize("spec", SPECS, ids=SPEC_IDS)
def test_parity_torch_vs_onnxruntime_cpu(
    tiny: TinyAdapters, spec: AdapterSpec, exporter: str
) -> None:
    adapter = tiny.adapter(spec)
    parity = parity_report(
        adapter.module, spec.input_shape(), tiny.onnx_path(spec, exporter), batch=3
    )
    assert parity.providers == (CPU_EP,)
    assert parity.max_abs_error <= FP32_ATOL, parity
    assert parity.cosine > 0.99999, parity
