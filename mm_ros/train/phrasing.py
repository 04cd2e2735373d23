"""How people ask about the world: a paraphrase generator for training and evaluation.

A question is a *template* (the core of the question, with slots) wrapped in an optional
greeting or politeness prefix and a suffix ("please", "right now"), with its object named in one
of many ways (synonyms, reordered, by colour or shape alone when that is unique in view), then
contracted or expanded ("what's" / "what is"), its final mark dropped or changed, and now and then
one word misspelt. Each kind has training templates and **held-out templates** that training
never uses (another sentence structure, not only other words): `mm-ros eval` asks those in its
"unseen" column. Held-out prefixes and suffixes are kept out of training the same way.

Every template of a kind a person asks without a ``[task]`` prefix is read as that kind's task
by `mm_ros.core.intent.infer_task` (a test checks every template), so a question the service
answers goes to the model with the identifier it was trained with.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mm_ros.core.intent import CONTRACTIONS
from mm_ros.train.tasks import Kind

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping, Sequence

    import numpy as np

# -- slots -------------------------------------------------------------------------------------
# {the} / {a}: the asked object with a definite / indefinite article ("the red cube", "a red
# block"); {side}: a side phrase ("on my left"); {ref}: a refer expression; {box}: box markup;
# {sound1} {sound2}: two sound names, the heard one among them; {sideword}: left / right.

SIDE_TEMPLATES = (
    "where is {the}?",
    "where's {the}?",
    "which side is {the} on?",
    "what side is {the} on?",
    "on which side is {the}?",
    "which side of me is {the} on?",
    "is {the} on my left or on my right?",
    "is {the} on my left or my right?",
    "is {the} to the left or to the right?",
    "is {the} to my left or right?",
    "is {the} left or right of me?",
    "is {the} on the left, on the right or in front of me?",
    "is {the} in front of me or off to the side?",
    "is {the} on my {sideword}?",
    "is {the} to my {sideword}?",
    "is {the} {side}?",
    "where do you see {the}?",
    "where can you see {the}?",
    "where can i see {the}?",
    "where is {the} relative to me?",
    "where is {the} from here?",
    "where is {the} from my point of view?",
    "where is {the} located?",
    "which direction is {the} in?",
    "which way is {the}?",
    "what direction is {the}?",
    "do you see {a}?",
    "can you see {a}?",
    "is there {a}?",
    "is there {a} anywhere?",
    "is there {a} in view?",
    "do you see {a} anywhere?",
    "have you seen {a}?",
    "is {the} visible?",
    "can you tell me where {the} is?",
    "could you tell me where {the} is?",
    "do you know where {the} is?",
    "i am looking for {the}, where is it?",
    "i need {the}, where is it?",
    "{the}, where is it?",
    "{the}: left or right?",
    "where exactly is {the}?",
    "where would {the} be?",
    "where did you see {the}?",
    "where are you seeing {the}?",
    "what side of the view is {the} on?",
    "which part of the view is {the} in?",
    "is {the} more to the left or to the right?",
    "is {the} straight ahead or to the side?",
    "which side should i look at for {the}?",
    "is {the} still on my {sideword}?",
    "have you got {a} in view?",
    "is {the} somewhere in front of me?",
)
SIDE_HELD_OUT = (
    "tell me where {the} is.",
    "in which direction is {the}?",
    "tell me which side {the} is on.",
    "on what side of me is {the}?",
    "would you say {the} is to my left or to my right?",
    "is {the} somewhere on my left?",
    "any sign of {a}?",
    "left, right or centre: where is {the}?",
    "i wonder where {the} is.",
    "whereabouts is {the}?",
    "is {the} over to the left or over to the right?",
    "are you able to see {a}?",
    "which way should i look for {the}?",
    "from where i am, where is {the}?",
)
LIST_TEMPLATES = (
    "what is {side}?",
    "what's {side}?",
    "what do you see {side}?",
    "what can you see {side}?",
    "what do i have {side}?",
    "which objects are {side}?",
    "what objects are {side}?",
    "which things are {side}?",
    "what things are {side}?",
    "is there anything {side}?",
    "is anything {side}?",
    "is something {side}?",
    "what is there {side}?",
    "what lies {side}?",
    "what is lying {side}?",
    "tell me what is {side}.",
    "list what is {side}.",
    "list the objects {side}.",
    "list everything {side}.",
    "name everything {side}.",
    "can you list what is {side}?",
    "what have we got {side}?",
    "what have i got {side}?",
    "which objects do you see {side}?",
    "what objects can you see {side}?",
    "{side}, what is there?",
    "{side}: what do you see?",
    "do you see anything {side}?",
    "can you see anything {side}?",
    "what is located {side}?",
    "what is visible {side}?",
    "what do you notice {side}?",
    "are there objects {side}?",
    "what is standing {side}?",
    "what is sitting {side}?",
    "what objects lie {side}?",
    "what shapes are {side}?",
    "which colours do you see {side}?",
    "can you describe what is {side}?",
    "what do you spot {side}?",
    "what else is {side}?",
    "who or what is {side}?",
    "which objects can i see {side}?",
)
LIST_HELD_OUT = (
    "anything {side}?",
    "name the objects {side}.",
    "could you name the objects {side}?",
    "what's over there {side}?",
    "which items are {side}?",
    "what am i looking at {side}?",
    "tell me everything you can see {side}.",
    "are there any objects {side}?",
    "what is placed {side}?",
    "give me a list of what is {side}.",
    "which things can you make out {side}?",
    "what do we have {side}?",
)
# Box requests in plain words (the service infers [grounding]); asked with [grounding] typed
# as well, like the "where is X?" templates above.
GROUNDING_TEMPLATES = (
    "find {the}.",
    "find {the} for me.",
    "could you find {the}?",
    "please find {the}.",
    "locate {the}.",
    "can you locate {the}?",
    "box {the}.",
    "draw a box around {the}.",
    "draw a box on {the}.",
    "put a box around {the}.",
    "put a box on {the}.",
    "give the box of {the}.",
    "give me the box of {the}.",
    "give me the bounding box of {the}.",
    "give me a box for {the}.",
    "what is the bounding box of {the}?",
    "show me {the}.",
    "show me where {the} is.",
    "show {the}.",
    "point to {the}.",
    "point at {the}.",
    "mark {the}.",
    "highlight {the}.",
    "outline {the}.",
    "circle {the}.",
    "detect {the}.",
    "where exactly is {the}? box it.",
    "find and box {the}.",
    "show me the location of {the}.",
    "what is the position of {the}?",
    "give me the position of {the}.",
    "spot {the}.",
    "can you spot {the}?",
)
GROUNDING_HELD_OUT = (
    "point out {the}.",
    "can you find {the}?",
    "could you draw a bounding box around {the}?",
    "pinpoint {the}.",
    "i need the location of {the}, please mark it.",
    "highlight where {the} is.",
    "indicate {the} in the image.",
    "show me exactly where {the} is.",
    "mark the position of {the}.",
    "locate {the} and draw its box.",
    "put {the} in a box.",
)
REFER_TEMPLATES = (
    "{ref}",
    "find {ref}.",
    "where is {ref}?",
    "box {ref}.",
    "locate {ref}.",
    "give me the box of {ref}.",
)
REFER_HELD_OUT = ("show me {ref}.", "point out {ref}.", "highlight {ref}.")
IDENTIFY_TEMPLATES = (
    "what is this {box}?",
    "what object is in {box}?",
    "{box}",
    "what is in {box}?",
    "what is at {box}?",
    "which object is at {box}?",
    "identify {box}.",
    "what do you see in {box}?",
)
IDENTIFY_HELD_OUT = ("name the object in {box}.", "tell me what is inside {box}.")
AUDIO_TEMPLATES = (
    "what did i just hear?",
    "what did i hear?",
    "what did you just hear?",
    "what did you hear?",
    "what was that sound?",
    "what was that noise?",
    "what sound was that?",
    "what noise was that?",
    "what's that sound?",
    "what is that noise?",
    "what can you hear?",
    "what do you hear?",
    "what are you hearing?",
    "what was the last sound?",
    "what was the last thing you heard?",
    "which sound did you hear?",
    "which sound was it?",
    "did you hear that?",
    "did you hear something?",
    "did you hear anything?",
    "was there a sound?",
    "was there a noise just now?",
    "any sounds?",
    "any noise?",
    "what made that sound?",
    "what made that noise?",
    "identify the sound.",
    "name the sound you heard.",
    "what kind of sound was that?",
    "what type of noise was that?",
    "was that a {sound1} or a {sound2}?",
    "did i just hear a {sound1}?",
    "is it quiet?",
    "what does it sound like?",
    "can you tell me what that sound was?",
    "listen, what is that?",
    "what is making that sound?",
    "what was that beeping?",
    "did something just make a noise?",
    "was that a sound i heard?",
    "what is the noise i am hearing?",
    "what sound did it make?",
    "what sound came just now?",
    "which noise did you pick up?",
    "what have you heard?",
    "was it a {sound1}?",
)
AUDIO_HELD_OUT = (
    "which noise just happened?",
    "tell me what that noise was.",
    "what kind of noise did i just hear?",
    "could you identify that noise?",
    "what was that i just heard?",
    "any idea what that sound was?",
    "what's that noise i hear?",
    "hear anything?",
    "what sort of sound just happened?",
    "do you recognise that sound?",
    "was something making noise?",
)
MOTION_TEMPLATES = (
    "how am i moving?",
    "am i moving?",
    "what am i doing?",
    "am i walking?",
    "am i turning?",
    "am i standing still?",
    "am i still?",
    "which way am i turning?",
    "which direction am i turning?",
    "am i turning left or right?",
    "how are you moving?",
    "are you moving?",
    "are we moving?",
    "what is my motion?",
    "what is my movement?",
    "describe my motion.",
    "am i going forward?",
    "am i walking forward?",
    "am i walking or turning?",
    "am i walking or standing?",
    "what movement am i making?",
    "am i stopped?",
    "are you standing still?",
    "is the camera moving?",
    "are you turning?",
    "what are you doing?",
    "am i rotating?",
    "am i in motion?",
    "how is the robot moving?",
    "what kind of motion is this?",
    "am i walking straight?",
    "am i going straight ahead?",
    "am i spinning?",
    "am i stationary?",
    "how fast am i going?",
    "is the robot moving?",
    "are we stopped?",
    "are we turning?",
    "which way are we turning?",
    "have i stopped?",
    "am i standing or walking?",
    "what movement is this?",
    "am i turning to the {sideword}?",
)
MOTION_HELD_OUT = (
    "describe my movement.",
    "tell me how i am moving.",
    "what motion do you feel?",
    "which way am i heading?",
    "am i walking straight ahead or turning?",
    "what's my current motion?",
    "are we standing still or walking?",
    "am i on the move?",
    "is the robot turning?",
    "how would you describe my movement right now?",
)
CAPTION_TEMPLATES = (
    "describe the scene.",
    "describe what you see, hear and feel.",
    "describe everything.",
    "what do you see?",
    "give me an overview.",
    "describe your surroundings.",
)
CAPTION_HELD_OUT = ("tell me about the scene.",)

# "can you tell me where the red cube is?": a frame before an embedded clause (no inversion)
FRAMES = (
    "can you tell me",
    "could you tell me",
    "do you know",
    "would you mind telling me",
    "i would like to know",
    "i want to know",
    "i was wondering",
    "do you happen to know",
    "please tell me",
    "let me know",
    "any idea",
    "tell me",
    "can i ask",
    "i am curious",
)
FRAMES_HELD_OUT = ("i'd love to know", "mind telling me", "could you let me know")
EMBEDDED: dict[Kind, tuple[str, ...]] = {
    Kind.SIDE: (
        "where {the} is",
        "which side {the} is on",
        "if you can see {a}",
        "whether {the} is on my left or my right",
        "if {the} is {side}",
    ),
    Kind.LIST: (
        "what is {side}",
        "what you see {side}",
        "if there is anything {side}",
        "which objects are {side}",
    ),
    Kind.AUDIO: (
        "what that sound was",
        "what i just heard",
        "what you heard",
        "what that noise was",
        "which sound you heard",
    ),
    Kind.MOTION: (
        "how i am moving",
        "if i am moving",
        "whether i am turning",
        "what i am doing",
        "which way i am turning",
    ),
}
FRAME_SHARE = 0.2  # of questions of the kinds above: frame + embedded clause

TEMPLATES: dict[Kind, tuple[str, ...]] = {
    Kind.SIDE: SIDE_TEMPLATES,
    Kind.LIST: LIST_TEMPLATES,
    Kind.GROUNDING: GROUNDING_TEMPLATES,
    Kind.REFER: REFER_TEMPLATES,
    Kind.IDENTIFY: IDENTIFY_TEMPLATES,
    Kind.AUDIO: AUDIO_TEMPLATES,
    Kind.MOTION: MOTION_TEMPLATES,
    Kind.CAPTION: CAPTION_TEMPLATES,
    Kind.ABSENT: SIDE_TEMPLATES,
}
HELD_OUT: dict[Kind, tuple[str, ...]] = {
    Kind.SIDE: SIDE_HELD_OUT,
    Kind.LIST: LIST_HELD_OUT,
    Kind.GROUNDING: GROUNDING_HELD_OUT,
    Kind.REFER: REFER_HELD_OUT,
    Kind.IDENTIFY: IDENTIFY_HELD_OUT,
    Kind.AUDIO: AUDIO_HELD_OUT,
    Kind.MOTION: MOTION_HELD_OUT,
    Kind.CAPTION: CAPTION_HELD_OUT,
    Kind.ABSENT: SIDE_HELD_OUT,
}

# -- wrapping ----------------------------------------------------------------------------------
PREFIXES = (
    "please",
    "hey",
    "hey robot",
    "robot",
    "ok",
    "okay",
    "so",
    "quick question",
    "excuse me",
    "hi",
    "hello",
    "um",
    "tell me",
    "sorry",
    "now",
    "well",
    "alright",
    "so tell me",
    "quick one",
    "look",
    "ah",
    "excuse me robot",
    "hey buddy",
)
PREFIXES_HELD_OUT = ("pardon me", "hey there", "hmm", "one question", "oh")
SUFFIXES = (
    "please",
    "right now",
    "now",
    "for me",
    "thanks",
    "thank you",
    "at the moment",
    "quickly",
    "again",
    "if you can",
    "currently",
    "thanks a lot",
    "by the way",
    "real quick",
    "when you get a chance",
    "if you do not mind",
    "buddy",
)
SUFFIXES_HELD_OUT = ("if possible", "please and thank you", "at this moment")
PREFIX_SHARE = 0.3
SUFFIX_SHARE = 0.25
CONTRACT_SHARE = 0.5  # each contractible pair is contracted this often (else expanded)
NO_MARK_SHARE = 0.12  # the final ? or . left off
TYPO_SHARE = 0.1  # one word of the template (never a slot's) misspelt

# -- naming things -----------------------------------------------------------------------------
COLOUR_WORDS: Mapping[str, tuple[str, ...]] = {
    "red": ("red",),
    "green": ("green",),
    "blue": ("blue",),
    "yellow": ("yellow",),
    "purple": ("purple", "violet"),
    "orange": ("orange",),
}
SHAPE_WORDS: Mapping[str, tuple[str, ...]] = {
    "cube": ("cube", "block", "box"),
    "ball": ("ball", "sphere", "orb"),
    "cone": ("cone",),
    "cylinder": ("cylinder", "tube", "can", "pillar"),
}
SYNONYM_SHARE = 0.35  # a colour or shape is named by a synonym this often
# "box" and "can" name a thing only after a colour ("the red box"); alone they ask for a box or
# are the verb, for people and for `core.intent` alike: never used without the colour
AFTER_COLOUR_ONLY = frozenset({"box", "can"})
REORDER_SHARE = 0.06  # "the cube that is red"
PARTIAL_SHARE = 0.12  # "the ball" / "the red one" when only one such object is in view
SIDE_PHRASES: Mapping[str, tuple[str, ...]] = {
    "left": (
        "on my left",
        "to my left",
        "on the left",
        "to the left",
        "on my left side",
        "on the left side",
        "on my left-hand side",
        "on the left-hand side",
        "left of me",
        "to the left of me",
        "over on the left",
        "over to my left",
        "on your left",
        "at my left",
    ),
    "centre": (
        "in front of me",
        "ahead",
        "ahead of me",
        "straight ahead",
        "in the middle",
        "in the centre",
        "in the center",
        "right in front of me",
        "directly ahead",
        "in front",
        "in front of you",
        "straight in front of me",
    ),
    "right": (
        "on my right",
        "to my right",
        "on the right",
        "to the right",
        "on my right side",
        "on the right side",
        "on my right-hand side",
        "on the right-hand side",
        "right of me",
        "to the right of me",
        "over on the right",
        "over to my right",
        "on your right",
        "at my right",
    ),
}
HEARD_NAMES = ("beep", "clap", "buzz", "babble")  # sounds a person names: "was that a beep?"
_SLOT = re.compile(r"\{[a-z0-9]+\}")
_KEYBOARD_NEIGHBOURS = {
    "a": "sq",
    "b": "vn",
    "c": "xv",
    "d": "sf",
    "e": "wr",
    "f": "dg",
    "g": "fh",
    "h": "gj",
    "i": "uo",
    "j": "hk",
    "k": "jl",
    "l": "k",
    "m": "n",
    "n": "bm",
    "o": "ip",
    "p": "o",
    "q": "w",
    "r": "et",
    "s": "ad",
    "t": "ry",
    "u": "yi",
    "v": "cb",
    "w": "qe",
    "x": "zc",
    "y": "tu",
    "z": "x",
}


@dataclass(frozen=True)
class Asked:
    """One generated question and which template it came from."""

    text: str
    template: str
    held_out: bool


def _pick(rng: np.random.Generator, options: Sequence[str]) -> str:
    return options[int(rng.integers(len(options)))]


def object_phrase(name: str, rng: np.random.Generator, *, article: str = "the") -> str:
    """Name the object ``name`` ("red cube") the way a person might: "the violet block", ...."""
    colour, shape = name.split()
    colour_word = colour
    shape_word = shape
    if rng.random() < SYNONYM_SHARE:
        colour_word = _pick(rng, COLOUR_WORDS[colour])
        shape_word = _pick(rng, SHAPE_WORDS[shape])
    if rng.random() < REORDER_SHARE:
        core = f"{shape if shape_word in AFTER_COLOUR_ONLY else shape_word} that is {colour_word}"
    else:
        core = f"{colour_word} {shape_word}"
    return f"{_article(article, core, rng)} {core}"


def partial_phrase(
    name: str, in_view: Sequence[str], rng: np.random.Generator, *, article: str = "the"
) -> str | None:
    """Name ``name`` by its shape or colour alone when no other object in view shares it."""
    colour, shape = name.split()
    options = []
    if sum(n.split()[1] == shape for n in in_view) == 1:
        options.append(_pick(rng, [w for w in SHAPE_WORDS[shape] if w not in AFTER_COLOUR_ONLY]))
    if sum(n.split()[0] == colour for n in in_view) == 1:
        options.append(f"{colour} {_pick(rng, ('one', 'object', 'thing'))}")
    if not options:
        return None
    core = _pick(rng, options)
    return f"{_article(article, core, rng)} {core}"


def _article(article: str, core: str, rng: np.random.Generator) -> str:
    if article == "the":
        return _pick(rng, ("the", "the", "the", "the", "that"))
    indefinite = "an" if core[0] in "aeiou" else "a"
    return _pick(rng, (indefinite, indefinite, indefinite, "any", "the"))


def side_phrase(side: str, rng: np.random.Generator) -> str:
    """Return a way to say one side of the view ("on my left", "straight ahead", ...)."""
    return _pick(rng, SIDE_PHRASES[side])


def _misspelt(word: str, rng: np.random.Generator) -> str:
    """``word`` with one typo: two letters swapped, one dropped, doubled or hit beside."""
    i = int(rng.integers(1, len(word) - 1))  # never the first letter, as people rarely miss it
    how = int(rng.integers(4))
    if how == 0:
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    if how == 1:
        return word[:i] + word[i + 1 :]
    if how == 2:  # noqa: PLR2004
        return word[:i] + word[i] + word[i:]
    near = _KEYBOARD_NEIGHBOURS.get(word[i], word[i])
    return word[:i] + _pick(rng, near) + word[i + 1 :]


def _with_typo(template: str, rng: np.random.Generator) -> str:
    """Misspell one plain word of four letters or more (slots are left alone)."""
    words = list(re.finditer(r"(?<![{<])\b[a-z]{4,}\b(?![}>])", template))
    if not words:
        return template
    hit = words[int(rng.integers(len(words)))]
    return template[: hit.start()] + _misspelt(hit.group(0), rng) + template[hit.end() :]


_CONTRACTED = {long: short for short, long in CONTRACTIONS.items()}


def _contractions(text: str, rng: np.random.Generator) -> str:
    """Contract ("what is" → "what's") or expand each pair, at random."""
    words = text.split(" ")
    out: list[str] = []
    i = 0
    while i < len(words):
        pair = " ".join(words[i : i + 2])
        bare = pair.rstrip("?.,!:")
        if bare in _CONTRACTED and bare == pair and rng.random() < CONTRACT_SHARE:
            out.append(_CONTRACTED[bare])
            i += 2
            continue
        if words[i] in CONTRACTIONS and rng.random() >= CONTRACT_SHARE:
            out.extend(CONTRACTIONS[words[i]].split())
        else:
            out.append(words[i])
        i += 1
    return " ".join(out)


def _wrap(core: str, rng: np.random.Generator, held_out: bool) -> str:
    """Add a prefix / suffix (held-out ones for held-out questions, half the time)."""
    prefixes: tuple[str, ...] = PREFIXES
    suffixes: tuple[str, ...] = SUFFIXES
    if held_out and rng.random() < 0.5:  # noqa: PLR2004
        prefixes, suffixes = PREFIXES_HELD_OUT, SUFFIXES_HELD_OUT
    text = core
    if rng.random() < PREFIX_SHARE:
        text = f"{_pick(rng, prefixes)}, {text}"
    if rng.random() < SUFFIX_SHARE:
        body, mark = (text[:-1], text[-1]) if text[-1] in "?." else (text, "")
        text = f"{body} {_pick(rng, suffixes)}{mark}"
    return text


def realise(
    template: str,
    slots: Mapping[str, str],
    rng: np.random.Generator,
    *,
    held_out: bool = False,
    plain: bool = False,
) -> str:
    """Fill ``template`` and dress it as a person would type it (``plain``: fill only)."""
    if plain:
        return template.format(**slots)
    core = _with_typo(template, rng) if rng.random() < TYPO_SHARE else template
    text = _wrap(core.format(**slots), rng, held_out)
    text = _contractions(text, rng)
    if text[-1:] in "?." and rng.random() < NO_MARK_SHARE:
        text = text[:-1]
    return text


def ask(
    kind: Kind,
    rng: np.random.Generator,
    *,
    held_out: bool = False,
    templates: Sequence[str] | None = None,
    **slots: str,
) -> Asked:
    """Return a question of ``kind`` from its training (or held-out) templates."""
    options = templates or (HELD_OUT if held_out else TEMPLATES)[kind]
    if templates is None and kind in EMBEDDED and rng.random() < FRAME_SHARE:
        frame = _pick(rng, FRAMES_HELD_OUT if held_out else FRAMES)
        options = [f"{frame} {clause}?" for clause in EMBEDDED[kind]]
    template = _pick(rng, [t for t in options if _fits(t, slots)])
    return Asked(realise(template, slots, rng, held_out=held_out), template, held_out)


def _fits(template: str, slots: Mapping[str, str]) -> bool:
    return all(s[1:-1] in slots for s in _SLOT.findall(template))


def training_texts() -> Iterator[str]:
    """Every piece of text training questions are made of (slots blank), for the vocabulary.

    Templates contracted and expanded both ways, prefixes, suffixes, the words that fill the
    slots. Typos and held-out templates are left out: their words reach the model as pieces.
    """
    framed = [f"{frame} {clause}" for frame in FRAMES for clauses in EMBEDDED.values()
              for clause in clauses]  # fmt: skip
    for kind in Kind:
        for template in [*TEMPLATES.get(kind, ()), *framed]:
            bare = _SLOT.sub(" ", template)
            yield bare
            yield _all_contracted(bare)
            yield " ".join(CONTRACTIONS.get(w, w) for w in bare.split())
    yield from PREFIXES
    yield from SUFFIXES
    for options in (*COLOUR_WORDS.values(), *SHAPE_WORDS.values(), *SIDE_PHRASES.values()):
        yield from options
    yield " ".join(HEARD_NAMES)
    yield "the that a an any one object thing is left right , : ? ."


def _all_contracted(text: str) -> str:
    words, out, i = text.split(" "), [], 0
    while i < len(words):
        pair = " ".join(words[i : i + 2])
        if pair in _CONTRACTED:
            out.append(_CONTRACTED[pair])
            i += 2
        else:
            out.append(words[i])
            i += 1
    return " ".join(out)
