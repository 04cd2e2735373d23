"""Our own decode loop over ``inputs_embeds``: streaming, cancel/deadline, KV-prefix reuse.

Not ``model.generate``: the service needs to stop between any two tokens (cancel, deadline),
to stream text after each one, to prefill only the question when the prefix (system text +
modality blocks) is already in the :class:`~mm_ros.llm.prefix_cache.PrefixCache`, and to let
questions join and leave a running batch (:mod:`mm_ros.llm.batching`). The loop is the textbook
one: prefill the prompt alone with ``use_cache``, then feed one token per question per step
with its own cache and position, through a step that gives each question the same bits alone
or in company (:mod:`mm_ros.llm.rows`).
"""

from __future__ import annotations

import inspect
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from mm_ros.core.errors import ConfigError
from mm_ros.llm.rows import RowBlockStep, build_step

if TYPE_CHECKING:
    from collections.abc import Callable, Hashable, Sequence

    from mm_ros.llm.assembly import Assembled
    from mm_ros.llm.backends.base import LoadedBackend
    from mm_ros.llm.prefix_cache import PrefixCache
    from mm_ros.llm.rows import DecodeStep

STOP_REASONS = ("eos", "stop_string", "max_new_tokens", "cancelled", "deadline")
INTERRUPTS = ("cancelled", "deadline")  # what ``should_stop`` may return
REPLACEMENT = "\ufffd"  # a decoded byte sequence cut in the middle of a UTF-8 character


@dataclass(frozen=True)
class GenerationConfig:
    """How to pick tokens and when to stop."""

    max_new_tokens: int = 64  # answers are short; boxes take 6 tokens each in mm-tiny
    do_sample: bool = False  # greedy by default: the same snapshot gives the same answer
    temperature: float = 1.0
    top_k: int = 0  # 0 = no top-k filter
    top_p: float = 1.0  # 1.0 = no nucleus filter
    seed: int = 0  # sampling RNG, private to each generate call (reproducible)
    stop_strings: tuple[str, ...] = ()  # text is cut before the first one found

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ConfigError(f"max_new_tokens must be >= 1, found {self.max_new_tokens}")
        if self.temperature <= 0:
            raise ConfigError(
                f"temperature must be > 0 (use do_sample=False for greedy), found "
                f"{self.temperature}"
            )
        if self.top_k < 0:
            raise ConfigError(f"top_k must be >= 0 (0 = off), found {self.top_k}")
        if not 0.0 < self.top_p <= 1.0:
            raise ConfigError(f"top_p must be in (0, 1], found {self.top_p}")
        if any(not s for s in self.stop_strings):
            raise ConfigError(f"stop_strings must not be empty strings, found {self.stop_strings}")


@dataclass(frozen=True)
class Generated:
    """What one generate call produced, why it stopped and how long each part took."""

    text: str  # raw decoded text (markup kept), cut before a stop string
    token_ids: tuple[int, ...]  # new tokens, EOS not included
    stop_reason: str  # one of STOP_REASONS
    prompt_tokens: int
    prefill_s: float  # prompt forward pass(es); only the suffix on a prefix-cache hit
    first_token_s: float  # question asked → first new token chosen (0.0 if none)
    generate_s: float  # question asked → last token (a batch slot's wait included)
    prefix_cache_hit: bool


@dataclass(eq=False)
class Decoding:
    """One question being decoded: its cache, the tokens so far and, once over, why it stopped.

    :meth:`Generator.start` makes one (prefill + first token), :meth:`Generator.advance` moves
    any number of them on by one token in one step; a lone question and one in a batch go
    through the very same calls.
    """

    config: GenerationConfig
    prompt_tokens: int
    started: float  # perf_counter s when the caller asked (waiting for a batch slot counts)
    rng: torch.Generator  # private sampling RNG, seeded from config.seed
    on_text: Callable[[str, int], None] | None = None
    should_stop: Callable[[], str | None] | None = None
    cache: Any = None  # transformers Cache of the prompt and the tokens so far
    position: int = 0  # position of the next token to feed
    tokens: list[int] = field(default_factory=list)  # new tokens, EOS not included
    text: str = ""
    stop_reason: str = ""  # one of STOP_REASONS once over, "" while running
    error: Exception | None = None  # a callback (or the model) failed: the caller gets it
    prefill_s: float = 0.0
    first_token_s: float = 0.0
    prefix_cache_hit: bool = False
    ended: float = 0.0  # perf_counter s when it stopped

    @property
    def over(self) -> bool:
        """True once it stopped (or failed): it leaves the batch."""
        return bool(self.stop_reason) or self.error is not None

    def stop(self, reason: str) -> None:
        """End it with ``reason`` (one of STOP_REASONS); the cache is released."""
        self.stop_reason = reason
        self.cache = None
        self.ended = time.perf_counter()

    def fail(self, error: Exception) -> None:
        """End it with ``error``, which its caller receives."""
        self.error = error
        self.cache = None
        self.ended = time.perf_counter()

    def result(self) -> Generated:
        """Return what the question produced (once over; raise its error if it failed)."""
        if self.error is not None:
            raise self.error
        if not self.stop_reason:
            raise ConfigError("Decoding.result: the question is still being decoded")
        return Generated(
            text=self.text,
            token_ids=tuple(self.tokens),
            stop_reason=self.stop_reason,
            prompt_tokens=self.prompt_tokens,
            prefill_s=self.prefill_s,
            first_token_s=self.first_token_s,
            generate_s=self.ended - self.started,
            prefix_cache_hit=self.prefix_cache_hit,
        )


class Generator:
    """Generate text from an :class:`~mm_ros.llm.assembly.Assembled` prompt for one backend.

    ``max_rows`` is the most questions one decode step will hold (the service's ``max_batch``):
    the row-exact step (:mod:`mm_ros.llm.rows`) is checked up to it.
    """

    def __init__(
        self,
        backend: LoadedBackend,
        cache: PrefixCache | None = None,
        max_rows: int = 1,
        step: Callable[[Generator], DecodeStep] | None = None,
    ) -> None:
        if max_rows < 1:
            raise ConfigError(f"max_rows must be >= 1, found {max_rows}")
        self.backend = backend
        self.cache = cache
        self.max_rows = max_rows
        forward = inspect.signature(backend.model.forward).parameters
        self._keeps_logits = "logits_to_keep" in forward  # compute logits of the last row only
        self.eos_ids = _eos_ids(backend)
        # step(generator) pins a formulation (benchmarks compare them); None: build_step's pick
        self._step: DecodeStep | None = step(self) if step is not None else None

    @property
    def built_step(self) -> DecodeStep | None:
        """The decode step if one was built (None before the first use or :meth:`prepare`)."""
        return self._step

    def prepare(self) -> DecodeStep:
        """Build the decode step now (checking its rows takes a moment on a big model)."""
        return self.step

    @property
    def step(self) -> DecodeStep:
        """The decode step in use, built (and its rows checked) on first use."""
        step = self._step
        stale = isinstance(step, RowBlockStep) and step.threads != torch.get_num_threads()
        if step is None or stale:  # CPU kernels split rows by thread: check again (a pinned
            # row step too: its rows were checked for the old thread count)
            step = self._step = build_step(self.backend.model, self._forward, self.max_rows)
        return step

    def generate(
        self,
        assembled: Assembled,
        config: GenerationConfig,
        *,
        prefix_key: Hashable | None = None,
        on_text: Callable[[str, int], None] | None = None,
        should_stop: Callable[[], str | None] | None = None,
    ) -> Generated:
        """Decode up to ``config.max_new_tokens`` tokens after the prompt, as a batch of one.

        ``prefix_key`` (e.g. the snapshot id) opts into the prefix cache; ``on_text(text, n)``
        gets the text so far after each token; ``should_stop()`` is asked before each forward
        pass and ends generation with the reason it returns ("cancelled" or "deadline").
        """
        decoding = self.start(
            assembled, config, prefix_key=prefix_key, on_text=on_text, should_stop=should_stop
        )
        while not decoding.over:
            self.advance([decoding])
        return decoding.result()

    def start(
        self,
        assembled: Assembled,
        config: GenerationConfig,
        *,
        prefix_key: Hashable | None = None,
        on_text: Callable[[str, int], None] | None = None,
        should_stop: Callable[[], str | None] | None = None,
        on_prefill: Callable[[], None] | None = None,
        started: float | None = None,
    ) -> Decoding:
        """Prefill the prompt (alone) and choose the first token, unless told to stop first.

        ``on_prefill()`` is called just before the prefill; ``started`` (perf_counter s) is when
        the question was asked, for the timings (default: now).
        """
        decoding = Decoding(
            config,
            assembled.length,
            time.perf_counter() if started is None else started,
            torch.Generator().manual_seed(config.seed),
            on_text,
            should_stop,
        )
        try:
            interrupt = _ask(should_stop)
            if interrupt is not None:
                decoding.stop(interrupt)
                return decoding
            if on_prefill is not None:
                on_prefill()
            t0 = time.perf_counter()
            with torch.inference_mode():
                logits, decoding.cache, decoding.prefix_cache_hit = self._prefill(
                    assembled, prefix_key
                )
            decoding.prefill_s = time.perf_counter() - t0
            decoding.position = assembled.length
            self._take(decoding, logits)
        except Exception as err:  # noqa: BLE001 - its asker gets it; the batch goes on
            decoding.fail(err)
        return decoding

    def advance(self, decodings: Sequence[Decoding]) -> int:
        """Move every running decoding on by one token, in one step for all of them.

        Each is asked ``should_stop()`` first; those told to stop leave before the step.
        Returns the number of rows the step ran.
        """
        live = []
        for decoding in decodings:
            if decoding.over:
                continue
            try:
                interrupt = _ask(decoding.should_stop)
            except Exception as err:  # noqa: BLE001 - a broken hook ends its question only
                decoding.fail(err)
                continue
            if interrupt is not None:
                decoding.stop(interrupt)
            else:
                live.append(decoding)
        if not live:
            return 0
        with torch.inference_mode():
            ids = torch.tensor([[d.tokens[-1]] for d in live], dtype=torch.int64)
            embeds = self.backend.embed_text(ids)  # (n, 1, D)
            logits = self.step(embeds, [d.cache for d in live], [d.position for d in live])
        for decoding, row in zip(live, logits, strict=True):  # row: (V,)
            decoding.position += 1
            try:
                self._take(decoding, row)
            except Exception as err:  # noqa: BLE001 - a broken hook ends its question only
                decoding.fail(err)
        return len(live)

    def _take(self, decoding: Decoding, logits: torch.Tensor) -> None:
        """Choose the next token from (V,) ``logits``; stream it or stop."""
        config = decoding.config
        token = _pick(logits, config, decoding.rng)
        if not decoding.tokens:
            decoding.first_token_s = time.perf_counter() - decoding.started
        if token in self.eos_ids:
            decoding.stop("eos")
            return
        decoding.tokens.append(token)
        text, stopped = _cut(self._decode(decoding.tokens), config.stop_strings)
        decoding.text = text
        if decoding.on_text is not None:
            shown = text if stopped else _streamable(text, config)
            decoding.on_text(shown, len(decoding.tokens))
        if stopped:
            decoding.stop("stop_string")
        elif len(decoding.tokens) >= config.max_new_tokens:
            decoding.stop("max_new_tokens")

    def _prefill(
        self, assembled: Assembled, prefix_key: Hashable | None
    ) -> tuple[torch.Tensor, Any, bool]:
        """Return last-row logits, the KV cache after the prompt and whether the prefix hit."""
        embeds = assembled.inputs_embeds  # (1, T, D)
        split = assembled.prefix_len
        if self.cache is None or prefix_key is None or not 0 < split < assembled.length:
            logits, past = self._forward(embeds, None, 0)
            return logits, past, False
        key = self.cache.key(prefix_key, embeds, split)
        past = self.cache.get(key)
        hit = past is not None
        if past is None:
            _, past = self._forward(embeds[:, :split], None, 0)
            self.cache.put(key, past)
        logits, past = self._forward(embeds[:, split:], past, split)
        return logits, past, hit

    def _forward(self, embeds: torch.Tensor, past: Any, start: int) -> tuple[torch.Tensor, Any]:
        """(1, n, D) rows at positions start..start+n-1 → (V,) logits of the last row, cache."""
        n = int(embeds.shape[1])
        device = embeds.device
        kwargs: dict[str, Any] = {
            "inputs_embeds": embeds,
            "attention_mask": torch.ones((1, start + n), dtype=torch.int64, device=device),
            "position_ids": torch.arange(start, start + n, device=device)[None],
            "past_key_values": past,
            "use_cache": True,
        }
        if self._keeps_logits:
            kwargs["logits_to_keep"] = 1
        out = self.backend.model(**kwargs)
        return out.logits[0, -1], out.past_key_values

    def _decode(self, tokens: list[int]) -> str:
        # markup such as <p> or <37> is made of special tokens in small vocabularies: keep them
        return str(self.backend.tokenizer.decode(tokens, skip_special_tokens=False))


def _eos_ids(backend: LoadedBackend) -> frozenset[int]:
    """EOS ids of the tokenizer and of the model's generation config (chat models add theirs)."""
    found: set[int] = set()
    candidates: list[Any] = [backend.tokenizer.eos_token_id]
    generation_config = getattr(backend.model, "generation_config", None)
    if generation_config is not None:
        candidates.append(generation_config.eos_token_id)
    for value in candidates:
        if isinstance(value, int):
            found.add(value)
        elif isinstance(value, list | tuple):
            found.update(int(v) for v in value)
    return frozenset(found)


def _ask(should_stop: Callable[[], str | None] | None) -> str | None:
    if should_stop is None:
        return None
    reason = should_stop()
    if reason is not None and reason not in INTERRUPTS:
        raise ConfigError(f"should_stop: expected None or one of {INTERRUPTS}, found {reason!r}")
    return reason


def _pick(logits: torch.Tensor, config: GenerationConfig, generator: torch.Generator) -> int:
    """(V,) logits → the next token: argmax, or a seeded sample after temperature/top-k/top-p."""
    if not config.do_sample:
        return int(torch.argmax(logits).item())
    scores = logits.float().cpu() / config.temperature  # CPU: the private generator lives there
    if 0 < config.top_k < scores.numel():
        kth = torch.topk(scores, config.top_k).values[-1]
        scores = scores.masked_fill(scores < kth, float("-inf"))
    if config.top_p < 1.0:
        ordered, order = torch.sort(scores, descending=True)
        cumulative = torch.softmax(ordered, dim=-1).cumsum(dim=-1)
        # drop tokens once the mass before them already reaches top_p (the first always stays)
        drop = (cumulative - torch.softmax(ordered, dim=-1)) >= config.top_p
        scores = scores.scatter(0, order, ordered.masked_fill(drop, float("-inf")))
    probs = torch.softmax(scores, dim=-1)
    return int(torch.multinomial(probs, 1, generator=generator).item())


def _cut(text: str, stops: tuple[str, ...]) -> tuple[str, bool]:
    """Cut ``text`` before the earliest stop string; say whether one was found."""
    found = [i for i in (text.find(s) for s in stops) if i >= 0]
    if not found:
        return text, False
    return text[: min(found)], True


def _streamable(text: str, config: GenerationConfig) -> str:
    """Hold back a tail that may still become a stop string or is half a UTF-8 character."""
    keep = len(text.rstrip(REPLACEMENT))
    for stop in config.stop_strings:
        for size in range(min(len(stop) - 1, keep), 0, -1):
            if text[:keep].endswith(stop[:size]):
                keep -= size
                break
    return text[:keep]
