"""TokenEmbeddings payloads: round trip and every malformed field refused with the reason."""

from __future__ import annotations

import numpy as np
import pytest

from mm_ros.core.embeddings import decode_tokens, encode_tokens
from mm_ros.core.errors import InvalidValueError


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_round_trip(dtype: str) -> None:
    tokens = np.random.default_rng(0).standard_normal((8, 32)).astype(np.float32)
    shape, name, data = encode_tokens(tokens, dtype)
    assert shape == [8, 32]
    assert name == dtype
    back = decode_tokens(shape, name, data)
    assert back.dtype == np.float32
    atol = 1e-2 if dtype == "float16" else 0.0
    np.testing.assert_allclose(back, tokens, atol=atol)


@pytest.mark.parametrize(
    ("shape", "dtype", "nbytes", "match"),
    [
        ([8, 32], "int8", 256, "dtype: expected one of"),
        ([8], "float32", 32, r"shape: expected \(num_tokens, d_model\)"),
        ([0, 32], "float32", 0, "shape"),
        ([8, 32], "float32", 100, "expected 1024 bytes for shape \\[8, 32\\] float32, found 100"),
    ],
)
def test_malformed_messages_are_refused(
    shape: list[int], dtype: str, nbytes: int, match: str
) -> None:
    with pytest.raises(InvalidValueError, match=match):
        decode_tokens(shape, dtype, bytes(nbytes))


def test_non_finite_tokens_are_refused() -> None:
    _, _, data = encode_tokens(np.full((2, 2), np.nan, np.float32), "float32")
    with pytest.raises(InvalidValueError, match="NaN or inf"):
        decode_tokens([2, 2], "float32", data)


def test_encode_checks_its_input() -> None:
    with pytest.raises(InvalidValueError, match="found shape"):
        encode_tokens(np.zeros(3, np.float32), "float32")
