"""``mm_ros/msg/TokenEmbeddings`` payloads: adapter tokens ↔ (shape, dtype, bytes).

Remote adapter nodes encode near the sensors and send tokens; the model service decodes them.
Row-major little-endian; bfloat16 travels as float32 values (numpy has no bfloat16).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from mm_ros.core.errors import InvalidValueError

if TYPE_CHECKING:
    from numpy.typing import NDArray

WIRE_DTYPES: dict[str, np.dtype[Any]] = {
    "float32": np.dtype("<f4"),
    "float16": np.dtype("<f2"),
    "bfloat16": np.dtype("<f4"),
}
TOKEN_DIMS = 2  # (num_tokens, d_model)
MAX_TOKEN_BYTES = 64 << 20  # far above any adapter's output; refuses corrupt shapes early


def encode_tokens(tokens: NDArray[Any], dtype: str) -> tuple[list[int], str, bytes]:
    """Return (shape, dtype name, bytes) of (N, D) ``tokens`` for a TokenEmbeddings message."""
    if dtype not in WIRE_DTYPES:
        raise InvalidValueError(
            f"token dtype: expected one of {sorted(WIRE_DTYPES)}, found {dtype!r}",
            field="dtype",
            expected=sorted(WIRE_DTYPES),
            found=dtype,
        )
    if tokens.ndim != TOKEN_DIMS:
        raise InvalidValueError(
            f"tokens: expected (num_tokens, d_model), found shape {tokens.shape}",
            field="shape",
            expected="2 dims",
            found=tokens.shape,
        )
    data = np.ascontiguousarray(tokens, dtype=WIRE_DTYPES[dtype]).tobytes()
    return [int(d) for d in tokens.shape], dtype, data


def decode_tokens(
    shape: Any, dtype: str, data: bytes | bytearray | memoryview | NDArray[Any]
) -> NDArray[Any]:
    """Return the (N, D) float array a TokenEmbeddings message carries, checking every field."""
    if dtype not in WIRE_DTYPES:
        raise InvalidValueError(
            f"TokenEmbeddings dtype: expected one of {sorted(WIRE_DTYPES)}, found {dtype!r}",
            field="dtype",
            expected=sorted(WIRE_DTYPES),
            found=dtype,
        )
    dims = [int(d) for d in shape]
    if len(dims) != TOKEN_DIMS or min(dims, default=0) < 1:
        raise InvalidValueError(
            f"TokenEmbeddings shape: expected (num_tokens, d_model) >= 1, found {dims}",
            field="shape",
            expected="(N, D)",
            found=dims,
        )
    raw = bytes(data) if not isinstance(data, np.ndarray) else data.tobytes()
    item = WIRE_DTYPES[dtype].itemsize
    want = dims[0] * dims[1] * item
    if want > MAX_TOKEN_BYTES or len(raw) != want:
        raise InvalidValueError(
            f"TokenEmbeddings data: expected {want} bytes for shape {dims} {dtype}, "
            f"found {len(raw)}",
            field="data",
            expected=want,
            found=len(raw),
        )
    values = np.frombuffer(raw, WIRE_DTYPES[dtype]).reshape(dims)
    if not np.isfinite(values).all():
        raise InvalidValueError(
            "TokenEmbeddings data: expected finite values, found NaN or inf",
            field="data",
            expected="finite",
            found="NaN/inf",
        )
    return values.astype(np.float32)
