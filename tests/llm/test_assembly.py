from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import numpy as np
import pytest
import torch

from mm_ros.core.errors import ConfigError
from mm_ros.core.prompt import PromptConfig, Task
from mm_ros.llm.assembly import (
    ADAPTER_TOKEN,
    IGNORE,
    assemble,
    assemble_training,
    pad_batch,
)
from tests.llm.conftest import text_backend

if TYPE_CHECKING:
    from mm_ros.llm.backends.base import LoadedBackend

WIDTH = 32
CHAT_TAGS = ("<|system|>", "<|user|>", "<|assistant|>", "<|end|>")
CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m.role }}|>{{ m.content }}<|end|>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def blocks(seed: int = 0, **counts: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {m: torch.randn(n, WIDTH, generator=generator) for m, n in counts.items()}


def ids(backend: LoadedBackend, text: str) -> list[int]:
    return backend.tokenizer(text, add_special_tokens=False)["input_ids"]


def embed(backend: LoadedBackend, token_ids: list[int]) -> torch.Tensor:
    return backend.embed_text(torch.tensor([token_ids]))[0]


def test_prompt_is_the_concatenation_of_text_and_block_rows(tiny: LoadedBackend) -> None:
    given = blocks(imu=3, image=4)  # dict order is not prompt order: modality_order is
    out = assemble(tiny, Task.GROUNDING, "Where is the red cup?", given)
    system = tiny.prompt.system_text + "\n"
    pieces = [
        embed(tiny, [tiny.tokenizer.bos_token_id]),
        embed(tiny, ids(tiny, system)),
        embed(tiny, ids(tiny, "[INST] ")),
        embed(tiny, ids(tiny, "<Img>")),
        given["image"],
        embed(tiny, ids(tiny, "</Img>")),
        embed(tiny, ids(tiny, "<IMU>")),
        given["imu"],
        embed(tiny, ids(tiny, "</IMU>")),
        embed(tiny, ids(tiny, " [grounding] Where is the red cup? [/INST]")),
    ]
    expected = torch.cat(pieces)[None]
    torch.testing.assert_close(out.inputs_embeds, expected, rtol=0, atol=0)
    assert out.attention_mask.dtype == torch.int64
    assert out.attention_mask.shape == out.token_ids.shape == (1, expected.shape[1])
    assert bool(out.attention_mask.all())


def test_markers_spans_and_prefix(tiny: LoadedBackend) -> None:
    out = assemble(tiny, Task.VQA, "what do you hear?", blocks(audio=2, image=4, imu=3))
    row = out.token_ids[0].tolist()
    vocab = tiny.tokenizer.get_vocab()
    assert list(out.spans) == ["image", "audio", "imu"]
    for modality, (open_marker, close_marker) in [
        ("image", ("<Img>", "</Img>")),
        ("audio", ("<Audio>", "</Audio>")),
        ("imu", ("<IMU>", "</IMU>")),
    ]:
        start, end = out.spans[modality]
        assert row[start - 1] == vocab[open_marker]
        assert row[end] == vocab[close_marker]
        assert row[start:end] == [ADAPTER_TOKEN] * (end - start)
    assert out.spans["image"][1] - out.spans["image"][0] == 4
    assert out.prefix_len == out.spans["imu"][1] + 1  # just after </IMU>
    assert row[0] == tiny.tokenizer.bos_token_id
    assert row.count(tiny.tokenizer.bos_token_id) == 1
    assert tiny.tokenizer.decode(row[out.prefix_len :]) == "[vqa] what do you hear ? [/INST]"
    assert ADAPTER_TOKEN not in row[out.prefix_len :]


def test_prefix_is_shared_between_questions(tiny: LoadedBackend) -> None:
    given = blocks(image=4, imu=3)
    first = assemble(tiny, Task.VQA, "what is on my left?", given)
    second = assemble(tiny, Task.GROUNDING, "where is the ball?", given)
    assert first.prefix_len == second.prefix_len
    n = first.prefix_len
    assert torch.equal(first.inputs_embeds[:, :n], second.inputs_embeds[:, :n])
    assert not torch.equal(first.inputs_embeds[:, n:], second.inputs_embeds[:, n : first.length])


def test_without_blocks_the_prefix_ends_after_the_user_opening(tiny: LoadedBackend) -> None:
    out = assemble(tiny, Task.CAPTION, "describe the scene", {})
    assert out.spans == {}
    assert out.token_ids[0, out.prefix_len - 1] == tiny.tokenizer.get_vocab()["[INST]"]


def test_numpy_blocks_are_cast_to_the_model_dtype(tiny: LoadedBackend) -> None:
    block = np.ones((2, WIDTH), dtype=np.float16)
    out = assemble(tiny, Task.VQA, "what?", {"audio": block})
    start, end = out.spans["audio"]
    assert out.inputs_embeds.dtype == tiny.model.get_input_embeddings().weight.dtype
    assert torch.equal(out.inputs_embeds[0, start:end], torch.ones(2, WIDTH))


def test_task_prefix_in_the_question_is_not_repeated(tiny: LoadedBackend) -> None:
    out = assemble(tiny, Task.GROUNDING, "[grounding] the cup", {})
    assert (
        tiny.tokenizer.decode(out.token_ids[0, out.prefix_len :]) == "[grounding] the cup [/INST]"
    )


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"image": torch.zeros(4, WIDTH + 1)}, r"expected \(N >= 1, 32\).*\(4, 33\)"),
        ({"image": torch.zeros(WIDTH)}, r"found \(32,\)"),
        ({"smell": torch.zeros(1, WIDTH)}, "smell"),
    ],
)
def test_bad_blocks_are_refused(tiny: LoadedBackend, given: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        assemble(tiny, Task.VQA, "what?", given)


def test_block_outside_the_modality_order_is_refused(tiny: LoadedBackend) -> None:
    narrow = dataclasses.replace(tiny, prompt=PromptConfig(modality_order=("image",)))
    with pytest.raises(ConfigError, match=r"blocks for \['imu'\]"):
        assemble(narrow, Task.VQA, "what?", blocks(imu=1))


@pytest.fixture(scope="module")
def chat() -> LoadedBackend:
    backend = text_backend(special=CHAT_TAGS, chat_template=True)
    backend.tokenizer.chat_template = CHAT_TEMPLATE
    return backend


def test_chat_template_wraps_the_same_pieces(chat: LoadedBackend) -> None:
    given = blocks(image=4, audio=2)
    out = assemble(chat, Task.VQA, "what is on my left?", given)
    system = chat.prompt.system_text
    pieces = [
        embed(chat, ids(chat, f"<|system|>{system}<|end|><|user|>")),
        embed(chat, ids(chat, "<Img>")),
        given["image"],
        embed(chat, ids(chat, "</Img>")),
        embed(chat, ids(chat, "<Audio>")),
        given["audio"],
        embed(chat, ids(chat, "</Audio>")),
        embed(chat, ids(chat, "[vqa] what is on my left?<|end|><|assistant|>")),
    ]
    torch.testing.assert_close(out.inputs_embeds, torch.cat(pieces)[None], rtol=0, atol=0)
    assert out.prefix_len == out.spans["audio"][1] + 1
    tail = chat.tokenizer.decode(out.token_ids[0, out.prefix_len :])
    assert tail == "[vqa] what is on my left ? <|end|> <|assistant|>"
    assert chat.tokenizer.bos_token_id not in out.token_ids[0].tolist()  # the template's call


def test_chat_flag_without_a_template_uses_the_plain_layout(tiny: LoadedBackend) -> None:
    flagged = dataclasses.replace(tiny, chat_template=True)
    plain = assemble(tiny, Task.VQA, "what?", blocks(image=4))
    assert torch.equal(
        assemble(flagged, Task.VQA, "what?", blocks(image=4)).token_ids, plain.token_ids
    )


@pytest.mark.parametrize("use_chat", [False, True])
def test_training_example_is_the_prompt_plus_the_answer(
    tiny: LoadedBackend, chat: LoadedBackend, use_chat: bool
) -> None:
    backend = chat if use_chat else tiny
    given = blocks(image=4, imu=3)
    prompt = assemble(backend, Task.GROUNDING, "where is the cup?", given)
    example = assemble_training(backend, Task.GROUNDING, "where is the cup?", given, "the red cup")
    n = prompt.length
    assert example.prompt_len == n
    assert (example.prefix_len, example.spans) == (prompt.prefix_len, prompt.spans)
    torch.testing.assert_close(example.inputs_embeds[:, :n], prompt.inputs_embeds, rtol=0, atol=0)
    answer = [*ids(backend, "the red cup"), backend.tokenizer.eos_token_id]
    assert example.labels[0, :n].eq(IGNORE).all()
    assert example.labels[0, n:].tolist() == answer
    torch.testing.assert_close(example.inputs_embeds[0, n:], embed(backend, answer), rtol=0, atol=0)


def test_training_example_carries_gradients_to_the_blocks(tiny: LoadedBackend) -> None:
    block = torch.randn(3, WIDTH, requires_grad=True)
    example = assemble_training(tiny, Task.VQA, "how do i move?", {"imu": block}, "walking")
    example.inputs_embeds.sum().backward()
    assert block.grad is not None
    assert torch.equal(block.grad, torch.ones_like(block))


def test_pad_batch_right_pads_and_ignores_the_pads(tiny: LoadedBackend) -> None:
    short = assemble_training(tiny, Task.VQA, "what?", {}, "yes")
    long = assemble_training(tiny, Task.VQA, "what is on my left?", blocks(image=4), "a red cup")
    embeds, mask, labels = pad_batch([short, long])
    n_short, n_long = short.inputs_embeds.shape[1], long.inputs_embeds.shape[1]
    assert embeds.shape == (2, n_long, WIDTH)
    assert mask[0].tolist() == [1] * n_short + [0] * (n_long - n_short)
    assert labels[0, n_short:].eq(IGNORE).all()
    assert torch.equal(labels[1], long.labels[0])
    assert torch.equal(embeds[0, :n_short], short.inputs_embeds[0].detach())
    with pytest.raises(ConfigError):
        pad_batch([])
