"""Training sequences laid out as the service lays out prompts, for teacher forcing.

A sequence is ``prompt pieces`` (text ids or a modality block) followed by the answer ids and
EOS; the loss is taken on the answer and EOS only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from mm_ros.core.prompt import MODALITY_MARKERS, ModalitySegment, PromptConfig, build_segments

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

IGNORE = -100  # label of positions without loss (HF convention)


@dataclass(frozen=True)
class Piece:
    """Text ids, or the name of a modality whose (marker-wrapped) tokens go here."""

    ids: tuple[int, ...] = ()
    modality: str = ""


class Layout:
    """Turns (task, question, answer) into pieces, with the tokenizer's ids."""

    def __init__(self, tokenizer: Any, prompt: PromptConfig, modalities: Sequence[str]) -> None:
        self.tokenizer = tokenizer
        self.prompt = prompt
        self.modalities = list(modalities)
        self._cache: dict[str, tuple[int, ...]] = {}
        vocab = tokenizer.get_vocab()
        self.markers = {m: (vocab[o], vocab[c]) for m, (o, c) in MODALITY_MARKERS.items()}

    def ids(self, text: str) -> tuple[int, ...]:
        """Token ids of ``text`` without BOS/EOS (memoised: prompts repeat)."""
        if text not in self._cache:
            out = self.tokenizer(text, add_special_tokens=False)["input_ids"]
            self._cache[text] = tuple(int(i) for i in out)
        return self._cache[text]

    def prompt_pieces(self, task: str, question: str) -> list[Piece]:
        """BOS, then the segments of ``build_segments`` (text as ids, modalities by name)."""
        _, segments = build_segments(question, self.modalities, self.prompt, task)
        pieces = [Piece((int(self.tokenizer.bos_token_id),))]
        for segment in segments:
            if isinstance(segment, ModalitySegment):
                pieces.append(Piece(modality=segment.modality))
            else:
                pieces.append(Piece(self.ids(segment.text)))
        return pieces

    def answer_ids(self, answer: str) -> tuple[int, ...]:
        """Answer ids followed by EOS."""
        return (*self.ids(" " + answer), int(self.tokenizer.eos_token_id))


def embed_batch(
    embed: torch.nn.Module,
    prompts: Sequence[Sequence[Piece]],
    answers: Sequence[Sequence[int]],
    blocks: Mapping[str, torch.Tensor],
    markers: Mapping[str, tuple[int, int]],
    pad_id: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-padded (B, L, D) embeddings, (B, L) attention mask and (B, L) labels.

    ``blocks[m]`` is (B, N_m, D): adapter tokens of row b go where its prompt names ``m``,
    between the modality's open and close marker embeddings.
    """
    device = next(embed.parameters()).device
    rows: list[torch.Tensor] = []
    labels: list[torch.Tensor] = []
    for b, (pieces, answer) in enumerate(zip(prompts, answers, strict=True)):
        parts: list[torch.Tensor] = []
        length = 0
        for piece in pieces:
            if piece.modality:
                open_id, close_id = markers[piece.modality]
                ends = embed(torch.tensor([open_id, close_id], device=device))
                tokens = blocks[piece.modality][b]
                parts += [ends[:1], tokens, ends[1:]]
                length += tokens.shape[0] + 2
            else:
                parts.append(embed(torch.tensor(piece.ids, device=device)))
                length += len(piece.ids)
        parts.append(embed(torch.tensor(answer, device=device)))
        rows.append(torch.cat(parts))
        # position t predicts token t+1: the last prompt position predicts the first answer id
        label = torch.full((length + len(answer),), IGNORE, dtype=torch.long)
        label[length - 1 : length - 1 + len(answer)] = torch.tensor(answer)
        labels.append(label)
    longest = max(r.shape[0] for r in rows)
    width = rows[0].shape[1]
    batch = len(rows)
    pad = embed(torch.tensor([pad_id], device=device))[0]
    embeds = pad.expand(batch, longest, width).clone()
    mask = torch.zeros(batch, longest, dtype=torch.long, device=device)
    out_labels = torch.full((batch, longest), IGNORE, dtype=torch.long, device=device)
    for b, (row, label) in enumerate(zip(rows, labels, strict=True)):
        embeds[b, : row.shape[0]] = row
        mask[b, : row.shape[0]] = 1
        out_labels[b, : label.shape[0]] = label.to(device)
    return embeds, mask, out_labels
