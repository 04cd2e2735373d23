"""Token-space alignment: each image token is taught to read as the words of what it shows.

AnyMAL projects a modality into the language model's token space. With a language model that
starts from random weights (mm-tiny) the answer loss alone lets the image tokens collapse to a
constant (see the model card): nothing tells the adapter what the LM's words mean. This loss does.
Every image token covers a region of the source image; the object that covers most of that region
gives the token its target words: colour, shape, side ("left"), and the four box numbers
``<x1><y1><x2><y2>`` of the object (MiniGPT-v2's 0-100 scale). A token over background reads as
``nothing``. The score of a word is the cosine between the token and the word's row of the LM's
(tied) embedding table, scaled; the loss is cross-entropy against the targets spread evenly. The
table is not moved by this loss: the adapter learns the LM's words, not the other way round.

The result is an image token that looks, to the LM, like the sum of the words describing its
region: "where is the red cube?" can then be answered by attending to the token most like "red"
and "cube" and copying its side word. Whether an LM learns that lookup is another matter: the
randomly initialised mm-tiny LM did not within its CPU budget (model card), so training has this
loss off unless asked for.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from mm_ros.core.errors import ConfigError
from mm_ros.train import tasks

if TYPE_CHECKING:
    from numpy.typing import NDArray

BACKGROUND_WORD = "nothing"
PAD = -1
MAX_TARGETS = 7  # colour, shape, side, x1, y1, x2, y2


def token_regions(
    input_px: int,
    patch_px: int,
    strip: int,
    width_px: int,
    height_px: int,
    *,
    columns: bool = False,
) -> NDArray[np.float64]:
    """Source-pixel region (x0, y0, x1, y1) of each image token, in token order.

    The input is the source squashed to ``input_px`` square (SQUASH); tokens are raster-order
    strips of ``strip`` patches along a row (1 without a reducer, 4 for ``concat4``), or with
    ``columns`` down a column (``concat4_columns``: raster order over the strips).
    """
    grid = input_px // patch_px
    if input_px % patch_px or grid % strip:
        raise ConfigError(
            f"token regions: expected input_px a multiple of patch_px and the grid of {grid} a "
            f"multiple of {strip}, found input_px {input_px}, patch_px {patch_px}"
        )
    sx, sy = width_px / input_px, height_px / input_px
    out = []
    if columns:
        for band in range(0, grid, strip):
            for col in range(grid):
                x0, y0 = col * patch_px, band * patch_px
                out.append((x0 * sx, y0 * sy, (x0 + patch_px) * sx, (y0 + strip * patch_px) * sy))
        return np.asarray(out, dtype=np.float64)
    for row in range(grid):
        for col in range(0, grid, strip):
            x0, y0 = col * patch_px, row * patch_px
            out.append((x0 * sx, y0 * sy, (x0 + strip * patch_px) * sx, (y0 + patch_px) * sy))
    return np.asarray(out, dtype=np.float64)


def token_targets(
    objects: Sequence[Sequence[Mapping[str, Any]]],
    regions: NDArray[np.float64],
    vocab: Mapping[str, int],
    min_cover: float = 0.15,
) -> NDArray[np.int64]:
    """Target token ids, (snapshots, tokens, MAX_TARGETS), padded with ``PAD``.

    A token's object is the nearest one whose visible box covers at least ``min_cover`` of the
    token's region (nearer objects hide farther ones); a token with none reads as background.
    """
    missing = [
        w
        for w in (BACKGROUND_WORD, "left", "centre", "right", *tasks.PERCENT_TOKENS)
        if w not in vocab
    ]
    if missing:
        raise ConfigError(f"token targets: the vocabulary lacks {missing[:5]}")
    area = (regions[:, 2] - regions[:, 0]) * (regions[:, 3] - regions[:, 1])
    out = np.full((len(objects), len(regions), MAX_TARGETS), PAD, dtype=np.int64)
    plain = regions.tolist()  # plain floats for the per-object overlap test
    for s, snapshot in enumerate(objects):
        for t, region in enumerate(plain):
            words = [BACKGROUND_WORD]
            for obj in snapshot:  # nearest first
                if tasks.intersection(region, obj["box_px"]) >= min_cover * area[t]:
                    words = [obj["colour"], obj["shape"], obj["side"]]
                    words += [tasks.PERCENT_TOKENS[int(v)] for v in obj["percent"]]
                    break
            ids = [vocab[w] for w in words if w in vocab]
            out[s, t, : len(ids)] = ids
    return out


def alignment_loss(
    tokens: torch.Tensor, table: torch.Tensor, targets: torch.Tensor, scale: float = 16.0
) -> torch.Tensor:
    """Soft cross-entropy of scaled cosine scores against the target words.

    ``tokens`` (B, T, D) adapter output, ``table`` (V, D) the LM's embedding table (not moved),
    ``targets`` (B, T, K) ids padded with ``PAD``.
    """
    scores = (
        scale
        * torch.nn.functional.normalize(tokens.float(), dim=-1)
        @ (torch.nn.functional.normalize(table.detach().float(), dim=-1).T)
    )
    logp = torch.log_softmax(scores, dim=-1)  # (B, T, V)
    valid = targets != PAD
    picked = torch.gather(logp, -1, targets.clamp(min=0)) * valid  # (B, T, K)
    counts = valid.sum(-1).clamp(min=1)
    return -(picked.sum(-1) / counts).mean()


def choice_scores(tokens: torch.Tensor, table: torch.Tensor, words: torch.Tensor) -> torch.Tensor:
    """Cosine of each token (..., D) with each of ``words``' rows of ``table`` → (..., W).

    The table is not moved through these scores.
    """
    unit = torch.nn.functional.normalize(tokens.float(), dim=-1)
    choices = torch.nn.functional.normalize(table[words].detach().float(), dim=-1)
    return unit @ choices.T


def choice_loss(
    tokens: torch.Tensor,
    table: torch.Tensor,
    targets: torch.Tensor,
    slot: int,
    words: torch.Tensor,
    *,
    scale: float = 16.0,
) -> torch.Tensor:
    """Cross-entropy of each object token's pick among ``words`` against its target in ``slot``.

    `alignment_loss` spreads a token's target over seven words and averages over every token,
    most of them background, so the shape of an object is a few percent of it; this term asks
    only the tokens whose target in ``slot`` is one of ``words`` (0 colour, 1 shape) to pick it
    among those words (scaled cosine, `word_readout`'s choice). Zero when no token has one.
    """
    wanted = targets[..., slot]
    counted = torch.isin(wanted, words)
    if not bool(counted.any()):
        return tokens.sum() * 0.0
    scores = scale * choice_scores(tokens[counted], table, words)  # (N, W)
    index = (wanted[counted].unsqueeze(-1) == words).int().argmax(-1)
    return torch.nn.functional.cross_entropy(scores, index)


def word_readout(
    tokens: torch.Tensor, table: torch.Tensor, targets: torch.Tensor, slot: int, words: torch.Tensor
) -> tuple[int, int]:
    """Read each token as the nearest (cosine) of ``words`` and compare with its target.

    Counts the tokens whose target in ``slot`` (0 colour, 1 shape: `token_targets`' order) is
    one of ``words``; returns (read right, counted). A probe of what the image pathway delivers
    (`tools/token_probe.py`): a shape wrong here is wrong in every answer that names it.
    """
    nearest = words[choice_scores(tokens, table, words).argmax(-1)]  # (B, T) token ids
    wanted = targets[..., slot]
    counted = torch.isin(wanted, words)
    return int((nearest[counted] == wanted[counted]).sum()), int(counted.sum())
