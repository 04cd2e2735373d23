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


def drop_words(question: str, rng: np.random.Generator, p: float) -> str:
    """Replace plain words of ``question`` with ``<unk>`` with probability ``p`` each."""
    if p <= 0:
        return question
    return _PLAIN_WORD.sub(lambda m: "<unk>" if rng.random() < p else m.group(0), question)


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
