"""Prompt segments: task identifiers, modality blocks in order, bad input."""

from __future__ import annotations

import pytest

from mm_ros.core.errors import ConfigError
from mm_ros.core.prompt import (
    ModalitySegment,
    PromptConfig,
    Task,
    TextSegment,
    build_segments,
    marker_tokens,
    split_task,
)


@pytest.mark.parametrize(
    ("question", "task", "expected"),
    [
        ("what is on my left?", "", (Task.VQA, "what is on my left?")),
        ("[grounding] where is the red cube?", "", (Task.GROUNDING, "where is the red cube?")),
        ("  [refer]the ball", "", (Task.REFER, "the ball")),
        ("[vqa] where is it?", "grounding", (Task.GROUNDING, "where is it?")),
        ("describe", "[caption]", (Task.CAPTION, "describe")),
    ],
)
def test_split_task(question: str, task: str, expected: tuple[Task, str]) -> None:
    assert split_task(question, task) == expected


def test_unknown_task_names_the_known_ones() -> None:
    with pytest.raises(ConfigError, match=r"unknown task 'locate'; known: \[vqa\]"):
        split_task("[locate] the cube")


def test_segments_in_order_with_markers() -> None:
    task, segments = build_segments(
        "[grounding] where is the red cube?", ["imu", "image"], PromptConfig(system_text="SYS")
    )
    assert task is Task.GROUNDING
    assert segments == [
        TextSegment("SYS\n"),
        TextSegment("[INST] "),
        ModalitySegment("image", "<Img>", "</Img>"),
        ModalitySegment("imu", "<IMU>", "</IMU>"),
        TextSegment(" [grounding] where is the red cube? [/INST]"),
    ]


def test_no_system_text_and_text_only_question() -> None:
    _, segments = build_segments("hello", [], PromptConfig(system_text=""))
    assert segments == [TextSegment("[INST] "), TextSegment(" [vqa] hello [/INST]")]


@pytest.mark.parametrize(
    ("question", "modalities", "match"),
    [
        ("[grounding]   ", ["image"], "empty question"),
        ("what?", ["lidar"], r"no marker tokens for modalities \['lidar'\]"),
    ],
)
def test_bad_input(question: str, modalities: list[str], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        build_segments(question, modalities, PromptConfig())


def test_config_and_markers() -> None:
    with pytest.raises(ConfigError, match="unknown modalities"):
        PromptConfig(modality_order=("image", "radar"))
    assert marker_tokens() == [
        "<Img>",
        "</Img>",
        "<Video>",
        "</Video>",
        "<Audio>",
        "</Audio>",
        "<IMU>",
        "</IMU>",
    ]
