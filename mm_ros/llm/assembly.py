"""Prompt segments + adapter tokens → one ``inputs_embeds`` sequence for the language model.

Layout (DESIGN.md section 9), without a chat template::

    <s> system ⏎ [INST] <Img> img tokens </Img> <Audio> ... </Audio> [task] question [/INST]
    └──────────────────── shareable prefix ────────────────────────┘└──── question ─────┘

With a chat template the template's own text wraps the same pieces; the modality blocks always
come before the question, so the prefix (system + modality blocks) can be reused from the KV
cache when several questions are asked about one snapshot. Training uses the same layout with
the answer appended (:func:`assemble_training`), so what the model learns is what it is asked.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from mm_ros.core.errors import ConfigError
from mm_ros.core.prompt import ModalitySegment, Task, TextSegment, build_segments

if TYPE_CHECKING:
    from mm_ros.llm.backends.base import LoadedBackend

ADAPTER_TOKEN = -1  # token_ids value where an adapter token sits
IGNORE = -100  # label of positions the loss skips (torch cross_entropy's ignore_index)
SENTINEL = "\x1fmm_ros:{}\x1f"  # where a block (or the question) goes in a chat-template render
QUESTION = "question"

Layout = list[list[int] | str]  # text token ids, or the modality whose block goes there


@dataclass(frozen=True, eq=False)
class Assembled:
    """One prompt ready for the model (batch of one)."""

    inputs_embeds: torch.Tensor  # (1, T, D) in the LM's dtype, on its device
    attention_mask: torch.Tensor  # (1, T) int64, all ones
    token_ids: torch.Tensor  # (1, T) int64; ADAPTER_TOKEN (-1) where adapter tokens sit
    prefix_len: int  # tokens of the shareable prefix: up to the last block's close marker
    spans: dict[str, tuple[int, int]]  # modality → [start, end) of its adapter tokens

    @property
    def length(self) -> int:
        """Tokens in the prompt (T)."""
        return int(self.inputs_embeds.shape[1])


@dataclass(frozen=True, eq=False)
class TrainingExample:
    """Prompt + answer for teacher forcing; the prompt part is exactly :func:`assemble`'s."""

    inputs_embeds: torch.Tensor  # (1, T + A, D): prompt, answer tokens, EOS
    attention_mask: torch.Tensor  # (1, T + A) int64
    labels: torch.Tensor  # (1, T + A) int64; IGNORE (-100) on the prompt, answer ids + EOS after
    prompt_len: int  # T
    prefix_len: int
    spans: dict[str, tuple[int, int]]


def assemble(
    backend: LoadedBackend,
    task: Task,
    question: str,
    blocks: Mapping[str, torch.Tensor | np.ndarray[Any, Any]],
) -> Assembled:
    """Build the prompt for ``question`` with ``blocks`` ((N, D) adapter tokens per modality)."""
    layout, prefix_pieces = prompt_layout(backend, task, question, list(blocks))
    return _materialise(backend, layout, prefix_pieces, blocks)


def assemble_training(
    backend: LoadedBackend,
    task: Task,
    question: str,
    blocks: Mapping[str, torch.Tensor | np.ndarray[Any, Any]],
    answer: str,
) -> TrainingExample:
    """Build prompt + ``answer`` + EOS with labels for teacher forcing (loss on the answer only)."""
    tokenizer = backend.tokenizer
    if tokenizer.eos_token_id is None:
        raise ConfigError("training needs a tokenizer with an EOS token, found none")
    layout, prefix_pieces = prompt_layout(backend, task, question, list(blocks))
    answer_ids = [*_ids(tokenizer, answer), int(tokenizer.eos_token_id)]
    prompt = _materialise(backend, layout, prefix_pieces, blocks)
    answer_embeds = backend.embed_text(torch.tensor([answer_ids], dtype=torch.int64))
    labels = torch.full((1, prompt.length + len(answer_ids)), IGNORE, dtype=torch.int64)
    labels[0, prompt.length :] = torch.tensor(answer_ids)
    return TrainingExample(
        inputs_embeds=torch.cat([prompt.inputs_embeds, answer_embeds], dim=1),
        attention_mask=torch.ones_like(labels),
        labels=labels.to(prompt.inputs_embeds.device),
        prompt_len=prompt.length,
        prefix_len=prompt.prefix_len,
        spans=prompt.spans,
    )


def pad_batch(
    examples: Sequence[TrainingExample],
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-pad examples into (B, T, D) embeds, (B, T) mask and (B, T) labels (pads ignored)."""
    if not examples:
        raise ConfigError("pad_batch: expected at least one example, found none")
    longest = max(int(e.inputs_embeds.shape[1]) for e in examples)
    first = examples[0].inputs_embeds
    embeds = first.new_zeros((len(examples), longest, first.shape[2]))
    mask = torch.zeros((len(examples), longest), dtype=torch.int64, device=first.device)
    labels = torch.full_like(mask, IGNORE)
    for row, example in enumerate(examples):
        n = int(example.inputs_embeds.shape[1])
        embeds[row, :n] = example.inputs_embeds[0]
        mask[row, :n] = 1
        labels[row, :n] = example.labels[0]
    return embeds, mask, labels


def prompt_layout(
    backend: LoadedBackend, task: Task, question: str, modalities: Sequence[str]
) -> tuple[Layout, int]:
    """Return the prompt as text-id pieces and block places, and how many pieces the prefix has.

    The prefix is every piece up to and including the last close marker (without blocks: up to
    the user turn's opening), i.e. everything that does not depend on the question.
    """
    config = backend.prompt
    missing = [m for m in modalities if m not in config.modality_order]
    if missing:
        raise ConfigError(
            f"blocks for {missing} but the prompt's modality_order is {config.modality_order}"
        )
    chosen, segments = build_segments(question, list(modalities), config, task.value)
    tokenizer = backend.tokenizer
    if backend.chat_template and getattr(tokenizer, "chat_template", None):
        return _chat_layout(backend, chosen, segments)
    layout: Layout = []
    if tokenizer.bos_token_id is not None:
        layout.append([int(tokenizer.bos_token_id)])
    for segment in segments[:-1]:
        if isinstance(segment, TextSegment):
            layout.append(_ids(tokenizer, segment.text))
        else:
            _add_block(backend, layout, segment.modality)
    prefix_pieces = len(layout)
    last = segments[-1]
    assert isinstance(last, TextSegment)  # build_segments ends with the question
    layout.append(_ids(tokenizer, last.text))
    return layout, prefix_pieces


def _chat_layout(backend: LoadedBackend, task: Task, segments: list[Any]) -> tuple[Layout, int]:
    config = backend.prompt
    order = [s.modality for s in segments if isinstance(s, ModalitySegment)]
    last = segments[-1]
    # the question text without the raw-prompt user_close (the template closes the turn)
    question = last.text.rstrip().removesuffix(config.user_close).strip()
    for text in (config.system_text, question):
        if "\x1f" in text:
            raise ConfigError("prompt text contains the unit separator \\x1f, which mm_ros uses")
    content = "".join(SENTINEL.format(m) for m in order) + SENTINEL.format(QUESTION) + question
    messages = [{"role": "user", "content": content}]
    if config.system_text:
        messages.insert(0, {"role": "system", "content": config.system_text})
    rendered = _render(backend.tokenizer, messages)
    layout: Layout = []
    rest = rendered
    for modality in order:
        before, _, rest = rest.partition(SENTINEL.format(modality))
        layout.append(_ids(backend.tokenizer, before))
        _add_block(backend, layout, modality)
    before, found, rest = rest.partition(SENTINEL.format(QUESTION))
    if not found:
        raise ConfigError("the chat template dropped part of the user message")
    layout.append(_ids(backend.tokenizer, before))
    prefix_pieces = len(layout)
    layout.append(_ids(backend.tokenizer, rest))
    return layout, prefix_pieces


def _render(tokenizer: Any, messages: list[dict[str, str]]) -> str:
    from jinja2 import TemplateError

    try:
        text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    except TemplateError:
        if messages[0]["role"] != "system":
            raise
        # templates without a system role (e.g. Gemma's): the system text opens the user turn
        system, user = messages
        merged = {"role": "user", "content": system["content"] + "\n\n" + user["content"]}
        text = tokenizer.apply_chat_template([merged], add_generation_prompt=True, tokenize=False)
    return str(text)


def _add_block(backend: LoadedBackend, layout: Layout, modality: str) -> None:
    open_marker, close_marker = backend.markers[modality]
    layout.extend([_ids(backend.tokenizer, open_marker), modality])
    layout.append(_ids(backend.tokenizer, close_marker))


def _ids(tokenizer: Any, text: str) -> list[int]:
    if not text:
        return []
    return [int(i) for i in tokenizer(text, add_special_tokens=False)["input_ids"]]


def _materialise(
    backend: LoadedBackend,
    layout: Layout,
    prefix_pieces: int,
    blocks: Mapping[str, torch.Tensor | np.ndarray[Any, Any]],
) -> Assembled:
    table = backend.model.get_input_embeddings()
    width, dtype, device = int(table.embedding_dim), table.weight.dtype, table.weight.device
    tensors: dict[str, torch.Tensor] = {}
    for modality, block in blocks.items():
        rows = torch.as_tensor(np.asarray(block) if not isinstance(block, torch.Tensor) else block)
        if rows.ndim != 2 or rows.shape[1] != width or rows.shape[0] < 1:  # noqa: PLR2004 - (N, D)
            raise ConfigError(
                f"{modality} block: expected (N >= 1, {width}) adapter tokens, found "
                f"{tuple(rows.shape)}"
            )
        tensors[modality] = rows.to(device=device, dtype=dtype)
    ids: list[int] = []
    spans: dict[str, tuple[int, int]] = {}
    prefix_len = 0
    for index, piece in enumerate(layout):
        if isinstance(piece, str):
            n = int(tensors[piece].shape[0])
            spans[piece] = (len(ids), len(ids) + n)
            ids.extend([ADAPTER_TOKEN] * n)
        else:
            ids.extend(piece)
        if index + 1 == prefix_pieces:
            prefix_len = len(ids)
    token_ids = torch.tensor([ids], dtype=torch.int64)
    # Text rows by one lookup (adapter places read row 0), then the blocks written over them.
    embeds = backend.embed_text(token_ids.clamp(min=0)).clone()  # (1, T, D)
    for modality, (start, end) in spans.items():
        embeds[0, start:end] = tensors[modality]
    return Assembled(
        inputs_embeds=embeds,
        attention_mask=torch.ones_like(token_ids, device=device),
        token_ids=token_ids,
        prefix_len=prefix_len,
        spans=spans,
    )
