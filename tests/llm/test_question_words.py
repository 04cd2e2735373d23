"""The service reads the task from a question's words and says which words the model lacks."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import pytest

from mm_ros.core.prompt import PromptConfig, Task
from mm_ros.llm.generation import GenerationConfig
from mm_ros.llm.service import AnswerEngine, Query, ServiceSettings

from .conftest import text_backend

if TYPE_CHECKING:
    from mm_ros.llm.backends.base import LoadedBackend

SETTINGS = ServiceSettings(GenerationConfig(max_new_tokens=2))


@pytest.fixture(scope="module")
def minigpt() -> LoadedBackend:
    return text_backend()  # PromptConfig's default tasks: MiniGPT-v2's six


@pytest.fixture(scope="module")
def every_task(minigpt: LoadedBackend) -> LoadedBackend:
    prompt = PromptConfig(tasks=tuple(t.value for t in Task))
    return dataclasses.replace(minigpt, prompt=prompt)


@pytest.mark.parametrize(
    ("question", "given", "task"),
    [
        ("what did i just hear?", "", "audio"),
        ("am i turning?", "", "motion"),
        ("what is on my left?", "", "spatial"),
        ("box the red cube", "", "grounding"),
        ("[vqa] what did i just hear?", "", "vqa"),  # a [task] prefix wins
        ("what did i just hear?", "caption", "caption"),  # and Ask.task over both
        ("[vqa] what did i just hear?", "motion", "motion"),
    ],
)
def test_the_answer_says_which_task_was_used(
    every_task: LoadedBackend, question: str, given: str, task: str
) -> None:
    answer = AnswerEngine(every_task, SETTINGS).answer(Query(question, task=given))
    assert answer.error == ""
    assert answer.task == task


def test_a_model_without_the_new_tasks_gets_vqa_or_its_own(minigpt: LoadedBackend) -> None:
    engine = AnswerEngine(minigpt, SETTINGS)
    assert engine.answer(Query("what did i just hear?")).task == "vqa"
    assert engine.answer(Query("box the red cube")).task == "grounding"
    refused = engine.answer(Query("what did i just hear?", task="audio"))
    assert refused.task == "audio"
    assert "task [audio] is not one this model knows" in refused.error


def test_unknown_words_are_named_in_the_answer(minigpt: LoadedBackend) -> None:
    engine = AnswerEngine(minigpt, SETTINGS)
    answer = engine.answer(Query("[vqa] what is the zorblax doing on my Left, Zorblax?"))
    assert answer.error == ""
    assert answer.unknown_words == ("zorblax", "doing")
    assert engine.answer(Query("what is on my left?")).unknown_words == ()
