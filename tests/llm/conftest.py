"""A random tiny composed model, built once per session, and a tokenizer for hand-built models."""

from __future__ import annotations

from pathlib import Path

import pytest

from mm_ros.llm.backends.base import BackendConfig, LoadedBackend, load_backend
from mm_ros.llm.tiny import build_random_default
from tests.logs import quiet_logs

TORCH_ONLY = ("torch",)  # adapter runtime for tests: no ONNX export needed


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_random_default(tmp_path_factory.mktemp("tiny") / "mm-tiny", seed=0)


def load(folder: Path | str, **overrides: str) -> LoadedBackend:
    from mm_ros.engines.runtimes.base import RuntimeKind
    from mm_ros.engines.selection import EngineConfig

    engine = EngineConfig(preference=(RuntimeKind.TORCH,))
    with quiet_logs():
        return load_backend(
            BackendConfig(model_dir=str(folder) if folder else "", engine=engine, **overrides)
        )


@pytest.fixture(scope="session")
def tiny(tiny_dir: Path) -> LoadedBackend:
    return load(tiny_dir)


def text_backend(
    family: str = "llama",
    *,
    special: tuple[str, ...] = (),
    chat_template: bool = False,
    seed: int = 0,
) -> LoadedBackend:
    """A tiny random LM of ``family`` with the tiny word-level tokenizer and no adapters."""
    import torch
    from transformers import AutoModelForCausalLM

    from mm_ros.llm.tiny import tiny_llm_config, tiny_vocabulary
    from mm_ros.llm.tokens import word_level_tokenizer

    words, tags = tiny_vocabulary()
    tokenizer = word_level_tokenizer(words, (*tags, *special))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(
            tiny_llm_config(len(tokenizer), family, tokenizer)
        ).eval()
    return LoadedBackend(
        model_id=f"test-{family}",
        model=model,
        tokenizer=tokenizer,
        sessions={},
        identities={},
        selections={},
        chat_template=chat_template,
    )
