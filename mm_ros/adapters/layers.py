"""Small building blocks shared by the encoders: attention, transformer block, pooling, projector.

Written with plain matmul/softmax so they export to ONNX the same way with the dynamo and the
legacy exporter and map onto TensorRT without plugins.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from mm_ros.adapters.spec import ProjectorKind


class Attention(nn.Module):
    """Multi-head attention of ``query`` over ``context`` (self-attention when it is None)."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(width, width)
        self.kv = nn.Linear(width, 2 * width)
        self.out = nn.Linear(width, width)

    def forward(self, query: Tensor, context: Tensor | None = None) -> Tensor:
        """(B, Q, C), (B, K, C) → (B, Q, C)."""
        ctx = query if context is None else context
        b, nq, c = query.shape
        nk = ctx.shape[1]
        d = c // self.heads
        q = self.q(query).reshape(b, nq, self.heads, d).transpose(1, 2)  # (B, h, Q, d)
        k, v = self.kv(ctx).reshape(b, nk, 2, self.heads, d).permute(2, 0, 3, 1, 4)  # (B, h, K, d)
        weights = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(d), dim=-1)  # (B, h, Q, K)
        mixed = (weights @ v).transpose(1, 2).reshape(b, nq, c)
        return self.out(mixed)  # type: ignore[no-any-return]


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(ln(x)); x + mlp(ln(x))."""

    def __init__(self, width: int, heads: int, mlp_ratio: int = 4) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(width)
        self.attn = Attention(width, heads)
        self.ln2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(
            nn.Linear(width, mlp_ratio * width), nn.GELU(), nn.Linear(mlp_ratio * width, width)
        )

    def forward(self, x: Tensor) -> Tensor:
        """(B, N, C) → (B, N, C)."""
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))  # type: ignore[no-any-return]


class AttentionPool(nn.Module):
    """``count`` learned queries read a token sequence (Perceiver-style): any length → count."""

    def __init__(self, width: int, heads: int, count: int) -> None:
        super().__init__()
        self.queries = nn.Parameter(torch.randn(1, count, width) * 0.02)
        self.ln = nn.LayerNorm(width)
        self.attn = Attention(width, heads)

    def forward(self, x: Tensor) -> Tensor:
        """(B, N, C) → (B, count, C)."""
        queries = self.queries.expand(x.shape[0], -1, -1)
        return queries + self.attn(queries, self.ln(x))  # type: ignore[no-any-return]


def make_projector(kind: ProjectorKind, in_width: int, out_width: int) -> nn.Module:
    """Linear or 2-layer MLP from the encoder/reducer width to the LLM embedding width."""
    if kind is ProjectorKind.LINEAR:
        return nn.Linear(in_width, out_width)
    return nn.Sequential(nn.Linear(in_width, out_width), nn.GELU(), nn.Linear(out_width, out_width))


class Encoder(nn.Module):
    """A stack of :class:`Block` with a final norm."""

    def __init__(self, width: int, heads: int, depth: int) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(Block(width, heads) for _ in range(depth))
        self.ln = nn.LayerNorm(width)

    def forward(self, x: Tensor) -> Tensor:
        """(B, N, C) → (B, N, C)."""
        for block in self.blocks:
            x = block(x)
        return self.ln(x)  # type: ignore[no-any-return]
