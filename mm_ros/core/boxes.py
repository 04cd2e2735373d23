"""Grounding boxes written by vision-language models, parsed from their text (REFERENCE.md 4).

One parser for every family; the *format* (how boxes are written) and the *scale* (what the
numbers mean) are separate settings, because checkpoints fine-tuned from one family often keep
its syntax with another coordinate system. Boxes come out in model-input pixels, then
``ImageTransform.box_to_source`` maps them to source-image pixels. Parsing is tolerant of what
models really write (HTML entities, spaces, ``<unk>``), strict about the numbers: anything that
is not exactly four numbers is rejected with the reason, and the raw text is always kept.
"""

from __future__ import annotations

import enum
import html
import json
import re
from dataclasses import dataclass

from mm_ros.core.errors import ConfigError


class BoxFormat(enum.Enum):
    """How a model family writes boxes."""

    MINIGPT_V2 = "minigpt-v2"  # <p>phrase</p> {<x1><y1><x2><y2>}<delim>{...}
    QWEN_VL = "qwen-vl"  # <ref>phrase</ref><box>(x1,y1),(x2,y2)</box>
    QWEN2_VL = "qwen2-vl"  # <|object_ref_start|>phrase<|object_ref_end|><|box_start|>(..),(..)
    QWEN_JSON = "qwen-json"  # Qwen2.5-VL / Qwen3-VL: [{"bbox_2d": [x1,y1,x2,y2], "label": ..}]
    FLORENCE2 = "florence-2"  # label<loc_a><loc_b><loc_c><loc_d>
    KOSMOS2 = "kosmos-2"  # <phrase>p</phrase><object><patch_index_0044><patch_index_0863></object>
    PALIGEMMA = "paligemma"  # <loc0123><loc0456><loc0789><loc1011> label ; ...   (y1 x1 y2 x2)
    SHIKRA = "shikra"  # [0.111,0.222,0.333,0.444];[...]
    INTERNVL = "internvl"  # <ref>phrase</ref><box>[[x1, y1, x2, y2]]</box>
    DEEPSEEK_VL2 = "deepseek-vl2"  # <|ref|>phrase<|/ref|><|det|>[[x1,y1,x2,y2]]<|/det|>


class BoxScale(enum.Enum):
    """What the four numbers mean."""

    UNIT = "unit"  # 0..1 of the image
    PERCENT = "percent"  # 0..100
    PERMILLE = "permille"  # 0..1000
    PERMILLE_999 = "permille-999"  # 0..999
    BINS_1000 = "bins-1000"  # Florence-2: pixel = (bin + 0.5) * size / 1000
    BINS_1024 = "bins-1024"  # PaliGemma: pixel = bin * size / 1024
    GRID_32 = "grid-32"  # Kosmos-2: 32x32 cells, top-left cell and bottom-right cell
    PIXELS = "pixels"  # absolute pixels of the model input (Qwen2.5-VL)


DEFAULT_SCALE = {
    BoxFormat.MINIGPT_V2: BoxScale.PERCENT,
    BoxFormat.QWEN_VL: BoxScale.PERMILLE,
    BoxFormat.QWEN2_VL: BoxScale.PERMILLE,
    BoxFormat.QWEN_JSON: BoxScale.PIXELS,  # Qwen2.5-VL; Qwen3-VL writes PERMILLE
    BoxFormat.FLORENCE2: BoxScale.BINS_1000,
    BoxFormat.KOSMOS2: BoxScale.GRID_32,
    BoxFormat.PALIGEMMA: BoxScale.BINS_1024,
    BoxFormat.SHIKRA: BoxScale.UNIT,
    BoxFormat.INTERNVL: BoxScale.PERMILLE,
    BoxFormat.DEEPSEEK_VL2: BoxScale.PERMILLE_999,
}
GRID = 32
BOX_NUMBERS = 4  # x1 y1 x2 y2

Box = tuple[float, float, float, float]  # x1, y1, x2, y2


@dataclass(frozen=True)
class Grounded:
    """One box the model wrote, in model-input pixels, with the phrase it attached."""

    label: str
    box_px: Box  # (x1, y1, x2, y2), x1 <= x2, y1 <= y2, inside [0, width] x [0, height]


@dataclass(frozen=True)
class Parsed:
    """The answer text without box markup, the boxes, and what was rejected and why."""

    text: str
    boxes: tuple[Grounded, ...]
    rejected: tuple[str, ...]
    raw: str


_NUMBER = r"-?\d+(?:\.\d+)?"
_PATTERNS = {
    BoxFormat.MINIGPT_V2: re.compile(r"(?:<p>(?P<label>.*?)</p>\s*)?\{(?P<body>(?:<[^>]*>)+?)\}"),
    BoxFormat.QWEN_VL: re.compile(r"(?:<ref>(?P<label>.*?)</ref>)?<box>(?P<body>.*?)</box>"),
    BoxFormat.QWEN2_VL: re.compile(
        r"(?:<\|object_ref_start\|>(?P<label>.*?)<\|object_ref_end\|>)?"
        r"<\|box_start\|>(?P<body>.*?)<\|box_end\|>"
    ),
    BoxFormat.FLORENCE2: re.compile(r"(?P<label>[^<]*?)(?P<body>(?:<loc_\d+>){1,8})"),
    BoxFormat.KOSMOS2: re.compile(
        r"(?:<phrase>(?P<label>.*?)</phrase>)?<object>(?P<body>.*?)</object>"
    ),
    BoxFormat.PALIGEMMA: re.compile(r"(?P<body>(?:<loc\d{4}>){1,8})\s*(?P<label>[^;<]*)"),
    BoxFormat.SHIKRA: re.compile(
        r"(?P<body>\[\s*" + _NUMBER + r"(?:\s*,\s*" + _NUMBER + r")*\s*\])"
    ),
    BoxFormat.INTERNVL: re.compile(r"(?:<ref>(?P<label>.*?)</ref>)?<box>(?P<body>.*?)</box>"),
    BoxFormat.DEEPSEEK_VL2: re.compile(
        r"(?:<\|ref\|>(?P<label>.*?)<\|/ref\|>)?<\|det\|>(?P<body>.*?)<\|/det\|>"
    ),
}


def _numbers(body: str) -> list[float]:
    return [float(x) for x in re.findall(_NUMBER, body)]


def _groups(fmt: BoxFormat, body: str) -> list[list[float]]:
    """Split one match's body into candidate boxes (some formats put several in one match)."""
    if fmt in (BoxFormat.INTERNVL, BoxFormat.DEEPSEEK_VL2):
        inner = re.findall(r"\[([^\[\]]*)\]", body)
        return [_numbers(x) for x in inner] or [_numbers(body)]
    if fmt is BoxFormat.KOSMOS2:
        return [[float(x) for x in re.findall(r"<patch_index_(\d+)>", body)]]
    return [_numbers(body)]


def _to_input_px(values: list[float], scale: BoxScale, width: int, height: int) -> Box:
    if scale is BoxScale.GRID_32:
        top_left, bottom_right = int(values[0]), int(values[1])
        cells = (
            top_left % GRID,
            top_left // GRID,
            bottom_right % GRID + 1,
            bottom_right // GRID + 1,
        )
        return (
            cells[0] * width / GRID,
            cells[1] * height / GRID,
            cells[2] * width / GRID,
            cells[3] * height / GRID,
        )
    x1, y1, x2, y2 = values
    if scale is BoxScale.PIXELS:
        return (x1, y1, x2, y2)
    if scale is BoxScale.BINS_1000:
        return (
            (x1 + 0.5) * width / 1000,
            (y1 + 0.5) * height / 1000,
            (x2 + 0.5) * width / 1000,
            (y2 + 0.5) * height / 1000,
        )
    divisor = {
        BoxScale.UNIT: 1.0,
        BoxScale.PERCENT: 100.0,
        BoxScale.PERMILLE: 1000.0,
        BoxScale.PERMILLE_999: 999.0,
        BoxScale.BINS_1024: 1024.0,
    }[scale]
    return (
        x1 / divisor * width,
        y1 / divisor * height,
        x2 / divisor * width,
        y2 / divisor * height,
    )


def _normalise(box: Box, width: int, height: int) -> Box:
    """Swap inverted corners, clamp to the image."""
    x1, x2 = sorted((box[0], box[2]))
    y1, y2 = sorted((box[1], box[3]))
    return (
        min(max(x1, 0.0), width),
        min(max(y1, 0.0), height),
        min(max(x2, 0.0), width),
        min(max(y2, 0.0), height),
    )


def _clean_label(label: str | None) -> str:
    return re.sub(r"\s+", " ", (label or "").replace("<unk>", "")).strip(" ;,:.")


def parse_boxes(
    text: str,
    fmt: BoxFormat | str,
    scale: BoxScale | str | None = None,
    *,
    input_width: int,
    input_height: int,
) -> Parsed:
    """Find every box in ``text``; return them in model-input pixels and the cleaned text."""
    fmt = BoxFormat(fmt)
    scale = BoxScale(scale) if scale is not None else DEFAULT_SCALE[fmt]
    if input_width <= 0 or input_height <= 0:
        msg = f"model input size must be positive, found {input_width}x{input_height}"
        raise ConfigError(msg)
    raw = text
    text = html.unescape(text)
    if fmt is BoxFormat.MINIGPT_V2:  # the model pads inside braces with spaces and <unk>
        text = re.sub(r"\{[^{}]*\}", lambda m: re.sub(r"\s+|<unk>", "", m.group(0)), text)
    if fmt is BoxFormat.QWEN_JSON:
        return _parse_json(raw, text, scale, input_width, input_height)
    wanted = 2 if scale is BoxScale.GRID_32 else 4
    boxes: list[Grounded] = []
    rejected: list[str] = []
    pattern = _PATTERNS[fmt]
    last_label = ""
    for match in pattern.finditer(text):
        label = _clean_label(match.groupdict().get("label"))
        if not label and text[: match.start()].rstrip().endswith("<delim>"):
            label = last_label  # MiniGPT-v2: {box}<delim>{box} share the phrase
        last_label = label
        chunks = (
            re.split(r"<delim>", match.group("body"))
            if fmt is BoxFormat.MINIGPT_V2
            else [match.group("body")]
        )
        for chunk in chunks:
            for found in _groups(fmt, chunk):
                if len(found) != wanted:
                    rejected.append(
                        f"{match.group(0)!r}: expected {wanted} numbers, found {len(found)}"
                    )
                    continue
                ordered = (  # PaliGemma writes y1 x1 y2 x2
                    [found[1], found[0], found[3], found[2]]
                    if fmt is BoxFormat.PALIGEMMA
                    else found
                )
                box = _to_input_px(ordered, scale, input_width, input_height)
                boxes.append(Grounded(label, _normalise(box, input_width, input_height)))
    cleaned = _strip_markup(fmt, text)
    return Parsed(cleaned, tuple(boxes), tuple(rejected), raw)


def _parse_json(raw: str, text: str, scale: BoxScale, width: int, height: int) -> Parsed:
    start, end = text.find("["), text.rfind("]")
    boxes: list[Grounded] = []
    rejected: list[str] = []
    if start < 0 or end <= start:
        return Parsed(text.strip(), (), (), raw)
    snippet = text[start : end + 1]
    try:
        items = json.loads(snippet)
    except json.JSONDecodeError as err:
        return Parsed(text.strip(), (), (f"JSON boxes do not parse: {err}",), raw)
    for item in items if isinstance(items, list) else [items]:
        values = item.get("bbox_2d") if isinstance(item, dict) else None
        if (
            not isinstance(values, list)
            or len(values) != BOX_NUMBERS
            or not all(isinstance(v, int | float) for v in values)
        ):
            rejected.append(f"{item!r}: expected bbox_2d with 4 numbers")
            continue
        box = _to_input_px([float(v) for v in values], scale, width, height)
        boxes.append(
            Grounded(_clean_label(str(item.get("label", ""))), _normalise(box, width, height))
        )
    cleaned = (text[:start] + text[end + 1 :]).replace("```json", "").replace("```", "").strip()
    return Parsed(cleaned, tuple(boxes), tuple(rejected), raw)


_MARKUP = re.compile(
    r"<\|?/?(?:p|ref|box|object|phrase|delim|det|object_ref_start|object_ref_end|box_start|"
    r"box_end)\|?>|<loc_?\d+>|<patch_index_\d+>|\{(?:<[^>]*>\s*)+\}|\[\[[^\]]*\]\]"
)


def _strip_markup(fmt: BoxFormat, text: str) -> str:
    """Return the answer a person reads: phrases kept, coordinates and tags removed."""
    if fmt in (BoxFormat.QWEN_VL, BoxFormat.QWEN2_VL, BoxFormat.INTERNVL, BoxFormat.DEEPSEEK_VL2):
        text = re.sub(
            r"<box>.*?</box>|<\|box_start\|>.*?<\|box_end\|>|<\|det\|>.*?<\|/det\|>", "", text
        )
    if fmt is BoxFormat.SHIKRA:
        text = _PATTERNS[BoxFormat.SHIKRA].sub("", text).replace(";", " ")
    text = _MARKUP.sub("", text)
    return re.sub(r"\s+", " ", text).strip()


# Opener → closer of the markup a stream may end inside (the text after an unclosed opener is
# still being written: a box without its last number, a phrase without its end tag).
_OPENERS = (
    ("{", "}"),
    ("<p>", "</p>"),
    ("<box>", "</box>"),
    ("<ref>", "</ref>"),
    ("<|box_start|>", "<|box_end|>"),
    ("<|object_ref_start|>", "<|object_ref_end|>"),
    ("<|ref|>", "<|/ref|>"),
    ("<|det|>", "<|/det|>"),
    ("<phrase>", "</phrase>"),
    ("<object>", "</object>"),
    ("[", "]"),
)


def streamed_text(
    raw: str, fmt: BoxFormat | str, scale: BoxScale | str | None = None, *, size: int
) -> str:
    """Return partial model output as a person should see it while it streams.

    Complete boxes are removed as in the final answer; markup still open at the end (an
    unclosed ``{``, ``<p>``, ``<box>`` ...) is held back until it closes.
    """
    cut = len(raw)
    for opener, closer in _OPENERS:
        start = raw.rfind(opener)
        if start >= 0 and raw.find(closer, start + len(opener)) < 0:
            cut = min(cut, start)
    return parse_boxes(raw[:cut], fmt, scale, input_width=size, input_height=size).text
