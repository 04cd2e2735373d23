"""Image token reducers from the seeds, each a setting (``ReducerSpec.kind``).

Every reducer maps encoder tokens ``(B, L, C)`` of a ``grid x grid`` raster to ``(B, N, C')``;
``patch_mining`` also reads the high-resolution feature map ``(B, C, grid*r, grid*r)``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from mm_ros.adapters.spec import ReducerKind, ReducerSpec
from mm_ros.core.errors import ConfigError

MASKED_LOGIT = -1.0e4  # additive mask; finite so fp16 engines do not produce NaN


class CrossRead(nn.Module):
    """Single-head attention parts the reducers share: normed query/key projections, value, out."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.ln_q = nn.LayerNorm(width)
        self.ln_k = nn.LayerNorm(width)
        self.q = nn.Linear(width, width)
        self.k = nn.Linear(width, width)
        self.v = nn.Linear(width, width)
        self.out = nn.Linear(width, width)

    def query(self, x: Tensor) -> Tensor:
        """(..., C) → (..., C) scaled by 1/sqrt(C), ready for a dot product with keys."""
        return self.q(self.ln_q(x)) / math.sqrt(x.shape[-1])  # type: ignore[no-any-return]

    def key(self, x: Tensor) -> Tensor:
        """(..., C) → (..., C)."""
        return self.k(self.ln_k(x))  # type: ignore[no-any-return]


class NoReducer(nn.Module):
    """Keep every token."""

    def __init__(self, width: int, grid: int) -> None:
        super().__init__()
        self.out_width = width
        self.token_count = grid * grid

    def forward(self, tokens: Tensor, hires: Tensor | None = None) -> Tensor:
        """(B, L, C) → (B, L, C)."""
        return tokens


class Concat4(nn.Module):
    """MiniGPT-v2: every 4 raster-consecutive tokens (a 1x4 strip) concatenated along channels.

    Token ``j`` of the output is ``[t[4j], t[4j+1], t[4j+2], t[4j+3]]``; with the grid width a
    multiple of 4 a strip never wraps to the next row.
    """

    def __init__(self, width: int, grid: int) -> None:
        super().__init__()
        if grid % 4:
            raise ConfigError(f"concat4 needs a grid width divisible by 4, found {grid}")
        self.out_width = 4 * width
        self.token_count = grid * grid // 4

    def forward(self, tokens: Tensor, hires: Tensor | None = None) -> Tensor:
        """(B, L, C) → (B, L/4, 4C)."""
        b, length, c = tokens.shape
        return tokens.reshape(b, length // 4, 4 * c)


class Concat4Columns(nn.Module):
    """``concat4`` over 4x1 column strips: four vertically adjacent tokens along channels.

    Output token ``(r, c)``, at index ``r * grid + c`` (raster order over a ``grid/4 x grid``
    token grid), is ``[t[4r, c], t[4r+1, c], t[4r+2, c], t[4r+3, c]]`` in patch (row, column).
    A 1x4 strip spans a third of a 12-patch row, so two objects side by side often share one;
    a column strip is one patch wide.
    """

    def __init__(self, width: int, grid: int) -> None:
        super().__init__()
        if grid % 4:
            raise ConfigError(f"concat4_columns needs a grid height divisible by 4, found {grid}")
        self.grid = grid
        self.out_width = 4 * width
        self.token_count = grid * grid // 4

    def forward(self, tokens: Tensor, hires: Tensor | None = None) -> Tensor:
        """(B, L, C) → (B, L/4, 4C)."""
        b, _, c = tokens.shape
        g = self.grid
        strips = tokens.reshape(b, g // 4, 4, g, c).permute(0, 1, 3, 2, 4)  # (B, g/4, g, 4, C)
        return strips.reshape(b, g * g // 4, 4 * c)


class PatchMining(nn.Module):
    """Mini-Gemini patch-info mining: each low-res token attends to its own r x r high-res cells.

    Output = token + W_o(softmax(q k^T / sqrt(C)) v) over the token's region only; same count.
    """

    def __init__(self, width: int, grid: int, factor: int) -> None:
        super().__init__()
        if factor < 2:  # noqa: PLR2004 - a 1x1 region is no mining
            raise ConfigError(f"patch_mining needs hires_factor >= 2, found {factor}")
        self.grid, self.factor = grid, factor
        self.out_width = width
        self.token_count = grid * grid
        self.read = CrossRead(width)

    def regions(self, hires: Tensor) -> Tensor:
        """(B, C, g*r, g*r) → (B, g*g, r*r, C): each low-res token's cells, raster order."""
        b, c = hires.shape[:2]
        g, r = self.grid, self.factor
        cells = hires.reshape(b, c, g, r, g, r).permute(0, 2, 4, 3, 5, 1)  # (B, g, g, r, r, C)
        return cells.reshape(b, g * g, r * r, c)

    def region_attention(self, tokens: Tensor, hires: Tensor) -> Tensor:
        """Attention weights of each token over its own cells: (B, L, r*r), rows sum to 1."""
        q = self.read.query(tokens).unsqueeze(2)  # (B, L, 1, C)
        k = self.read.key(self.regions(hires))  # (B, L, r*r, C)
        logits = (q * k).sum(-1)
        return torch.softmax(logits, dim=-1)

    def attention_map(self, tokens: Tensor, hires: Tensor) -> Tensor:
        """Dense weights over every high-res cell: (B, L, (g*r)^2), zero outside each region."""
        weights = self.region_attention(tokens, hires)  # (B, L, r*r)
        b, g, r = tokens.shape[0], self.grid, self.factor
        dense = torch.zeros(b, g, g, g * r, g * r, dtype=weights.dtype)
        local = weights.reshape(b, g, g, r, r)
        for i in range(g):  # diagnostics only: a plain loop over the small grid
            for j in range(g):
                dense[:, i, j, i * r : (i + 1) * r, j * r : (j + 1) * r] = local[:, i, j]
        return dense.reshape(b, g * g, (g * r) ** 2)

    def forward(self, tokens: Tensor, hires: Tensor | None = None) -> Tensor:
        """(B, L, C) + (B, C, g*r, g*r) → (B, L, C)."""
        if hires is None:
            raise ConfigError("patch_mining needs the high-resolution feature map")
        weights = self.region_attention(tokens, hires)  # (B, L, r*r)
        values = self.read.v(self.regions(hires))  # (B, L, r*r, C)
        mined = (weights.unsqueeze(-1) * values).sum(2)  # (B, L, C)
        return tokens + self.read.out(mined)  # type: ignore[no-any-return]


def dynamic_keep_count(length: int, spec: ReducerSpec) -> int:
    """Tokens the dynamic reducer keeps: ceil(L * keep_ratio) clamped to the bounds and to L."""
    wanted = math.ceil(length * spec.keep_ratio)
    return max(min(spec.min_tokens, length), min(wanted, spec.max_tokens, length))


class DynamicMerge(nn.Module):
    """LaVIT-style selection + merging, deterministic (no sampling).

    An MLP scores patches, the top-k are kept in raster order, and each kept token reads the
    dropped ones by masked cross-attention (residual).

    The kept count is fixed by the setting (so engines have static shapes); which patches are
    kept depends on the image.
    """

    def __init__(self, width: int, grid: int, spec: ReducerSpec) -> None:
        super().__init__()
        self.out_width = width
        self.length = grid * grid
        self.token_count = dynamic_keep_count(self.length, spec)
        self.scorer = nn.Sequential(
            nn.LayerNorm(width), nn.Linear(width, width), nn.GELU(), nn.Linear(width, 1)
        )
        self.read = CrossRead(width)

    def scores(self, tokens: Tensor) -> Tensor:
        """Informativeness of each patch: (B, L)."""
        return self.scorer(tokens).squeeze(-1)  # type: ignore[no-any-return]

    def kept_indices(self, tokens: Tensor) -> Tensor:
        """Return the indices of the kept patches, ascending (raster order): (B, k) int64."""
        top = torch.topk(self.scores(tokens), self.token_count, dim=1).indices
        return torch.sort(top, dim=1).values

    def forward(self, tokens: Tensor, hires: Tensor | None = None) -> Tensor:
        """(B, L, C) → (B, k, C)."""
        index = self.kept_indices(tokens)  # (B, k)
        kept = torch.gather(tokens, 1, index.unsqueeze(-1).expand(-1, -1, tokens.shape[-1]))
        if self.token_count == self.length:
            return kept
        is_kept = torch.zeros_like(tokens[:, :, 0]).scatter(1, index, 1.0)  # (B, L)
        logits = self.read.query(kept) @ self.read.key(tokens).transpose(1, 2)  # (B, k, L)
        weights = torch.softmax(logits + is_kept.unsqueeze(1) * MASKED_LOGIT, dim=-1)
        return kept + self.read.out(weights @ self.read.v(tokens))  # type: ignore[no-any-return]


def make_reducer(spec: ReducerSpec, width: int, grid: int) -> nn.Module:
    """Build the reducer named by ``spec.kind`` for a ``grid x grid`` raster of width ``width``."""
    if spec.kind is ReducerKind.NONE:
        return NoReducer(width, grid)
    if spec.kind is ReducerKind.CONCAT4:
        return Concat4(width, grid)
    if spec.kind is ReducerKind.CONCAT4_COLUMNS:
        return Concat4Columns(width, grid)
    if spec.kind is ReducerKind.PATCH_MINING:
        return PatchMining(width, grid, spec.hires_factor)
    return DynamicMerge(width, grid, spec)
