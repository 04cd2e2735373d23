"""The task a question asks for, read from its words (`mm_ros.core.intent`)."""

from __future__ import annotations

import pytest

from mm_ros.core.errors import ConfigError
from mm_ros.core.intent import canonical, infer_task, one_edit, resolve_task, words_of
from mm_ros.core.prompt import MINIGPT_TASKS, PromptConfig, Task

EVERY = tuple(t.value for t in Task)


@pytest.mark.parametrize(
    ("question", "task"),
    [
        # what is on my left? (no object: the side list)
        ("what is on my left?", Task.SPATIAL),
        ("What's over to the right?", Task.SPATIAL),
        ("anything straight ahead of me", Task.SPATIAL),
        ("what is right in front of me?", Task.SPATIAL),
        ("what's on my right right now?", Task.SPATIAL),
        ("name the objects on your right now.", Task.SPATIAL),
        ("what is standing on the left?", Task.SPATIAL),
        ("show me what is on my left", Task.SPATIAL),  # a box word but nothing to box
        # where is X? is there X? (an object)
        ("Where's the red cube?", Task.SPATIAL),
        ("is the blue sphere to my left or right?", Task.SPATIAL),
        ("do you see a purple block?", Task.SPATIAL),
        ("where is the red box?", Task.SPATIAL),  # "box" after a colour is a thing
        ("where is the yellow cone from my point of view?", Task.SPATIAL),
        ("where is the green ball located?", Task.SPATIAL),
        ("which way should I turn to face the blue cone?", Task.SPATIAL),
        # box requests in plain words
        ("box the green block please", Task.GROUNDING),
        ("could you draw a box around the yellow cone?", Task.GROUNDING),
        ("find the purple cylinder", Task.GROUNDING),
        ("show me where the orange ball is", Task.GROUNDING),
        ("point out the red one.", Task.GROUNDING),
        ("locate teh red cube", Task.GROUNDING),
        ("bbox the green cone", Task.GROUNDING),
        ("put a rectangle around that blue ball", Task.GROUNDING),
        ("find the red cube on my left", Task.GROUNDING),  # one side: where to look
        ("green cone position: left, middle or right?", Task.SPATIAL),  # sides offered
        ("locate the red ball: left or right of me?", Task.SPATIAL),
        # sounds
        ("what did I just hear?", Task.AUDIO),
        ("what was that noise?", Task.AUDIO),
        ("did you hear something?", Task.AUDIO),
        ("what did i just haer?", Task.AUDIO),  # two letters swapped
        ("what was that noies?", Task.AUDIO),
        ("what did the red cube sound like?", Task.AUDIO),
        ("what did the mic just pick up?", Task.AUDIO),
        # motion
        ("am I moving?", Task.MOTION),
        ("which way am I turning?", Task.MOTION),
        ("are we going forward?", Task.MOTION),
        ("am i standing still?", Task.MOTION),
        ("what am I doing?", Task.MOTION),
        ("am i turnnig left?", Task.MOTION),
        # the rest
        ("what is this {<10><20><30><40>}?", Task.IDENTIFY),
        ("describe the scene", Task.CAPTION),
        ("what do you see?", Task.CAPTION),
        ("what's going on?", Task.VQA),
        ("is the light on?", Task.VQA),  # "light" is not a typo of "right"
        ("what's near me?", Task.VQA),  # "near" is not a typo of "hear"
        ("hello", Task.VQA),
    ],
)
def test_infer_task(question: str, task: Task) -> None:
    assert infer_task(question, EVERY) is task


@pytest.mark.parametrize(
    ("question", "task"),
    [
        ("what did I just hear?", Task.VQA),  # [audio] is not MiniGPT-v2's
        ("what is on my left?", Task.VQA),
        ("box the red ball", Task.GROUNDING),
        ("describe the scene", Task.CAPTION),
    ],
)
def test_a_task_the_model_does_not_know_falls_back_to_vqa(question: str, task: Task) -> None:
    assert infer_task(question, MINIGPT_TASKS) is task
    assert infer_task(question) is task  # MiniGPT-v2's set is the default


def test_resolve_task_given_prefix_or_inferred() -> None:
    choice = resolve_task("find the red cube", "", EVERY)
    assert (choice.task, choice.inferred) == (Task.GROUNDING, True)
    assert choice.text == "find the red cube"
    choice = resolve_task("[vqa] find the red cube", "", EVERY)
    assert (choice.task, choice.text, choice.inferred) == (Task.VQA, "find the red cube", False)
    choice = resolve_task("[vqa] what is on my left?", "spatial", EVERY)
    assert (choice.task, choice.inferred) == (Task.SPATIAL, False)  # the given task wins


def test_a_given_task_the_model_does_not_know_is_an_error_naming_its_tasks() -> None:
    with pytest.raises(ConfigError, match=r"task \[audio\] is not one this model knows: \[vqa\]"):
        resolve_task("[audio] what was that?", "", MINIGPT_TASKS)
    with pytest.raises(ConfigError, match="unknown task 'hearing'"):
        resolve_task("what was that?", "hearing", EVERY)


def test_words_are_normalised() -> None:
    assert words_of("[grounding] What's on my LEFT? I'm lost, aren't you") == [
        *("what", "is", "on", "my", "left", "i", "am", "lost", "are", "not", "you"),
    ]
    assert words_of("the cube\u2019s side") == ["the", "cube", "side"]


@pytest.mark.parametrize(
    ("a", "b", "near"),
    [
        ("right", "rigth", True),
        ("right", "rigt", True),
        ("right", "rightt", True),
        ("right", "rihgt", True),
        ("right", "light", True),
        ("right", "rgiht", True),
        ("right", "ritgh", False),
        ("left", "left", False),
        ("cube", "cubes", True),
    ],
)
def test_one_edit(a: str, b: str, near: bool) -> None:
    assert one_edit(a, b) is near


@pytest.mark.parametrize(
    ("word", "read"),
    [
        ("rigth", "right"),
        ("lfet", "left"),  # four letters: a swap only
        ("lef", "lef"),  # too short to guess
        ("light", "light"),  # an everyday word, never a typo
        ("purpel", "purple"),
        ("cyllinder", "cylinder"),
        ("moovement", "movement"),
        ("zebra", "zebra"),
    ],
)
def test_canonical_corrects_typos_of_cue_words_only(word: str, read: str) -> None:
    assert canonical(word) == read


def test_prompt_config_checks_its_tasks() -> None:
    assert PromptConfig().tasks == MINIGPT_TASKS
    assert PromptConfig(tasks=EVERY).tasks == EVERY
    with pytest.raises(ConfigError, match=r"tasks: expected some of .* found \['hearing'\]"):
        PromptConfig(tasks=("hearing",))
    with pytest.raises(ConfigError, match="tasks: expected"):
        PromptConfig(tasks=())
