"""Continuous batching: a question decoded with others gets exactly what it gets alone."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

import pytest
import torch

from mm_ros.core.errors import QueryError
from mm_ros.core.prompt import Task
from mm_ros.llm.assembly import assemble
from mm_ros.llm.batching import DecodeLoop
from mm_ros.llm.generation import GenerationConfig, Generator
from mm_ros.llm.prefix_cache import PrefixCache
from mm_ros.llm.rows import (
    OneByOneStep,
    RowBlockStep,
    RowLadder,
    build_step,
    ladders,
    row_invariant,
)
from tests.llm.conftest import load, text_backend

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from mm_ros.llm.assembly import Assembled
    from mm_ros.llm.backends.base import LoadedBackend
    from mm_ros.llm.generation import Decoding, Generated

WAIT_S = 30.0
QUESTIONS = (
    "what is on my left?",
    "where is the red cup?",
    "what do you hear?",
    "is there a person in front of me?",
    "how am i moving?",
    "what colour is the ball on the table?",
)


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """Torch on one thread: two threads on busy shared cores wait for each other (40x slower).

    The bit-for-bit test runs on two threads as well (MKL splits rows between them).
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module", params=["llama", "qwen2", "mm-tiny"])
def backend(request: pytest.FixtureRequest) -> LoadedBackend:
    """Tiny random Llama and Qwen2 (no EOS: long answers) and the shipped, trained mm-tiny."""
    if request.param == "mm-tiny":
        return load("")  # "" = the embedded default: the shipped mm-tiny
    return text_backend(request.param, seed=5)


def generator(backend: LoadedBackend, max_rows: int = 8, **kwargs: Any) -> Generator:
    made = Generator(backend, max_rows=max_rows, **kwargs)
    if backend.model_id.startswith("test-"):  # random weights: keep going to max_new_tokens
        made.eos_ids = frozenset()
    return made


def prompts(backend: LoadedBackend) -> list[Assembled]:
    """One prompt per question, each with blocks of a different length (different positions)."""
    width = backend.model.get_input_embeddings().embedding_dim
    out = []
    for i, question in enumerate(QUESTIONS):
        draw = torch.Generator().manual_seed(i)
        blocks = {
            "image": torch.randn(3 + 2 * i, width, generator=draw),
            "imu": torch.randn(2 + i % 3, width, generator=draw),
        }
        out.append(assemble(backend, Task.VQA, question, blocks))
    return out


def alone(backend: LoadedBackend, config: GenerationConfig) -> list[Generated]:
    made = generator(backend)
    return [made.generate(p, config) for p in prompts(backend)]


def test_the_step_in_use_is_the_batched_one(backend: LoadedBackend) -> None:
    step = generator(backend).prepare()
    assert isinstance(step, RowBlockStep), step.description
    assert step.description.startswith("batched: oneDNN on packed weights, rows")


@pytest.mark.parametrize("threads", [1, 2])
def test_a_row_gets_the_same_logits_bit_for_bit_alone_and_in_any_batch(
    backend: LoadedBackend, threads: int
) -> None:
    torch.set_num_threads(threads)
    made = generator(backend)
    assert isinstance(made.prepare(), RowBlockStep)
    config = GenerationConfig(max_new_tokens=8)
    every = prompts(backend)

    def logits(chosen: list[int]) -> torch.Tensor:
        decodings = [made.start(every[i], config) for i in chosen]
        ids = torch.tensor([[d.tokens[-1]] for d in decodings])
        with torch.inference_mode():
            embeds = backend.embed_text(ids)
            return made.step(embeds, [d.cache for d in decodings], [d.position for d in decodings])

    together = logits(list(range(len(every))))  # 6 rows: padded to 8
    for i in range(len(every)):
        assert torch.equal(logits([i])[0], together[i]), f"row {i} alone differs"
    reordered = logits([4, 2, 5])  # other rows, other places, 3 rows padded to 4
    assert torch.equal(reordered[1], together[2])


def test_batched_answers_equal_alone_with_staggered_joins(backend: LoadedBackend) -> None:
    config = GenerationConfig(max_new_tokens=24)
    expected = alone(backend, config)
    longest = sorted(range(len(expected)), key=lambda i: -len(expected[i].token_ids))
    early, late = longest[:3], longest[3:]  # the rest join while the early ones answer
    loop = DecodeLoop(generator(backend))
    every = prompts(backend)
    results: dict[int, Generated] = {}
    streams: dict[int, list[str]] = {i: [] for i in range(len(every))}
    early_running = threading.Event()

    def ask(i: int) -> None:
        def on_text(text: str, n: int) -> None:
            streams[i].append(text)
            if i == longest[0] and n == 2:
                early_running.set()

        results[i] = loop.generate(every[i], config, on_text=on_text)

    threads = {i: threading.Thread(target=ask, args=(i,)) for i in range(len(every))}
    for i in early:
        threads[i].start()
    assert early_running.wait(WAIT_S)
    for i in late:
        threads[i].start()
    for thread in threads.values():
        thread.join(WAIT_S)
    loop.close()
    for i, want in enumerate(expected):
        got = results[i]
        assert (got.token_ids, got.text, got.stop_reason) == (
            want.token_ids,
            want.text,
            want.stop_reason,
        ), f"question {i}"
        assert streams[i] == [want.text[: len(s)] for s in streams[i]]  # a growing prefix
    stats = loop.stats()
    assert stats.row_steps > stats.steps  # rows really shared steps
    assert stats.tokens == sum(len(r.token_ids) for r in results.values())


def test_rows_leave_on_their_own_stop_without_disturbing_the_others() -> None:
    backend = text_backend("llama", seed=5)
    every = prompts(backend)
    base = GenerationConfig(max_new_tokens=20)
    full = [generator(backend).generate(p, base) for p in every]
    stop_word = full[1].text.split(" ")[4]
    configs = [
        GenerationConfig(max_new_tokens=3),  # leaves first
        GenerationConfig(max_new_tokens=20, stop_strings=(stop_word,)),
        base,
        base,  # cancelled after 5 tokens
        base,  # deadline after 7 tokens
        GenerationConfig(max_new_tokens=12),
    ]
    expected = [generator(backend).generate(p, c) for p, c in zip(every, configs, strict=True)]
    counts = [0] * len(every)

    def stopper(i: int, after: int, reason: str) -> Callable[[], str | None]:
        def should_stop() -> str | None:
            counts[i] += 1
            return reason if counts[i] > after else None  # asked before the prefill too

        return should_stop

    made = generator(backend)
    hooks: dict[int, Callable[[], str | None]] = {
        3: stopper(3, 5, "cancelled"),
        4: stopper(4, 7, "deadline"),
    }
    decodings = [
        made.start(p, c, should_stop=hooks.get(i))
        for i, (p, c) in enumerate(zip(every, configs, strict=True))
    ]
    while any(not d.over for d in decodings):
        made.advance(decodings)
    got = [d.result() for d in decodings]
    for i in (0, 1, 2, 5):
        assert got[i].token_ids == expected[i].token_ids, f"question {i}"
        assert got[i].stop_reason == expected[i].stop_reason
    assert got[0].stop_reason == "max_new_tokens"
    assert got[1].stop_reason == "stop_string"
    assert stop_word not in got[1].text
    assert (got[3].stop_reason, got[3].token_ids) == ("cancelled", full[3].token_ids[:5])
    assert (got[4].stop_reason, got[4].token_ids) == ("deadline", full[4].token_ids[:7])


def test_sampled_answers_equal_alone_with_the_same_seed() -> None:
    backend = text_backend("qwen2", seed=5)
    configs = [
        GenerationConfig(max_new_tokens=10, do_sample=True, temperature=1.3, top_p=0.9, seed=s)
        for s in range(len(QUESTIONS))
    ]
    every = prompts(backend)
    expected = [generator(backend).generate(p, c) for p, c in zip(every, configs, strict=True)]
    made = generator(backend)
    decodings = [made.start(p, c) for p, c in zip(every, configs, strict=True)]
    while any(not d.over for d in decodings):
        made.advance(decodings)
    assert [d.result().token_ids for d in decodings] == [e.token_ids for e in expected]


def test_questions_about_one_snapshot_share_the_prefix_in_one_batch() -> None:
    backend = text_backend("llama", seed=5)
    width = backend.model.get_input_embeddings().embedding_dim
    blocks = {"image": torch.randn(6, width, generator=torch.Generator().manual_seed(1))}
    questions = [assemble(backend, Task.VQA, q, blocks) for q in QUESTIONS[:3]]
    cache = PrefixCache()
    made = generator(backend, cache=cache)
    config = GenerationConfig(max_new_tokens=6)
    decodings = [made.start(q, config, prefix_key="snapshot-1") for q in questions]
    while any(not d.over for d in decodings):
        made.advance(decodings)
    stats = cache.stats()
    assert (stats.misses, stats.hits, stats.entries) == (1, 2, 1)
    assert [d.prefix_cache_hit for d in decodings] == [False, True, True]
    plain = generator(backend)
    assert [d.result().token_ids for d in decodings] == [
        plain.generate(q, config).token_ids for q in questions
    ]


def test_a_failing_hook_ends_only_its_own_question() -> None:
    backend = text_backend("llama", seed=5)
    every = prompts(backend)[:3]
    config = GenerationConfig(max_new_tokens=6)
    expected = [generator(backend).generate(p, config) for p in every]

    def broken(text: str, n: int) -> None:
        if n == 2:
            raise RuntimeError("feedback publisher gone")

    made = generator(backend)
    decodings = [made.start(p, config, on_text=broken if i == 1 else None)
                 for i, p in enumerate(every)]  # fmt: skip
    while any(not d.over for d in decodings):
        made.advance(decodings)
    with pytest.raises(RuntimeError, match="feedback publisher gone"):
        decodings[1].result()
    assert decodings[0].result().token_ids == expected[0].token_ids
    assert decodings[2].result().token_ids == expected[2].token_ids


def test_a_question_joins_mid_answer_and_leaves_first() -> None:
    backend = text_backend("llama", seed=5)
    every = prompts(backend)
    loop = DecodeLoop(generator(backend))
    order: list[str] = []
    long_running = threading.Event()

    def long_answer() -> None:
        def on_text(_: str, n: int) -> None:
            if n == 4:
                long_running.set()

        loop.generate(every[0], GenerationConfig(max_new_tokens=60), on_text=on_text)
        order.append("long")

    thread = threading.Thread(target=long_answer)
    thread.start()
    assert long_running.wait(WAIT_S)
    short = loop.generate(every[1], GenerationConfig(max_new_tokens=2))
    order.append("short")
    thread.join(WAIT_S)
    assert order == ["short", "long"]  # joined a running batch, left it before the other
    assert len(short.token_ids) == 2
    assert loop.stats().rows == 0
    loop.close()
    with pytest.raises(QueryError, match="closed"):
        loop.generate(every[2], GenerationConfig(max_new_tokens=2))


def test_close_ends_questions_still_decoding_with_a_shutdown_error() -> None:
    backend = text_backend("llama", seed=5)
    loop = DecodeLoop(generator(backend))
    errors: list[Exception] = []
    streaming = threading.Event()

    def ask() -> None:
        try:
            loop.generate(
                prompts(backend)[0],
                GenerationConfig(max_new_tokens=100_000),
                on_text=lambda _, n: streaming.set(),
            )
        except QueryError as err:
            errors.append(err)

    thread = threading.Thread(target=ask)
    thread.start()
    assert streaming.wait(WAIT_S)
    loop.close()
    thread.join(WAIT_S)
    assert len(errors) == 1
    assert "shut down while answering" in str(errors[0])


def row_mixing(x: torch.Tensor) -> torch.Tensor:
    return x - x.mean(dim=0, keepdim=True)  # every row depends on the others


def lone_row_differs(x: torch.Tensor) -> torch.Tensor:
    return x + 1e-3 if x.shape[0] < 8 else x  # another "kernel" below 8 rows


@pytest.mark.parametrize(
    ("module", "ladder", "invariant"),
    [
        (torch.nn.LayerNorm(16).eval(), RowLadder(block=4), True),
        (row_mixing, RowLadder(block=4), False),
        (row_mixing, RowLadder(fixed=16), False),  # a row's place matters too
        (lone_row_differs, RowLadder(block=4), False),
        (lone_row_differs, RowLadder(block=8), True),
    ],
)
def test_row_check(module: Callable[[torch.Tensor], torch.Tensor], ladder: RowLadder,
                   invariant: bool) -> None:  # fmt: skip
    cpu = torch.device("cpu")
    sizes = ladder.sizes(8)
    assert row_invariant(module, 16, sizes, device=cpu, dtype=torch.float32) == invariant


def test_ladders_pad_rows() -> None:
    assert [RowLadder(block=4).rows(n) for n in (1, 4, 5, 9)] == [4, 4, 8, 12]
    assert RowLadder(block=4).sizes(6) == (4, 8, 12, 16)  # checked up to 16 rows at least
    assert RowLadder(fixed=16).rows(3) == 16
    assert [ladder.describe() for ladder in ladders(20)] == [
        "rows not padded",
        "rows padded to a multiple of 2",
        "rows padded to a multiple of 4",
        "rows padded to a multiple of 8",
        "rows padded to a multiple of 16",
        "rows padded to 32",
    ]


def test_without_a_passing_ladder_rows_run_one_by_one_and_stay_exact(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    backend = text_backend("llama", seed=5)
    monkeypatch.setattr("mm_ros.llm.rows.row_invariant", lambda *a, **k: False)
    made = generator(backend)
    step = made.prepare()
    assert isinstance(step, OneByOneStep)
    assert step.description.startswith("one row at a time: no row ladder keeps rows independent")
    config = GenerationConfig(max_new_tokens=8)
    every = prompts(backend)
    decodings: list[Decoding] = [made.start(p, config) for p in every]
    while any(not d.over for d in decodings):
        made.advance(decodings)
    assert [d.result().token_ids for d in decodings] == [
        e.token_ids for e in alone(backend, config)
    ]


def test_unknown_layers_are_decoded_one_by_one(tmp_path: Path) -> None:
    from tests.tiny_vlm import make_tiny_llava

    model = make_tiny_llava(tmp_path / "llava")  # its LM sits inside LlavaModel
    step = build_step(model, lambda *a: (torch.zeros(1), None), 4)
    assert isinstance(step, OneByOneStep)
    assert "has no model.layers" in step.description
