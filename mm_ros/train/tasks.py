"""Question kinds about the synthetic world: answers and the truth that scores them.

How each kind is asked is `mm_ros.train.phrasing` (templates for training, held-out ones for
the evaluation). Answers are short and regular, so a tiny model can learn them; boxes are
MiniGPT-v2's ``<p>phrase</p> {<x1><y1><x2><y2>}``, integers 0-100 of the source image
(REFERENCE.md section 4).
"""

from __future__ import annotations

import enum
import re
from typing import TYPE_CHECKING

from mm_ros.core.prompt import Task
from mm_ros.sim.motion import Motion
from mm_ros.sim.scene import Colour, Shape
from mm_ros.sim.sound import Sound

if TYPE_CHECKING:
    from collections.abc import Sequence

Box = tuple[float, float, float, float]  # x1, y1, x2, y2 source pixels


class Kind(str, enum.Enum):
    """What a question asks; each kind is scored its own way."""

    SIDE = "spatial"  # where is the X? → left / centre / right
    LIST = "spatial-list"  # what is on my left? → the objects there
    GROUNDING = "grounding"  # [grounding] where is the X? / find the X → <p>X</p> {box}
    REFER = "refer"  # [refer] the blue object → <p>blue cone</p> {box}
    IDENTIFY = "identify"  # [identify] what is this {box}? → the X
    AUDIO = "audio"  # what did I just hear?
    MOTION = "motion"  # how am I moving?
    CAPTION = "caption"  # stage 1 alignment: everything at once
    ABSENT = "absent"  # where is / find an object that is not in view → i do not see it


# The task identifier each kind is trained with (absent questions: spatial or grounding, as
# asked). Questions of the spatial, audio and motion kinds carry identifiers of their own, so a
# question's kind reaches the model even when its words are new; `mm_ros.core.intent` infers
# them from the words when the asker gives none.
TASK_OF = {
    Kind.SIDE: Task.SPATIAL,
    Kind.LIST: Task.SPATIAL,
    Kind.GROUNDING: Task.GROUNDING,
    Kind.REFER: Task.REFER,
    Kind.IDENTIFY: Task.IDENTIFY,
    Kind.AUDIO: Task.AUDIO,
    Kind.MOTION: Task.MOTION,
    Kind.CAPTION: Task.CAPTION,
    Kind.ABSENT: Task.SPATIAL,
}
SIDE_TEXT = {"left": "on your left", "centre": "in the centre", "right": "on your right"}
MOTION_TEXT = {
    Motion.STILL: "you are standing still.",
    Motion.FORWARD: "you are walking forward.",
    Motion.TURN_LEFT: "you are turning left.",
    Motion.TURN_RIGHT: "you are turning right.",
}
SOUND_TEXT = {
    Sound.BEEP: "i heard a beep.",
    Sound.CLAP: "i heard a clap.",
    Sound.BUZZ: "i heard a buzz.",
    Sound.BABBLE: "i heard speech-like babble.",
    Sound.SILENCE: "i heard only silence.",
}
SOUND_WORDS = {  # one word per sound that appears in no other sound's answer
    Sound.BEEP: "beep",
    Sound.CLAP: "clap",
    Sound.BUZZ: "buzz",
    Sound.BABBLE: "babble",
    Sound.SILENCE: "silence",
}
MOTION_WORDS = {
    Motion.STILL: "still",
    Motion.FORWARD: "forward",
    Motion.TURN_LEFT: "turning left",
    Motion.TURN_RIGHT: "turning right",
}
OBJECT_NAMES = tuple(f"{c.label} {s.value}" for s in Shape for c in Colour)
BOX_TAGS = ("<p>", "</p>", "<delim>")
PERCENT_TOKENS = tuple(f"<{i}>" for i in range(101))


def percent_box(box_px: Box, width: int, height: int) -> tuple[int, int, int, int]:
    """Source-pixel box → integers 0-100 of the image (MiniGPT-v2's scale)."""
    x1, y1, x2, y2 = box_px
    values = (x1 / width, y1 / height, x2 / width, y2 / height)
    a, b, c, d = (min(100, max(0, round(100 * v))) for v in values)
    return a, b, c, d


def box_markup(percent: Sequence[int]) -> str:
    """``{<x1><y1><x2><y2>}``."""
    return "{" + "".join(f"<{v}>" for v in percent) + "}"


def grounded(name: str, percent: Sequence[int]) -> str:
    """``<p>red cube</p> {<x1><y1><x2><y2>}``."""
    return f"<p>{name}</p> {box_markup(percent)}"


def listing(names: Sequence[str]) -> str:
    """Return 'the a, the b and the c.' or 'nothing.'."""
    if not names:
        return "nothing."
    items = [f"the {n}" for n in names]
    if len(items) == 1:
        return items[0] + "."
    return ", ".join(items[:-1]) + " and " + items[-1] + "."


def side_answer(name: str, side: str | None) -> str:
    """Answer to 'where is the X?' (side None: not in view)."""
    if side is None:
        return f"i do not see the {name}."
    return f"the {name} is {SIDE_TEXT[side]}."


def identify_answer(name: str) -> str:
    """Answer to '[identify] what is this {box}?'."""
    return f"the {name}."


# -- scoring -------------------------------------------------------------------------------
_WORD = re.compile(r"[a-z]+")


def side_of_text(text: str) -> str | None:
    """Return the side an answer names (left / centre / right), None if none or several."""
    words = set(_WORD.findall(text.lower()))
    found = [s for s in ("left", "centre", "right") if s in words]
    if "center" in words and "centre" not in found:
        found.append("centre")
    return found[0] if len(found) == 1 else None


def names_in_text(text: str) -> list[str]:
    """Object names ('red cube') an answer mentions, in the order written."""
    lowered = text.lower()
    hits = [(lowered.find(n), n) for n in OBJECT_NAMES if n in lowered]
    return [n for _, n in sorted(hits)]


def sound_of_text(text: str) -> str | None:
    """Return the sound an answer names (a Sound value), None if none or several."""
    words = set(_WORD.findall(text.lower()))
    found = [s.value for s, w in SOUND_WORDS.items() if w in words]
    return found[0] if len(found) == 1 else None


def motion_of_text(text: str) -> str | None:
    """Return the motion an answer names (a Motion value), None if none or several."""
    lowered = text.lower()
    found = [m.value for m, w in MOTION_WORDS.items() if w in lowered]
    return found[0] if len(found) == 1 else None


def intersection(a: Sequence[float], b: Sequence[float]) -> float:
    """Area shared by two (x1, y1, x2, y2) boxes."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    return ix * iy


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two (x1, y1, x2, y2) boxes."""
    inter = intersection(a, b)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0
