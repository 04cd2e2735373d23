"""A random tiny composed model: the embedded default until a trained mm-tiny is shipped.

Every code path (assembly, generation, KV cache, box parsing, the nodes) runs on it without a
download; its answers mean nothing and its model id says so (``random_init``).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import torch

from mm_ros.adapters.build import build_adapter
from mm_ros.adapters.spec import Modality
from mm_ros.adapters.tiny import TINY_LLM, TINY_LLM_WIDTH, tiny_spec
from mm_ros.core.boxes import BoxFormat
from mm_ros.core.errors import ConfigError
from mm_ros.core.preprocessing import ResizeMode
from mm_ros.core.prompt import Task
from mm_ros.llm.backends.composed import save_composed
from mm_ros.llm.tokens import word_level_tokenizer

if TYPE_CHECKING:
    from pathlib import Path

    from torch import nn

    from mm_ros.adapters.spec import AdapterSpec

TINY_LAYERS = 2
TINY_HEADS = 2  # head dim 16
TINY_FFN = 64
TINY_CONTEXT = 512  # positions: system text + 3 modality blocks + question + answer
BOX_BINS = 101  # MiniGPT-v2 writes <0> ... <100>
WORD_TEXT = (
    "you are the perception of a robot answer briefly about what its camera sees it hears and "
    "how moves directions from point view robot's is on my left right centre center in front "
    "behind where which colour color shape red green blue yellow white black orange purple "
    "cup ball box cube sphere cylinder cone star table wall floor door person there no yes "
    "one two three four five many near far up down moving still turning walking standing "
    "sound beep clap speech silence music knock ring alarm heard hear see i it this that "
    "object objects image picture scene describe detail with to at by for an small large big "
    "do does did am are was were be can have has any degrees ahead nothing something unknown "
    ". , ? ! : ; ' - { } ( )"
)
WORDS = tuple(WORD_TEXT.split())
# The prompt's [INST] [/INST] are special tokens: matched whole, before lower-casing.
TAGS = ("[INST]", "[/INST]", "<p>", "</p>", "<delim>", *(f"<{i}>" for i in range(BOX_BINS)))


def tiny_vocabulary() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Return (words, special tokens) of the random default's tokenizer."""
    tasks = tuple(t.identifier for t in Task)
    return WORDS, (*TAGS, *tasks)


def build_random_default(folder: Path, seed: int = 0) -> Path:
    """Build a random tiny Llama + image/audio/IMU adapters as a composed folder; return it."""
    from transformers import LlamaForCausalLM

    words, special = tiny_vocabulary()
    tokenizer = word_level_tokenizer(words, special)
    config = tiny_llm_config(len(tokenizer), "llama", tokenizer)
    # A private RNG stream: building the default must not move the caller's global seed.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model: Any = LlamaForCausalLM(config)
        model.eval()
        adapters: dict[str, tuple[nn.Module, AdapterSpec]] = {}
        for offset, modality in enumerate((Modality.IMAGE, Modality.AUDIO, Modality.IMU)):
            spec = tiny_spec(modality, name=f"{TINY_LLM}-{modality.value}")
            if spec.image is not None:
                # Squash keeps the whole frame in view (the synthetic world's frames are 4:3).
                spec = dataclasses.replace(
                    spec, image=dataclasses.replace(spec.image, resize_mode=ResizeMode.SQUASH)
                )
            adapters[modality.value] = (build_adapter(spec, seed=seed + 1 + offset), spec)
    return save_composed(
        folder,
        name=TINY_LLM,
        model=model,
        tokenizer=tokenizer,
        adapters=adapters,
        box_format=BoxFormat.MINIGPT_V2,
        random_init=True,
    )


def tiny_llm_config(vocab_size: int, family: str = "llama", tokenizer: Any = None) -> Any:
    """Return a tiny HF config of ``family`` (llama | qwen2); special ids from ``tokenizer``."""
    from transformers import LlamaConfig, Qwen2Config

    kwargs: dict[str, Any] = {
        "vocab_size": vocab_size,
        "hidden_size": TINY_LLM_WIDTH,
        "intermediate_size": TINY_FFN,
        "num_hidden_layers": TINY_LAYERS,
        "num_attention_heads": TINY_HEADS,
        "num_key_value_heads": TINY_HEADS,
        "max_position_embeddings": TINY_CONTEXT,
    }
    if tokenizer is not None:
        kwargs["bos_token_id"] = tokenizer.bos_token_id
        kwargs["eos_token_id"] = tokenizer.eos_token_id
        kwargs["pad_token_id"] = tokenizer.pad_token_id
    if family == "llama":
        return LlamaConfig(**kwargs)
    if family == "qwen2":
        return Qwen2Config(**kwargs)
    raise ConfigError(f"family: expected llama or qwen2, found {family!r}")
