"""Which task a question asks for, read from its words when no ``[task]`` is given.

A person asks "box the red ball", "what was that noise?" or "am I turning?" without knowing
MiniGPT-v2's task identifiers. `infer_task` picks the identifier from cue words, in this order:

1. box markup in the question (``{<x1><y1><x2><y2>}``) → ``identify``;
2. a box word (box, find, locate, point, show, mark, ...) and an object → ``grounding``,
   unless the question offers sides to choose from ("its position: left, centre or right?");
3. a hearing word (hear, sound, noise, beep, ...) → ``audio``;
4. a motion word (moving, walking, turning, ...) and no object → ``motion``;
5. an object (a colour or a shape word) → ``spatial`` ("where is X?", "is there X?");
6. a side word (left, right, front, middle, ...) → ``spatial`` ("what is on my left?");
7. a weak motion word (still, doing, forward) → ``motion``;
8. a describing word (describe, scene, "what do you see?") → ``caption``;
9. else ``vqa``.

Words are matched after contractions are expanded, with one typo allowed in cue words of five
letters or more (two letters swapped in four-letter ones), and never on an everyday word that
happens to be one edit away ("light" is not "right", "near" is not "hear"). A task the model does
not know (``known``) falls back to ``vqa``. Pure and stdlib-only: the service, the evaluation and
the training data all use this one function.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mm_ros.core.errors import ConfigError
from mm_ros.core.prompt import MINIGPT_TASKS, Task, split_task

if TYPE_CHECKING:
    from collections.abc import Collection, Sequence

_BOX_MARKUP = re.compile(r"\{\s*(<\d+>\s*){4}\}|(<\d+>\s*){4}")
_TASK_PREFIX = re.compile(r"^\s*\[[a-z]+\]")
_WORD = re.compile(r"[a-z]+(?:'[a-z]+)?")

CONTRACTIONS = {
    "what's": "what is",
    "where's": "where is",
    "who's": "who is",
    "how's": "how is",
    "that's": "that is",
    "there's": "there is",
    "here's": "here is",
    "it's": "it is",
    "i'm": "i am",
    "you're": "you are",
    "we're": "we are",
    "they're": "they are",
    "isn't": "is not",
    "aren't": "are not",
    "wasn't": "was not",
    "don't": "do not",
    "doesn't": "does not",
    "didn't": "did not",
    "can't": "can not",
    "couldn't": "could not",
    "won't": "will not",
    "i've": "i have",
    "you've": "you have",
    "we've": "we have",
    "i'd": "i would",
    "you'd": "you would",
    "i'll": "i will",
    "let's": "let us",
}
# Phrases whose words are not cues ("right now" is no side, "going on" no motion); a "right"
# after a word that takes a side ("on my right now") stays a side.
IDIOMS = (
    ("point", "of", "view"),
    ("right", "now"),
    ("right", "away"),
    ("right", "here"),
    ("right", "there"),
    ("right", "then"),
    ("all", "right"),
    ("going", "on"),
)


def _set(text: str) -> frozenset[str]:
    return frozenset(text.split())


COLOURS = _set(
    "red green blue yellow purple orange violet pink white black grey gray brown cyan magenta "
    "gold golden silver crimson scarlet navy turquoise teal lilac maroon beige"
)
# Shape and object nouns. "box" and "can" are objects only after a colour ("the red box");
# otherwise "box" asks for a box and "can" is the verb.
SHAPES = _set(
    "cube cubes block blocks ball balls sphere spheres orb globe cone cones pyramid cylinder "
    "cylinders tube tubes pillar column drum barrel cup mug bottle chair table door person "
    "people box boxes can cans toy"
)
AFTER_COLOUR_ONLY = frozenset({"box", "boxes", "can", "cans"})
GROUNDING_CUES = _set(
    "box boxes boxed bounding find locate point pointing show mark highlight outline circle "
    "draw detect pinpoint spot indicate coordinates location position bbox bboxes rectangle"
)
AUDIO_CUES = _set(
    "hear heard hearing hears listen listened listening sound sounds sounded noise noises noisy "
    "audio audible beep beeps beeping clap claps clapping clapped buzz buzzing buzzer babble "
    "babbling speech speaking talking voice voices loud quiet silence silent ringing bang "
    "ears music tone chirp whistle microphone mic"
)
MOTION_CUES = _set(
    "moving move moves moved movement movements motion walking walk walks walked turning turn "
    "turns turned rotating rotate rotation spinning spin stationary stopped "
    "stop going heading travelling traveling driving drive running run steering veering "
    "pivoting motionless halted paused accelerating strolling pacing idle"
)
# weak: "what is standing on my left?" asks about objects, "am I standing still?" about motion
WEAK_MOTION_CUES = _set("still doing forward forwards backward backwards standing stand")
SIDE_WORDS = _set(
    "left right centre center middle front ahead straight side sides direction behind "
    "leftward rightward"
)
CAPTION_CUES = _set(
    "describe description caption scene summary summarise summarize overview surroundings "
    "around everything"
)
SEEING = frozenset({"see", "seeing", "sees", "view"})
# Everyday words one edit from a cue word: never read as that cue.
NOT_TYPOS = _set(
    "light might night sight fight tight bright eight wright lift loft near bear dear fear "
    "gear tear wear year pear rear clear here hair heart heat round found mound bound wound "
    "pound font lotion notion potion option burning tuning leading reading heating healing "
    "mowing loving roving black clock flock fellow mellow there where were greet greed stall "
    "spill skill blur glue clue cute cure code bone done gone none tall wall call fall bell "
    "sell tell well hall mall pall herd word lord cloud proud shot shut short sort fort port "
    "sport located"
)
CUE_GROUPS = (
    GROUNDING_CUES,
    AUDIO_CUES,
    MOTION_CUES,
    WEAK_MOTION_CUES,
    SIDE_WORDS,
    CAPTION_CUES,
    COLOURS,
    SHAPES,
)
ALL_CUES = frozenset().union(*CUE_GROUPS)
FUZZY_MIN = 5  # cue words this long match with one typo; four-letter ones only a swap


def words_of(question: str) -> list[str]:
    """Lower-case words of ``question``, contractions expanded, a ``[task]`` prefix dropped."""
    text = _TASK_PREFIX.sub(" ", question.lower().replace("\u2019", "'"))
    out: list[str] = []
    for word in _WORD.findall(text):
        out.extend(CONTRACTIONS.get(word, word.removesuffix("'s")).split())
    return out


def _swapped(a: str, b: str) -> bool:
    """Return True when ``b`` is ``a`` with two neighbouring letters swapped."""
    if len(a) != len(b):
        return False
    diff = [i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y]
    if len(diff) != 2 or diff[1] != diff[0] + 1:  # noqa: PLR2004 - one pair of letters
        return False
    i, j = diff
    return a[i] == b[j] and a[j] == b[i]


def one_edit(a: str, b: str) -> bool:
    """Return True when ``b`` is ``a`` with one letter changed, added, dropped, or two swapped."""
    if a == b or abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        return sum(x != y for x, y in zip(a, b, strict=True)) == 1 or _swapped(a, b)
    short, long = (a, b) if len(a) < len(b) else (b, a)
    return any(long[:i] + long[i + 1 :] == short for i in range(len(long)))


@functools.lru_cache(maxsize=4096)
def canonical(word: str) -> str:
    """Return the cue word ``word`` is, allowing one typo; ``word`` itself when none is near.

    A word of the lexicon or an everyday word (`NOT_TYPOS`) is itself. Otherwise a cue word of
    five letters or more one edit away, or a four-letter one with two letters swapped, is taken
    when exactly one is that near, or when all that are near are cues of one kind.
    """
    if word in ALL_CUES or word in NOT_TYPOS or len(word) < 4:  # noqa: PLR2004
        return word
    near = {
        cue
        for cue in ALL_CUES
        if (len(cue) >= FUZZY_MIN and one_edit(cue, word))
        or (len(cue) == 4 and _swapped(cue, word))  # noqa: PLR2004 - four letters
    }
    if near and any(near <= group for group in CUE_GROUPS):  # "noies": noise and noises
        return min(near)
    return word


@dataclass(frozen=True)
class Cues:
    """What the words of a question point at (`cues_of`)."""

    words: tuple[str, ...]  # normalised, typos of cue words corrected, idioms blanked ("")
    box_markup: bool
    object: bool  # a colour or a shape word: the question names a thing
    grounding: bool
    audio: bool
    motion: bool
    weak_motion: bool
    side: bool
    side_choice: bool  # two sides offered: "left or right?"
    caption: bool


def _objects(words: Sequence[str]) -> bool:
    for i, word in enumerate(words):
        if word in AFTER_COLOUR_ONLY:
            if i and words[i - 1] in COLOURS:
                return True
        elif word in COLOURS or word in SHAPES:
            return True
    return False


SIDE_TAKERS = frozenset({"my", "your", "the", "to", "at", "on", "far", "our", "its"})


def _without_idioms(words: Sequence[str]) -> tuple[str, ...]:
    kept = list(words)
    for phrase in IDIOMS:
        n = len(phrase)
        for i in range(len(kept) - n + 1):
            if tuple(kept[i : i + n]) != phrase:
                continue
            if phrase[0] == "right" and i and kept[i - 1] in SIDE_TAKERS:
                kept[i + 1 : i + n] = [""] * (n - 1)  # "on my right now": the side stays
            else:
                kept[i : i + n] = [""] * n
    return tuple(kept)


def _sides(words: Sequence[str]) -> bool:
    return any(w in SIDE_WORDS for w in words)


# Sides a question can offer as the answer ("left, centre or right?"): two of them make it a
# question about the side, whatever else it says ("position", "find").
CHOSEN_SIDES = {"left": "left", "right": "right", "centre": "centre", "center": "centre",
                "middle": "centre", "ahead": "centre", "front": "centre"}  # fmt: skip


def _side_choice(words: Sequence[str]) -> bool:
    return len({CHOSEN_SIDES[w] for w in words if w in CHOSEN_SIDES}) >= 2  # noqa: PLR2004


def cues_of(question: str) -> Cues:
    """Read the cue words of ``question``."""
    words = _without_idioms([canonical(w) for w in words_of(question)])
    grounding_words = [
        w
        for i, w in enumerate(words)
        if w in GROUNDING_CUES and not (w in AFTER_COLOUR_ONLY and i and words[i - 1] in COLOURS)
    ]
    seeing_only = bool(set(words) & SEEING) and not _sides(words) and not _objects(words)
    return Cues(
        words=words,
        box_markup=bool(_BOX_MARKUP.search(question)),
        object=_objects(words),
        grounding=bool(grounding_words),
        audio=any(w in AUDIO_CUES for w in words),
        motion=any(w in MOTION_CUES for w in words),
        weak_motion=any(w in WEAK_MOTION_CUES for w in words),
        side=_sides(words),
        side_choice=_side_choice(words),
        caption=any(w in CAPTION_CUES for w in words) or seeing_only,
    )


def infer_task(question: str, known: Collection[str] = MINIGPT_TASKS) -> Task:
    """Return the task ``question`` asks for (module docstring), among the ``known`` ones."""
    cues = cues_of(question)
    if cues.box_markup:
        found = Task.IDENTIFY
    elif cues.grounding and cues.object and not cues.side_choice:
        found = Task.GROUNDING
    elif cues.audio:
        found = Task.AUDIO
    elif cues.motion and not cues.object:
        found = Task.MOTION
    elif cues.object or cues.side:
        found = Task.SPATIAL
    elif cues.weak_motion:
        found = Task.MOTION
    elif cues.caption:
        found = Task.CAPTION
    else:
        found = Task.VQA
    return found if found.value in known else Task.VQA


@dataclass(frozen=True)
class TaskChoice:
    """The task a question is answered with, its text, and whether the task was inferred."""

    task: Task
    text: str  # the question without a ``[task]`` prefix
    inferred: bool  # True: no task given, none in the question: read from the words


def resolve_task(
    question: str, task: str = "", known: Collection[str] = MINIGPT_TASKS
) -> TaskChoice:
    """Return the task for ``question``: ``task``, else its ``[task]`` prefix, else inferred.

    A given or prefixed task the model does not know (not in ``known``) is an error naming the
    ones it knows: its identifier would reach the model as an unknown token.
    """
    given = bool(task.strip()) or bool(_TASK_PREFIX.match(question))
    chosen, text = split_task(question, task)
    if not given:
        return TaskChoice(infer_task(text, known), text, inferred=True)
    if chosen.value not in known:
        listed = " ".join(f"[{t}]" for t in known)
        raise ConfigError(f"task {chosen.identifier} is not one this model knows: {listed}")
    return TaskChoice(chosen, text, inferred=False)
