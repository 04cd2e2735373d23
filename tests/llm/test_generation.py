from __future__ import annotations

import itertools
import threading
from typing import TYPE_CHECKING

import pytest
import torch

from mm_ros.core.errors import ConfigError
from mm_ros.core.prompt import Task
from mm_ros.llm.assembly import assemble
from mm_ros.llm.generation import GenerationConfig, Generator, _streamable
from mm_ros.llm.prefix_cache import PrefixCache
from tests.llm.conftest import load, text_backend

if TYPE_CHECKING:
    from pathlib import Path

    from mm_ros.llm.assembly import Assembled
    from mm_ros.llm.backends.base import LoadedBackend

WIDTH = 32
LONG = GenerationConfig(max_new_tokens=12)


def blocks(seed: int = 0, **counts: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {m: torch.randn(n, WIDTH, generator=generator) for m, n in counts.items()}


def prompt(
    backend: LoadedBackend, question: str = "what is on my left?", seed: int = 0
) -> Assembled:
    return assemble(backend, Task.VQA, question, blocks(seed, image=4, audio=2, imu=3))


@pytest.fixture(scope="module", params=["llama", "qwen2"])
def family(request: pytest.FixtureRequest) -> LoadedBackend:
    backend = text_backend(request.param, seed=5)
    backend.tokenizer.eos_token_id  # noqa: B018 - the tokenizer has one (</s>)
    return backend


def no_eos(backend: LoadedBackend) -> Generator:
    generator = Generator(backend)
    generator.eos_ids = frozenset()  # random weights: keep going to max_new_tokens
    return generator


def test_greedy_is_deterministic_and_stops_at_max_new_tokens(family: LoadedBackend) -> None:
    generator = no_eos(family)
    first = generator.generate(prompt(family), LONG)
    second = generator.generate(prompt(family), LONG)
    assert first.token_ids == second.token_ids
    assert len(first.token_ids) == 12
    assert first.stop_reason == "max_new_tokens"
    assert first.text == family.tokenizer.decode(list(first.token_ids))
    assert first.prompt_tokens == prompt(family).length
    assert not first.prefix_cache_hit


def test_greedy_matches_a_full_forward_argmax(family: LoadedBackend) -> None:
    assembled = prompt(family)
    out = no_eos(family).generate(assembled, GenerationConfig(max_new_tokens=4))
    # the same tokens by re-running the whole sequence each step (no KV cache at all)
    embeds = assembled.inputs_embeds
    expected = []
    with torch.inference_mode():
        for _ in range(4):
            logits = family.model(inputs_embeds=embeds).logits[0, -1]
            token = int(logits.argmax())
            expected.append(token)
            embeds = torch.cat([embeds, family.embed_text(torch.tensor([[token]]))], dim=1)
    assert list(out.token_ids) == expected


def test_eos_ends_generation(family: LoadedBackend) -> None:
    generator = no_eos(family)
    free = generator.generate(prompt(family), LONG)
    generator.eos_ids = frozenset({free.token_ids[2]})  # the third token counts as EOS now
    out = generator.generate(prompt(family), LONG)
    assert out.stop_reason == "eos"
    assert out.token_ids == free.token_ids[:2]


def test_stop_string_cuts_the_text(family: LoadedBackend) -> None:
    generator = no_eos(family)
    free = generator.generate(prompt(family), LONG)
    words = free.text.split(" ")
    stop = words[3]
    config = GenerationConfig(max_new_tokens=12, stop_strings=("zzz-never", stop))
    out = generator.generate(prompt(family), config)
    assert out.stop_reason == "stop_string"
    assert out.text == free.text[: free.text.find(stop)]
    assert stop not in out.text


def test_streaming_sees_growing_text(family: LoadedBackend) -> None:
    seen: list[tuple[str, int]] = []
    out = no_eos(family).generate(
        prompt(family), LONG, on_text=lambda text, n: seen.append((text, n))
    )
    assert [n for _, n in seen] == list(range(1, 13))
    for (before, _), (after, _) in itertools.pairwise(seen):
        assert after.startswith(before)
        assert len(after) > len(before)
    assert seen[-1][0] == out.text


def test_streaming_holds_back_a_possible_stop_string() -> None:
    config = GenerationConfig(stop_strings=("</p>",))
    assert _streamable("the cup </", config) == "the cup "
    assert _streamable("the cup", config) == "the cup"
    assert _streamable("caf\ufffd", GenerationConfig()) == "caf"


@pytest.mark.parametrize("reason", ["cancelled", "deadline"])
def test_should_stop_ends_generation(family: LoadedBackend, reason: str) -> None:
    calls = 0

    def should_stop() -> str | None:
        nonlocal calls
        calls += 1
        return reason if calls > 3 else None

    out = no_eos(family).generate(prompt(family), LONG, should_stop=should_stop)
    assert out.stop_reason == reason
    assert len(out.token_ids) == 3  # asked before prefill and before steps 2 and 3
    immediately = no_eos(family).generate(prompt(family), LONG, should_stop=lambda: reason)
    assert (immediately.stop_reason, immediately.token_ids, immediately.text) == (reason, (), "")


def test_should_stop_with_an_unknown_reason_is_an_error(family: LoadedBackend) -> None:
    with pytest.raises(ConfigError, match="should_stop"):
        no_eos(family).generate(prompt(family), LONG, should_stop=lambda: "bored")


def test_cancel_from_another_thread(family: LoadedBackend) -> None:
    cancel = threading.Event()

    def on_text(_: str, n: int) -> None:
        if n == 5:
            cancel.set()

    out = no_eos(family).generate(
        prompt(family),
        LONG,
        on_text=on_text,
        should_stop=lambda: "cancelled" if cancel.is_set() else None,
    )
    assert (out.stop_reason, len(out.token_ids)) == ("cancelled", 5)


def test_sampling_is_reproducible_with_a_seed(family: LoadedBackend) -> None:
    generator = no_eos(family)
    config = GenerationConfig(max_new_tokens=8, do_sample=True, temperature=1.5, seed=7)
    first = generator.generate(prompt(family), config)
    assert generator.generate(prompt(family), config).token_ids == first.token_ids
    others = {
        generator.generate(
            prompt(family), GenerationConfig(**{**vars(config), "seed": s})
        ).token_ids
        for s in range(4)
    }
    assert len(others) > 1  # the seed matters
    greedy = generator.generate(prompt(family), LONG).token_ids
    top1 = GenerationConfig(max_new_tokens=12, do_sample=True, top_k=1, seed=3)
    assert generator.generate(prompt(family), top1).token_ids == greedy
    tiny_p = GenerationConfig(max_new_tokens=12, do_sample=True, top_p=1e-6, seed=3)
    assert generator.generate(prompt(family), tiny_p).token_ids == greedy


def test_prefix_cache_equals_no_cache(family: LoadedBackend) -> None:
    cache = PrefixCache(max_entries=2)
    cached = no_eos(family)
    cached.cache = cache
    plain = no_eos(family)
    questions = ["what is on my left?", "where is the red cup?", "what do you hear?"]
    for index, question in enumerate(questions):
        assembled = prompt(family, question)
        with_cache = cached.generate(assembled, LONG, prefix_key="snapshot-1")
        assert with_cache.prefix_cache_hit == (index > 0)
        assert with_cache.token_ids == plain.generate(assembled, LONG).token_ids
    stats = cache.stats()
    assert (stats.hits, stats.misses, stats.entries) == (2, 1, 1)


def test_prefix_cache_never_hits_on_other_blocks_or_keys(family: LoadedBackend) -> None:
    cache = PrefixCache(max_entries=2)
    generator = Generator(family, cache)
    assert not generator.generate(prompt(family, seed=0), LONG, prefix_key="a").prefix_cache_hit
    assert not generator.generate(prompt(family, seed=1), LONG, prefix_key="a").prefix_cache_hit
    assert not generator.generate(prompt(family, seed=0), LONG, prefix_key="b").prefix_cache_hit
    assert len(cache) == 2  # LRU: the first entry went
    assert not generator.generate(prompt(family, seed=0), LONG, prefix_key="a").prefix_cache_hit
    assert generator.generate(prompt(family, seed=0), LONG, prefix_key="a").prefix_cache_hit
    assert not generator.generate(prompt(family, seed=0), LONG).prefix_cache_hit  # no key: off


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("max_new_tokens", 0),
        ("temperature", 0.0),
        ("top_k", -1),
        ("top_p", 0.0),
        ("stop_strings", ("",)),
    ],
)
def test_generation_config_is_validated(field: str, value: object) -> None:
    with pytest.raises(ConfigError, match=field):
        GenerationConfig(**{field: value})  # type: ignore[arg-type]


def test_prefix_cache_size_is_validated() -> None:
    with pytest.raises(ConfigError, match="max_entries"):
        PrefixCache(0)


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_half_precision_backend_assembles_and_caches(tiny_dir: Path, dtype: str) -> None:
    backend = load(tiny_dir, dtype=dtype)
    assert backend.model.get_input_embeddings().weight.dtype == getattr(torch, dtype)
    assembled = prompt(backend)
    assert assembled.inputs_embeds.dtype == getattr(torch, dtype)
    generator = Generator(backend, PrefixCache())
    generator.eos_ids = frozenset()
    first = generator.generate(assembled, GenerationConfig(max_new_tokens=4), prefix_key=1)
    again = generator.generate(assembled, GenerationConfig(max_new_tokens=4), prefix_key=1)
    assert (first.prefix_cache_hit, again.prefix_cache_hit) == (False, True)
    assert again.token_ids == first.token_ids


def test_sensor_data_to_answer_on_the_random_default(tiny: LoadedBackend) -> None:
    import numpy as np

    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
    audio = rng.standard_normal(8000).astype(np.float32) * 0.1
    stamps = np.arange(100, dtype=np.int64) * 10_000_000  # 100 Hz for 1 s
    imu = rng.standard_normal((100, 6)).astype(np.float32)
    encoded = {
        "image": tiny.sessions["image"].encode_image(image),
        "audio": tiny.sessions["audio"].encode_audio(audio, 16000),
        "imu": tiny.sessions["imu"].encode_imu(stamps, imu),
    }
    assembled = assemble(
        tiny, Task.GROUNDING, "where is the cup?", {m: e.tokens for m, e in encoded.items()}
    )
    for modality, (start, end) in assembled.spans.items():
        assert end - start == tiny.sessions[modality].spec.token_count
    out = Generator(tiny, PrefixCache()).generate(assembled, GenerationConfig(max_new_tokens=6))
    assert out.stop_reason in {"eos", "max_new_tokens"}
    assert out.prompt_tokens == assembled.length
