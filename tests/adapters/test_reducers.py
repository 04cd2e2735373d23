"""Token reducers: the definitions from the seed papers, checked on their own."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from mm_ros.adapters.build import derived_token_count
from mm_ros.adapters.reducers import (
    Concat4,
    Concat4Columns,
    DynamicMerge,
    PatchMining,
    dynamic_keep_count,
)
from mm_ros.adapters.spec import Modality, ReducerKind, ReducerSpec
from mm_ros.adapters.tiny import tiny_spec
from mm_ros.core.errors import ConfigError


def _row_strip(grid: int, j: int, k: int) -> int:
    """Patch index of part ``k`` of token ``j``: 1x4 strips, raster order over the strips."""
    row, strip = divmod(j, grid // 4)
    return row * grid + 4 * strip + k  # same row, 4 columns


def _column_strip(grid: int, j: int, k: int) -> int:
    """The same for 4x1 strips: raster order over ``grid/4`` bands of ``grid`` columns."""
    band, col = divmod(j, grid)
    return (4 * band + k) * grid + col  # 4 rows, same column


@pytest.mark.parametrize("grid", [4, 8])
@pytest.mark.parametrize(
    ("reducer", "part"), [(Concat4, _row_strip), (Concat4Columns, _column_strip)]
)
def test_concat4_concatenates_its_strips_along_channels(
    grid: int, reducer: type[torch.nn.Module], part: Callable[[int, int, int], int]
) -> None:
    width = 3
    tokens = torch.randn(2, grid * grid, width)
    out = reducer(width, grid)(tokens)
    assert out.shape == (2, grid * grid // 4, 4 * width)
    for b in range(2):
        for j in range(grid * grid // 4):
            expected = torch.cat([tokens[b, part(grid, j, k)] for k in range(4)])
            assert torch.equal(out[b, j], expected)


def test_concat4_refuses_a_grid_that_would_wrap_rows() -> None:
    with pytest.raises(ConfigError, match="divisible by 4"):
        Concat4(8, 6)
    with pytest.raises(ConfigError, match="divisible by 4"):
        Concat4Columns(8, 6)


@pytest.mark.parametrize(("grid", "factor"), [(2, 2), (4, 2), (3, 4)])
def test_patch_mining_attention_stays_in_each_region(grid: int, factor: int) -> None:
    torch.manual_seed(0)
    width = 8
    mining = PatchMining(width, grid, factor).eval()
    tokens = torch.randn(2, grid * grid, width)
    hires = torch.randn(2, width, grid * factor, grid * factor)
    dense = mining.attention_map(tokens, hires)  # (B, L, (g*r)^2)
    side = grid * factor
    for q in range(grid * grid):
        qi, qj = divmod(q, grid)
        inside = [
            y * side + x
            for y in range(qi * factor, (qi + 1) * factor)
            for x in range(qj * factor, (qj + 1) * factor)
        ]
        mass_inside = dense[:, q, inside].sum(-1)
        torch.testing.assert_close(mass_inside, torch.ones(2), atol=1e-6, rtol=0)
        assert (dense[:, q].sum(-1) - mass_inside).abs().max() < 1e-6


def test_patch_mining_output_reads_only_its_region_and_keeps_the_count() -> None:
    torch.manual_seed(0)
    grid, factor, width = 4, 2, 8
    mining = PatchMining(width, grid, factor).eval()
    tokens = torch.randn(1, grid * grid, width)
    hires = torch.randn(1, width, grid * factor, grid * factor)
    base = mining(tokens, hires)
    assert base.shape == tokens.shape  # same token count
    changed = hires.clone()
    changed[:, :, 0:factor, 0:factor] += 5.0  # the region of token 0 only
    out = mining(tokens, changed)
    assert not torch.allclose(out[:, 0], base[:, 0])
    torch.testing.assert_close(out[:, 1:], base[:, 1:])  # every other token untouched
    assert not torch.allclose(base, tokens)  # the mined detail is added (residual)


@pytest.mark.parametrize(
    ("length", "spec", "expected"),
    [
        (16, ReducerSpec(kind=ReducerKind.DYNAMIC, keep_ratio=0.5), 8),
        (16, ReducerSpec(kind=ReducerKind.DYNAMIC, keep_ratio=0.5, max_tokens=6), 6),
        (16, ReducerSpec(kind=ReducerKind.DYNAMIC, keep_ratio=0.05, min_tokens=3), 3),
        (4, ReducerSpec(kind=ReducerKind.DYNAMIC, keep_ratio=1.0, min_tokens=2), 4),
        (2, ReducerSpec(kind=ReducerKind.DYNAMIC, keep_ratio=0.5, min_tokens=5), 2),
    ],
)
def test_dynamic_keep_count_is_bounded(length: int, spec: ReducerSpec, expected: int) -> None:
    assert dynamic_keep_count(length, spec) == expected


@pytest.mark.parametrize("keep_ratio", [0.25, 0.5, 1.0])
def test_dynamic_is_deterministic_and_keeps_the_top_scored_in_raster_order(
    keep_ratio: float,
) -> None:
    torch.manual_seed(0)
    grid, width = 4, 8
    spec = ReducerSpec(kind=ReducerKind.DYNAMIC, keep_ratio=keep_ratio, min_tokens=2, max_tokens=12)
    merge = DynamicMerge(width, grid, spec).eval()
    tokens = torch.randn(3, grid * grid, width)
    out = merge(tokens)
    k = dynamic_keep_count(grid * grid, spec)
    assert out.shape == (3, k, width)
    assert spec.min_tokens <= k <= spec.max_tokens
    assert torch.equal(out, merge(tokens))  # no sampling at inference
    index = merge.kept_indices(tokens)
    assert torch.equal(index, index.sort(dim=1).values)  # raster order kept
    scores = merge.scores(tokens)
    for b in range(3):
        kept = set(index[b].tolist())
        dropped = [i for i in range(grid * grid) if i not in kept]
        if dropped:
            assert scores[b, list(kept)].min() >= scores[b, dropped].max()


def test_dynamic_merges_dropped_patches_into_kept_ones() -> None:
    torch.manual_seed(0)
    grid, width = 4, 8
    spec = ReducerSpec(kind=ReducerKind.DYNAMIC, keep_ratio=0.5)
    merge = DynamicMerge(width, grid, spec).eval()
    tokens = torch.randn(1, grid * grid, width)
    kept = set(merge.kept_indices(tokens)[0].tolist())
    dropped = next(i for i in range(grid * grid) if i not in kept)
    base = merge(tokens)
    # nudge a dropped patch without changing which patches are kept: the output must move
    changed = tokens.clone()
    changed[0, dropped] *= 1.01
    assert set(merge.kept_indices(changed)[0].tolist()) == kept
    assert not torch.allclose(merge(changed), base)


@pytest.mark.parametrize(
    ("reducer", "tokens"),
    [
        (ReducerKind.NONE, 16),
        (ReducerKind.CONCAT4, 4),  # 4x fewer
        (ReducerKind.CONCAT4_COLUMNS, 4),
        (ReducerKind.PATCH_MINING, 16),  # same count, more detail
        (ReducerKind.DYNAMIC, 6),  # ceil(16 * 0.5) = 8, clamped to max_tokens 6
    ],
)
def test_tokens_per_image_per_reducer(reducer: ReducerKind, tokens: int) -> None:
    spec = tiny_spec(Modality.IMAGE, reducer)
    assert spec.token_count == derived_token_count(spec) == tokens
