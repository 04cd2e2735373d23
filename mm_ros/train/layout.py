"""Training batches laid out exactly as the service lays out prompts (`mm_ros.llm.assembly`).

The model being trained is wrapped in a `LoadedBackend` (no adapter sessions: the adapters run
in torch here, with gradients), so `assemble_training` builds each sequence with the same
system text, markers and task identifiers `assemble` uses at inference.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from mm_ros.core.prompt import Task
from mm_ros.llm.assembly import IGNORE, assemble_training, pad_batch
from mm_ros.llm.backends.base import LoadedBackend

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    import numpy as np
    import torch

    from mm_ros.core.prompt import PromptConfig

__all__ = ["IGNORE", "drop_words", "teacher_forcing_batch", "training_backend"]

_LETTERS = "abcdefghijklmnopqrstuvwxyz"
_PLAIN_WORD = re.compile(r"(?<![<\[{])\b[a-z][a-z']*\b(?![>\]])")


def training_backend(model: Any, tokenizer: Any, prompt: PromptConfig) -> LoadedBackend:
    """Wrap a model being trained in a `LoadedBackend` (for the assembly functions)."""
    return LoadedBackend(
        model_id="training",
        model=model,
        tokenizer=tokenizer,
        sessions={},
        identities={},
        selections={},
        prompt=prompt,
    )


def drop_words(question: str, rng: np.random.Generator, p: float, made_up: float = 0.0) -> str:
    """Replace plain words of ``question``, each with probability ``p``.

    A replaced word becomes ``<unk>``, or (``made_up`` of the time) a made-up word of 3-8
    letters, which a word-piece tokenizer spells in pieces as it does a real user's unknown
    word: the model learns to read past both.
    """
    if p <= 0:
        return question

    def replace(match: re.Match[str]) -> str:
        if rng.random() >= p:
            return match.group(0)
        if rng.random() < made_up:
            return "".join(rng.choice(list(_LETTERS), size=int(rng.integers(3, 9))))
        return "<unk>"

    return _PLAIN_WORD.sub(replace, question)


def teacher_forcing_batch(
    backend: LoadedBackend,
    items: Sequence[tuple[str, str, str]],
    blocks: Mapping[str, torch.Tensor],
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(task, question, answer) per row + (B, N_m, D) blocks → padded embeds, mask, labels.

    Labels hold the answer ids + EOS at their own positions (IGNORE elsewhere): position t's
    logits are scored against label t + 1.
    """
    examples = [
        assemble_training(
            backend, Task(task), question, {m: b[row] for m, b in blocks.items()}, answer
        )
        for row, (task, question, answer) in enumerate(items)
    ]
    return pad_batch(examples)


def packed_batch(  # noqa: PLR0915 - one pass: layout, ids, labels, mask
    backend: LoadedBackend,
    rows: Sequence[Sequence[tuple[str, str, str]]],
    blocks: Mapping[str, torch.Tensor],
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Several questions about one snapshot per row, sharing the prompt prefix.

    Row b is ``prefix(b) q1 a1 q2 a2 ...``: the prefix (BOS, system text, modality blocks) and
    each question's tokens are exactly `mm_ros.llm.assembly.prompt_layout`'s; every question
    sees the prefix and itself only, at the positions it would have alone, so the loss equals
    the loss of separate `assemble_training` sequences (the test checks it) while the prefix
    and the adapters run once per snapshot, as the service's KV-prefix cache does.

    Returns (B, L, D) embeddings, (B, 1, L, L) boolean attention mask, (B, L) position ids and
    (B, L) labels (answer ids + EOS at their own positions, IGNORE elsewhere).
    """
    import torch

    from mm_ros.llm.assembly import ADAPTER_TOKEN, prompt_layout

    tokenizer = backend.tokenizer
    eos = int(tokenizer.eos_token_id)
    modalities = list(blocks)
    first_task, first_question, _ = rows[0][0]
    layout, prefix_pieces = prompt_layout(backend, Task(first_task), first_question, modalities)
    prefix: list[int] = []
    spans: dict[str, tuple[int, int]] = {}
    for piece in layout[:prefix_pieces]:
        if isinstance(piece, str):
            n = int(blocks[piece].shape[1])
            spans[piece] = (len(prefix), len(prefix) + n)
            prefix.extend([ADAPTER_TOKEN] * n)
        else:
            prefix.extend(piece)
    p = len(prefix)
    seqs: list[list[int]] = []
    labels: list[list[int]] = []
    segments: list[list[int]] = []  # segment number per position: 0 = prefix
    positions: list[list[int]] = []
    for row in rows:
        ids, lab, seg, pos = list(prefix), [IGNORE] * p, [0] * p, list(range(p))
        for number, (task, question, answer) in enumerate(row, start=1):
            own, own_prefix = prompt_layout(backend, Task(task), question, modalities)
            question_ids = [i for piece in own[own_prefix:] if not isinstance(piece, str)
                            for i in piece]  # fmt: skip
            answer_ids = [
                *(int(i) for i in tokenizer(answer, add_special_tokens=False)["input_ids"]),
                eos,
            ]
            part = question_ids + answer_ids
            ids += part
            lab += [IGNORE] * len(question_ids) + answer_ids
            seg += [number] * len(part)
            pos += list(range(p, p + len(part)))
        seqs.append(ids)
        labels.append(lab)
        segments.append(seg)
        positions.append(pos)
    longest = max(len(s) for s in seqs)
    batch = len(rows)
    pad = int(tokenizer.pad_token_id)
    id_t = torch.full((batch, longest), pad, dtype=torch.int64)
    lab_t = torch.full((batch, longest), IGNORE, dtype=torch.int64)
    seg_t = torch.full((batch, longest), -1, dtype=torch.int64)  # -1 = padding
    pos_t = torch.zeros((batch, longest), dtype=torch.int64)
    for b in range(batch):
        n = len(seqs[b])
        id_t[b, :n] = torch.tensor(seqs[b])
        lab_t[b, :n] = torch.tensor(labels[b])
        seg_t[b, :n] = torch.tensor(segments[b])
        pos_t[b, :n] = torch.tensor(positions[b])
    embeds = backend.embed_text(id_t.clamp(min=0)).clone()  # (B, L, D)
    for modality, (start, end) in spans.items():
        embeds[:, start:end] = blocks[modality].to(embeds.dtype)
    q = torch.arange(longest)
    causal = q[None, :] <= q[:, None]  # (L, L) key <= query
    same = seg_t[:, :, None] == seg_t[:, None, :]  # (B, L, L)
    to_prefix = (seg_t[:, None, :] == 0) & (seg_t[:, :, None] >= 0)
    mask = (same | to_prefix) & causal[None]
    mask |= torch.eye(longest, dtype=torch.bool)[None]  # padding rows see themselves: no NaN
    device = embeds.device
    return embeds, mask[:, None].to(device), pos_t.to(device), lab_t.to(device)
