"""torch → ONNX export of an adapter, and the parity report against torch eager.

Both exporters are supported and chosen explicitly: the dynamo exporter (``torch.export``,
opset >= 18, needs onnxscript; torch's default since 2.9) and the legacy TorchScript one.
The batch axis is dynamic; every other axis is fixed by the adapter spec.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mm_ros.core.errors import EngineError

if TYPE_CHECKING:
    from numpy.typing import NDArray
    from torch import nn

INPUT_NAME = "input"
OUTPUT_NAME = "tokens"
DYNAMO_MIN_OPSET = 18
EXPORT_BATCH = 2  # example batch for tracing: not 1, so the batch axis cannot be specialised


def export_onnx(
    module: nn.Module,
    input_shape: tuple[int, ...],
    path: Path,
    *,
    dynamo: bool,
    opset: int = 18,
    fp16: bool = False,
) -> Path:
    """Write ``module`` as ONNX to ``path`` (single file, weights inside); return ``path``."""
    import torch

    if dynamo and opset < DYNAMO_MIN_OPSET:
        raise EngineError(f"the dynamo exporter needs opset >= {DYNAMO_MIN_OPSET}, found {opset}")
    dtype = torch.float16 if fp16 else torch.float32
    model = module.to(dtype=dtype).eval()
    example = torch.zeros(EXPORT_BATCH, *input_shape, dtype=dtype)
    path.parent.mkdir(parents=True, exist_ok=True)
    quiet = io.StringIO()
    onnx_log = logging.getLogger("torch.onnx")  # per-export notes about optional torchvision ops
    level = onnx_log.level
    onnx_log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(quiet):
            warnings.simplefilter("ignore")
            if dynamo:
                batch = torch.export.Dim("batch", min=1, max=1024)
                torch.onnx.export(
                    model,
                    (example,),
                    str(path),
                    dynamo=True,
                    external_data=False,
                    input_names=[INPUT_NAME],
                    output_names=[OUTPUT_NAME],
                    dynamic_shapes=({0: batch},),
                    opset_version=opset,
                    verbose=False,
                )
            else:
                torch.onnx.export(
                    model,
                    (example,),
                    str(path),
                    dynamo=False,
                    input_names=[INPUT_NAME],
                    output_names=[OUTPUT_NAME],
                    dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
                    opset_version=opset,
                )
    except Exception as err:
        exporter = "dynamo" if dynamo else "legacy"
        raise EngineError(
            f"{exporter} ONNX export to {path} failed: {type(err).__name__}: {err}"
        ) from err
    finally:
        onnx_log.setLevel(level)
        module.to(dtype=torch.float32)
    return path


@dataclass(frozen=True)
class Parity:
    """ONNX Runtime vs torch eager (fp32) on the same random batch."""

    max_abs_error: float
    cosine: float  # of the flattened outputs; 1.0 = same direction
    providers: tuple[str, ...]
    batch: int

    def within(self, atol: float) -> bool:
        """Return True when the largest element-wise difference is at most ``atol``."""
        return self.max_abs_error <= atol


def compare(reference: NDArray[np.float32], candidate: NDArray[np.float32]) -> tuple[float, float]:
    """Max abs error and cosine similarity of two same-shape outputs."""
    if reference.shape != candidate.shape:
        raise EngineError(
            f"parity: reference shape {reference.shape} != candidate {candidate.shape}"
        )
    ref = reference.astype(np.float64).ravel()
    cand = candidate.astype(np.float64).ravel()
    denom = float(np.linalg.norm(ref) * np.linalg.norm(cand)) or 1.0
    return float(np.max(np.abs(ref - cand))), float(ref @ cand / denom)


def parity_report(
    module: nn.Module, input_shape: tuple[int, ...], onnx_path: Path, batch: int = 2, seed: int = 0
) -> Parity:
    """Run torch eager (fp32) and ONNX Runtime CPU on one random batch; compare the outputs."""
    import torch

    from mm_ros.engines.runtimes.onnxruntime import CPU_EP, OnnxRuntime, OrtOptions

    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, *input_shape, generator=generator)
    with torch.inference_mode():
        reference = module.float().eval()(x).numpy()
    runtime = OnnxRuntime(onnx_path, input_shape, OrtOptions(providers=(CPU_EP,)))
    try:
        candidate = runtime.run(x.numpy())
    finally:
        providers = tuple(runtime.providers_used)
        runtime.close()
    error, cosine = compare(reference, candidate)
    return Parity(error, cosine, providers, batch)
