"""AnswerEngine with the KV-prefix cache switched off (prefix_cache_entries=0)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mm_ros.llm.generation import GenerationConfig
from mm_ros.llm.service import AnswerEngine, Query, ServiceSettings

if TYPE_CHECKING:
    from mm_ros.llm.backends.base import LoadedBackend


def test_zero_prefix_entries_means_no_prefix_cache(tiny: LoadedBackend) -> None:
    settings = ServiceSettings(GenerationConfig(max_new_tokens=2), prefix_cache_entries=0)
    engine = AnswerEngine(tiny, settings)
    assert engine.generator.cache is None
    first = engine.answer(Query("[vqa] what is here?"))
    second = engine.answer(Query("[vqa] what is here?"))
    assert first.error == ""
    assert second.error == ""
    assert first.raw_text == second.raw_text  # greedy, nothing cached in between
