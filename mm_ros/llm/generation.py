"""Our own decode loop over ``inputs_embeds``: streaming, cancel/deadline, KV-prefix reuse.

Not ``model.generate``: the service needs to stop between any two tokens (cancel, deadline),
to stream text after each one, and to prefill only the question when the prefix (system text +
modality blocks) is already in the :class:`~mm_ros.llm.prefix_cache.PrefixCache`. The loop is
the textbook one: prefill the prompt with ``use_cache``, then feed one token at a time with
``past_key_values`` and explicit positions.
"""

from __future__ import annotations

import inspect
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from mm_ros.core.errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Callable, Hashable

    from mm_ros.llm.assembly import Assembled
    from mm_ros.llm.backends.base import LoadedBackend
    from mm_ros.llm.prefix_cache import PrefixCache

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
    first_token_s: float  # call start → first new token chosen (0.0 if none)
    generate_s: float  # call start → return
    prefix_cache_hit: bool


class Generator:
    """Generate text from an :class:`~mm_ros.llm.assembly.Assembled` prompt for one backend."""

    def __init__(self, backend: LoadedBackend, cache: PrefixCache | None = None) -> None:
        self.backend = backend
        self.cache = cache
        forward = inspect.signature(backend.model.forward).parameters
        self._keeps_logits = "logits_to_keep" in forward  # compute logits of the last row only
        self.eos_ids = _eos_ids(backend)

    def generate(
        self,
        assembled: Assembled,
        config: GenerationConfig,
        *,
        prefix_key: Hashable | None = None,
        on_text: Callable[[str, int], None] | None = None,
        should_stop: Callable[[], str | None] | None = None,
    ) -> Generated:
        """Decode up to ``config.max_new_tokens`` tokens after the prompt.

        ``prefix_key`` (e.g. the snapshot id) opts into the prefix cache; ``on_text(text, n)``
        gets the text so far after each token; ``should_stop()`` is asked before each forward
        pass and ends generation with the reason it returns ("cancelled" or "deadline").
        """
        start = time.perf_counter()
        tokens: list[int] = []
        text = ""
        reason = "max_new_tokens"
        prefill_s = first_token_s = 0.0
        hit = False
        generator = torch.Generator().manual_seed(config.seed)
        with torch.inference_mode():
            interrupt = _ask(should_stop)
            if interrupt is None:
                logits, past, hit = self._prefill(assembled, prefix_key)
                prefill_s = time.perf_counter() - start
                position = assembled.length
                while True:
                    token = _pick(logits, config, generator)
                    if not tokens:
                        first_token_s = time.perf_counter() - start
                    if token in self.eos_ids:
                        reason = "eos"
                        break
                    tokens.append(token)
                    text, stopped = _cut(self._decode(tokens), config.stop_strings)
                    if on_text is not None:
                        on_text(text if stopped else _streamable(text, config), len(tokens))
                    if stopped:
                        reason = "stop_string"
                        break
                    if len(tokens) >= config.max_new_tokens:
                        break
                    interrupt = _ask(should_stop)
                    if interrupt is not None:
                        break
                    step = self.backend.embed_text(torch.tensor([[token]]))
                    logits, past = self._forward(step, past, position)
                    position += 1
            if interrupt is not None:
                reason = interrupt
        return Generated(
            text=text,
            token_ids=tuple(tokens),
            stop_reason=reason,
            prompt_tokens=assembled.length,
            prefill_s=prefill_s,
            first_token_s=first_token_s,
            generate_s=time.perf_counter() - start,
            prefix_cache_hit=hit,
        )

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
