"""A question becomes prompt segments: system text, task identifier, modality blocks, question.

The language-model layer turns text segments into token embeddings and splices the adapter
tokens in place of each modality block; this module knows nothing about tokenizers (as
nanochat's engine knows nothing about tokenization). Task identifiers follow MiniGPT-v2:
``[vqa] [caption] [grounding] [refer] [detection] [identify]``; mm_ros adds ``[spatial]``
``[audio]`` ``[motion]`` for models trained with them (``PromptConfig.tasks`` says which a model
knows). A question without a task gets one inferred from its words (`mm_ros.core.intent`).
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from mm_ros.core.errors import ConfigError


class Task(enum.Enum):
    """What the model is asked to do (the identifier MiniGPT-v2 puts before the question)."""

    VQA = "vqa"
    CAPTION = "caption"
    GROUNDING = "grounding"
    REFER = "refer"
    DETECTION = "detection"
    IDENTIFY = "identify"
    # mm_ros's own, for questions whose kind the words give away (`mm_ros.core.intent`)
    SPATIAL = "spatial"  # where is X? what is on my left?
    AUDIO = "audio"  # what did I just hear?
    MOTION = "motion"  # how am I moving?

    @property
    def identifier(self) -> str:
        """The token the prompt carries, e.g. ``[grounding]``."""
        return f"[{self.value}]"


# The identifiers MiniGPT-v2 was trained with: what a model knows unless its prompt says more.
MINIGPT_TASKS = ("vqa", "caption", "grounding", "refer", "detection", "identify")
MODALITY_MARKERS = {  # open / close marker tokens added to the tokenizer
    "image": ("<Img>", "</Img>"),
    "video": ("<Video>", "</Video>"),
    "audio": ("<Audio>", "</Audio>"),
    "imu": ("<IMU>", "</IMU>"),
}
_TASK_PREFIX = re.compile(r"^\s*\[(?P<task>[a-z]+)\]\s*")


def split_task(question: str, task: str = "") -> tuple[Task, str]:
    """Return the task (given, or the question's ``[task]`` prefix, else VQA) and the question.

    An explicit ``task`` wins over a prefix; an unknown one is an error naming the known ones.
    """
    text = question
    prefix = _TASK_PREFIX.match(question)
    named = task
    if prefix:
        text = question[prefix.end() :]
        named = task or prefix.group("task")
    if not named:
        return Task.VQA, text.strip()
    try:
        return Task(named.strip().strip("[]").lower()), text.strip()
    except ValueError as err:
        known = " ".join(t.identifier for t in Task)
        raise ConfigError(f"unknown task {named!r}; known: {known}") from err


@dataclass(frozen=True)
class TextSegment:
    """Plain text: through the tokenizer and the input-embedding table."""

    text: str


@dataclass(frozen=True)
class ModalitySegment:
    """A place for adapter tokens, wrapped in the modality's marker tokens."""

    modality: str  # image | video | audio | imu
    open_marker: str
    close_marker: str


Segment = TextSegment | ModalitySegment


@dataclass(frozen=True)
class PromptConfig:
    """How prompts look for one backend; defaults follow MiniGPT-v2's instruction format."""

    system_text: str = (
        "You are the perception of a robot. Answer briefly about what its camera sees, what "
        "it hears and how it moves. Directions are from the robot's point of view."
    )
    user_open: str = "[INST]"  # used only when the tokenizer has no chat template
    user_close: str = "[/INST]"
    modality_order: tuple[str, ...] = ("image", "video", "audio", "imu")
    # Task identifiers the model was trained with; a task is inferred only among these, and a
    # question asking for another is refused (its identifier would be an unknown token).
    tasks: tuple[str, ...] = MINIGPT_TASKS

    def __post_init__(self) -> None:
        unknown = set(self.modality_order) - set(MODALITY_MARKERS)
        if unknown:
            raise ConfigError(
                f"modality_order has unknown modalities {sorted(unknown)}; known: "
                f"{sorted(MODALITY_MARKERS)}"
            )
        known = {t.value for t in Task}
        if not self.tasks or set(self.tasks) - known:
            raise ConfigError(f"tasks: expected some of {sorted(known)}, found {list(self.tasks)}")


def build_segments(
    question: str, modalities: list[str], config: PromptConfig, task: str = ""
) -> tuple[Task, list[Segment]]:
    """Return the task and ``[system] [INST] <modality blocks> [task] question [/INST]``.

    ``modalities`` are those the service has data for; they appear in ``config.modality_order``.
    """
    unknown = [m for m in modalities if m not in MODALITY_MARKERS]
    if unknown:
        raise ConfigError(
            f"no marker tokens for modalities {unknown}; known: {sorted(MODALITY_MARKERS)}"
        )
    chosen, text = split_task(question, task)
    if not text:
        raise ConfigError("empty question: expected some text after the task identifier")
    segments: list[Segment] = []
    if config.system_text:
        segments.append(TextSegment(config.system_text + "\n"))
    segments.append(TextSegment(config.user_open + " "))
    for modality in config.modality_order:
        if modality in modalities:
            segments.append(ModalitySegment(modality, *MODALITY_MARKERS[modality]))
    segments.append(TextSegment(f" {chosen.identifier} {text} {config.user_close}"))
    return chosen, segments


def marker_tokens() -> list[str]:
    """Every marker token a tokenizer must know (added as special tokens)."""
    return [marker for pair in MODALITY_MARKERS.values() for marker in pair]
