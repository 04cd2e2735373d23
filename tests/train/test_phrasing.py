"""The paraphrase generator: held-out templates stay out of training; tasks read back right."""

from __future__ import annotations

import collections
import re

import numpy as np
import pytest

from mm_ros.core.intent import infer_task, one_edit
from mm_ros.core.prompt import Task
from mm_ros.train import data, mm_tiny, phrasing, tasks
from mm_ros.train.phrasing import HELD_OUT, TEMPLATES
from mm_ros.train.tasks import Kind

EVERY = tuple(t.value for t in Task)
# the kinds asked without a task: the service must read the kind's task from the words
INFERRED = {
    Kind.SIDE: Task.SPATIAL,
    Kind.LIST: Task.SPATIAL,
    Kind.GROUNDING: Task.GROUNDING,
    Kind.IDENTIFY: Task.IDENTIFY,
    Kind.AUDIO: Task.AUDIO,
    Kind.MOTION: Task.MOTION,
    Kind.ABSENT: Task.SPATIAL,
}
SLOTS = {
    "the": "the red cube",
    "a": "a violet sphere",
    "side": "on my left",
    "sideword": "right",
    "ref": "the blue object",
    "box": "{<10><20><30><40>}",
    "sound1": "beep",
    "sound2": "clap",
}


def test_held_out_templates_and_wrappings_are_never_trained() -> None:
    for kind in Kind:
        assert HELD_OUT[kind], kind
        assert not set(HELD_OUT[kind]) & set(TEMPLATES[kind]), kind
    assert not set(phrasing.PREFIXES_HELD_OUT) & set(phrasing.PREFIXES)
    assert not set(phrasing.SUFFIXES_HELD_OUT) & set(phrasing.SUFFIXES)
    assert not set(phrasing.FRAMES_HELD_OUT) & set(phrasing.FRAMES)


@pytest.mark.parametrize("kind", list(INFERRED))
@pytest.mark.parametrize("held_out", [False, True])
def test_every_template_reads_as_its_kinds_task(kind: Kind, held_out: bool) -> None:
    templates = list((HELD_OUT if held_out else TEMPLATES)[kind])
    frames = phrasing.FRAMES_HELD_OUT if held_out else phrasing.FRAMES
    templates += [f"{f} {c}?" for f in frames for c in phrasing.EMBEDDED.get(kind, ())]
    prefixes = [f"{p}, " for p in (*phrasing.PREFIXES, *phrasing.PREFIXES_HELD_OUT)]
    suffixes = [f" {s}" for s in (*phrasing.SUFFIXES, *phrasing.SUFFIXES_HELD_OUT)]
    wrong = []
    for template in templates:
        text = template.format(**SLOTS)
        body, mark = text[:-1], text[-1]
        questions = [text, *(p + text for p in prefixes), *(body + s + mark for s in suffixes)]
        wrong += [q for q in questions if infer_task(q, EVERY) is not INFERRED[kind]]
    assert not wrong, wrong[:5]


def test_generated_questions_read_back_despite_typos() -> None:
    config = data.DataConfig(seeds=data.train_seeds(6), snapshots_per_episode=20,
                             every_object=True, every_side=True)  # fmt: skip
    asked = [e for e in data.examples_only(config) if not e.typed]
    misread = collections.Counter(
        e.kind for e in asked if infer_task(e.question, EVERY).value != e.task
    )
    assert len(asked) > 500
    # a typo in a four-letter cue word ("fnd the ball") is read as another task
    assert sum(misread.values()) <= 0.02 * len(asked), misread


def test_questions_vary() -> None:
    rng = np.random.default_rng(0)
    slots = {k: v for k, v in SLOTS.items() if k in ("the", "a", "side", "sideword")}
    asked = [phrasing.ask(Kind.SIDE, rng, **slots) for _ in range(400)]
    assert len({a.text for a in asked}) > 250
    assert len({a.template for a in asked}) > 0.8 * len(TEMPLATES[Kind.SIDE])
    texts = " ".join(a.text for a in asked)
    assert "where's" in texts  # contracted
    assert "please" in texts  # politeness
    assert "tell me" in texts  # an embedded question
    assert all(not a.held_out and a.template not in HELD_OUT[Kind.SIDE] for a in asked)


def test_objects_are_named_many_ways_but_box_and_can_only_after_a_colour() -> None:
    rng = np.random.default_rng(1)
    names = [phrasing.object_phrase("red cube", rng) for _ in range(300)]
    names += [phrasing.object_phrase("green cylinder", rng, article="a") for _ in range(300)]
    assert {"the red cube", "the red block", "the red box", "a green tube", "an green can"} - set(
        names
    ) == {"an green can"}
    assert any("that is" in n for n in names)  # reordered
    for name in names:
        assert not re.search(r"\b(box|can) that is\b", name)
    # by shape or colour alone only when no other object in view shares it
    assert phrasing.partial_phrase("red cube", ["red cube", "red ball"], rng) is not None
    assert phrasing.partial_phrase("red cube", ["red cube", "red ball", "blue cube"], rng) is None
    shapes = {phrasing.partial_phrase("red cube", ["red cube", "red ball"], rng) for _ in range(50)}
    assert "the box" not in shapes


def test_typos_are_one_edit_of_a_template_word_never_of_a_slot() -> None:
    rng = np.random.default_rng(2)
    for _ in range(200):
        typo = phrasing._with_typo("where is {the} relative to me?", rng)
        assert "{the}" in typo
        before, after = ["where", "is", "relative", "to", "me?"], typo.replace(" {the}", "").split()
        changed = [(a, b) for a, b in zip(before, after, strict=True) if a != b]
        assert len(changed) == 1
        assert one_edit(*changed[0])


def test_the_vocabulary_holds_every_training_word_and_no_held_out_only_word() -> None:
    prompt = mm_tiny.prompt_config()
    words = set(mm_tiny.vocabulary(prompt))
    rng = np.random.default_rng(3)
    check = collections.Counter()
    for kind in INFERRED:
        for _ in range(200):
            question = phrasing.ask(kind, rng, **SLOTS).text
            for word in re.findall(r"[a-z']+", question):
                check[word in words] += 1
    # every word but the misspelt ones
    assert check[False] <= phrasing.TYPO_SHARE * 1.5 * sum(check.values()) / 8
    assert {"whereabouts", "pinpoint", "recognise"}.isdisjoint(words)  # held-out only
    assert {"sphere", "block", "violet", "what's", "please"} <= words
    tokenizer = mm_tiny.build_tokenizer(prompt)
    ids = tokenizer("whereabouts is the violet sphere?", add_special_tokens=False)["input_ids"]
    assert tokenizer.unk_token_id not in ids  # spelt in pieces, not <unk>
    assert tokenizer.convert_tokens_to_ids("violet") in ids


def test_the_demo_questions_are_training_questions() -> None:
    for question, template, kind in [
        ("what is on my left?", "what is {side}?", Kind.LIST),
        ("what did I just hear?", "what did i just hear?", Kind.AUDIO),
        ("how am I moving?", "how am i moving?", Kind.MOTION),
    ]:
        assert template in TEMPLATES[kind]
        assert infer_task(question, EVERY) is INFERRED[kind]
    assert "where is {the}?" in TEMPLATES[Kind.SIDE]  # "[grounding] where is the red cube?"
    assert tasks.TASK_OF[Kind.LIST] is Task.SPATIAL
