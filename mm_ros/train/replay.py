"""Replay evaluation without the bus: which moments of a bag to ask about, what, and the report.

The ``replay_evaluator`` node feeds this with the synthetic world's per-frame truth (the JSON
``sim_world`` publishes) as a bag replays; `MomentSchedule` picks one truth every ``every_s`` of
bag time, `questions_at` writes the scripted questions for it (the evaluation harness's kinds,
scored by `evaluate.score`), and `ReplayReport` keeps one row per answer and writes
``evaluation.json`` and ``evaluation.md``.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mm_ros.core.errors import ConfigError
from mm_ros.train import data as data_mod
from mm_ros.train import tasks
from mm_ros.train.evaluate import IOU_HIT, Tally, score
from mm_ros.train.tasks import Kind

if TYPE_CHECKING:
    from pathlib import Path

    from mm_ros.core.answers import AnswerValue

NS = 1_000_000_000
REPLAY_KINDS = (Kind.SIDE, Kind.GROUNDING, Kind.AUDIO, Kind.MOTION)
ABSENT_OBJECT = "red cube"  # asked about with truth side "none" when nothing is in view
JSON_NAME, MARKDOWN_NAME = "evaluation.json", "evaluation.md"


@dataclass(frozen=True)
class ReplayQuestion:
    """One scripted question about one truth moment."""

    kind: str  # a Kind value
    task: str  # the task the question is asked with ("": the service reads it from the words)
    text: str
    truth: dict[str, Any]  # what `evaluate.score` compares with
    stamp_ns: int  # the truth's stamp: the Ask goal's ``stamp``
    frame: int  # the world's frame index


class MomentSchedule:
    """Pick the first truth at or after each point of a grid ``every_s`` apart in bag time.

    The grid starts ``warmup_s`` after the first truth seen, so the moments depend on the
    bag's stamps only, never on when messages arrive. The warm-up keeps the model's windows
    (1 s of IMU for mm-tiny) off the replay's first messages: a subscriber busy with its first
    callbacks (the /clock jump, the first frame) may drop some of those, and a window that
    reached back to them would differ from one replay to the next.
    """

    def __init__(self, every_s: float, warmup_s: float = 0.0) -> None:
        if every_s <= 0 or warmup_s < 0:
            raise ConfigError(f"every_s must be > 0 and warmup_s >= 0, found {every_s}, {warmup_s}")
        self.every_ns = round(every_s * NS)
        self.warmup_ns = round(warmup_s * NS)
        self._next_ns: int | None = None

    def take(self, stamp_ns: int) -> bool:
        """Return True when the truth at ``stamp_ns`` is a moment to ask about."""
        if self._next_ns is None:
            self._next_ns = stamp_ns + self.warmup_ns
        if stamp_ns < self._next_ns:
            return False
        skipped = (stamp_ns - self._next_ns) // self.every_ns  # a gap in the bag: no catching up
        self._next_ns += (skipped + 1) * self.every_ns
        return True


def _most_visible(
    truth: dict[str, Any], config: data_mod.DataConfig, *, boxed: bool
) -> dict[str, Any] | None:
    """Return the most visible object shown as training asks about it (`data.shown_enough`)."""
    shown = [
        o
        for o in truth["objects"]
        if o.get("in_view")
        and data_mod.shown_enough(
            o.get("box_px"), float(o.get("visible_fraction", 0.0)), config, boxed=boxed
        )
    ]
    # ties broken by name: the same truth always gives the same question
    shown.sort(key=lambda o: (-float(o["visible_fraction"]), o["name"]))
    return shown[0] if shown else None


# "where is X?" is a side question unless the box is asked for: [grounding] is typed; the other
# kinds are asked as a person asks them, without a task (`core.intent` reads it from the words).
TYPED = {Kind.GROUNDING: tasks.TASK_OF[Kind.GROUNDING].value}


def questions_at(
    truth: dict[str, Any], config: data_mod.DataConfig | None = None
) -> list[ReplayQuestion]:
    """Return the scripted questions about one ``FrameTruth`` dict.

    Objects are asked about only when shown as training asks about them (``config``'s
    thresholds, training's by default: 60 % shown, 20 px a side, 24 px for a box). Spatial asks
    where the most visible such object is; with none, where an object out of view is (truth
    "none"), unless that one is partly in view (then nothing: its answer is moot). Grounding asks
    for the box of the most visible boxable object; audio for the last sound, when one has
    started; motion always.
    """
    config = config or data_mod.DataConfig(seeds=(0,))
    stamp, frame = int(truth["stamp_ns"]), int(truth["index"])
    out: list[ReplayQuestion] = []

    def add(kind: Kind, text: str, **fields: Any) -> None:
        out.append(ReplayQuestion(kind.value, TYPED.get(kind, ""), text, fields, stamp, frame))

    target = _most_visible(truth, config, boxed=False)
    absent_in_view = any(o["name"] == ABSENT_OBJECT and o.get("in_view") for o in truth["objects"])
    if target is not None:
        add(Kind.SIDE, f"where is the {target['name']}?", name=target["name"], side=target["side"])
    elif not absent_in_view:
        add(Kind.SIDE, f"where is the {ABSENT_OBJECT}?", name=ABSENT_OBJECT, side="none")
    boxable = _most_visible(truth, config, boxed=True)
    if boxable is not None:
        others = [
            {"name": o["name"], "box_px": [float(v) for v in o["box_px"]]}
            for o in truth["objects"]
            if o is not boxable and o.get("in_view") and o.get("box_px")
        ]  # a missed box says whether it fell on one of these (`evaluate.score`)
        add(Kind.GROUNDING, f"where is the {boxable['name']}?", name=boxable["name"],
            box_px=[float(v) for v in boxable["box_px"]], others=others)  # fmt: skip
    sound = truth.get("last_sound")
    if sound:
        add(Kind.AUDIO, "what did i just hear?", sound=sound["sound"])
    add(Kind.MOTION, "how am i moving?", motion=truth["motion"])
    return out


def _p50(values: list[float]) -> float | None:
    return round(statistics.median(values), 4) if values else None


@dataclass
class ReplayReport:
    """One row per answered question; accuracy per kind, IoU of the boxes, latency."""

    bag: str = ""
    model_id: str = ""
    rows: list[dict[str, Any]] = field(default_factory=list)

    def add(self, question: ReplayQuestion, answer: AnswerValue, latency_s: float) -> None:
        """Score ``answer`` and keep its row (``latency_s``: goal sent to result, wall time)."""
        result = score(question.kind, question.truth, answer)
        if answer.model_id:
            self.model_id = answer.model_id
        self.rows.append(
            {
                "stamp_ns": question.stamp_ns,
                "frame": question.frame,
                "kind": question.kind,
                "question": question.text,
                "truth": question.truth,
                "answer": answer.raw_text,
                "boxes": [[round(v, 2) for v in d.box_px] for d in answer.detections],
                "image_stamp_ns": answer.image.stamp_ns if answer.image else 0,
                "window_ns": [answer.window_start_ns, answer.stamp_ns],  # sensor data used
                "error": answer.error,
                "correct": result.correct,
                "iou": None if result.iou is None else round(result.iou, 4),
                "miss": result.miss,  # why a box missed: one of evaluate.MISSES
                "latency_s": round(latency_s, 4),
            }
        )

    def tallies(self) -> dict[str, Tally]:
        """Tally per kind, in `REPLAY_KINDS` order."""
        out: dict[str, Tally] = {}
        for kind in REPLAY_KINDS:
            rows = [r for r in self.rows if r["kind"] == kind.value]
            if rows:
                tally = out.setdefault(kind.value, Tally())
                tally.n, tally.correct = len(rows), sum(bool(r["correct"]) for r in rows)
                ious = [r["iou"] for r in rows if r["iou"] is not None]
                tally.iou_sum, tally.ious = float(sum(ious)), len(ious)
        return out

    def to_json(self) -> dict[str, Any]:
        """JSON-ready report."""
        ious = [float(r["iou"]) for r in self.rows if r["iou"] is not None]
        latencies = [float(r["latency_s"]) for r in self.rows if not r["error"]]
        return {
            "bag": self.bag,
            "model_id": self.model_id,
            "questions": len(self.rows),
            "errors": sum(bool(r["error"]) for r in self.rows),
            "moments": len({r["stamp_ns"] for r in self.rows}),
            "accuracy": {
                kind: {"n": t.n, "correct": t.correct, "accuracy": round(t.accuracy, 4)}
                for kind, t in self.tallies().items()
            },
            "grounding_iou": {
                "n": len(ious),
                "mean": round(statistics.fmean(ious), 4) if ious else None,
                "median": _p50(ious),
                "hits": sum(v >= IOU_HIT for v in ious),
                "iou_hit": IOU_HIT,
            },
            "latency_s": {"p50": _p50(latencies), "max": max(latencies, default=None)},
            "rows": self.rows,
        }

    def summary(self) -> str:
        """One line: questions, accuracy per kind, latency p50."""
        cells = ", ".join(f"{kind} {t.correct}/{t.n}" for kind, t in self.tallies().items())
        p50 = self.to_json()["latency_s"]["p50"]
        latency = f"{p50:.3f} s" if p50 is not None else "-"
        return f"{len(self.rows)} questions ({cells or 'none'}); latency p50 {latency}"

    def markdown(self) -> str:
        """Return the report as markdown: accuracy per kind, then one row per question."""
        report = self.to_json()
        lines = [
            f"# Replay evaluation of {report['bag'] or 'a bag'}",
            "",
            f"model `{report['model_id'] or '?'}`, {report['questions']} questions at "
            f"{report['moments']} moments, {report['errors']} errors, latency p50 "
            f"{report['latency_s']['p50']} s",
            "",
            "| kind | n | correct | accuracy |",
            "|---|---:|---:|---:|",
        ]
        for kind, cell in report["accuracy"].items():
            lines.append(
                f"| {kind} | {cell['n']} | {cell['correct']} | {100 * cell['accuracy']:.1f} % |"
            )
        iou = report["grounding_iou"]
        if iou["n"]:
            lines += ["", f"grounding IoU: mean {iou['mean']:.3f}, median {iou['median']:.3f}, "
                          f"{iou['hits']}/{iou['n']} >= {IOU_HIT}"]  # fmt: skip
        lines += [
            "",
            "| stamp (s) | kind | question | answer | correct | IoU | latency (s) |",
            "|---:|---|---|---|---|---:|---:|",
        ]
        for r in self.rows:
            said = (r["error"] or r["answer"]).replace("|", "\\|").replace("\n", " ")
            iou_cell = "-" if r["iou"] is None else f"{r['iou']:.3f}"
            verdict = "yes" if r["correct"] else "no"
            if r.get("miss"):
                verdict += f" ({r['miss']})"
            lines.append(
                f"| {r['stamp_ns'] / NS:.3f} | {r['kind']} | {r['question']} | {said} | "
                f"{verdict} | {iou_cell} | {r['latency_s']:.3f} |"
            )
        return "\n".join(lines) + "\n"

    def write(self, out: Path) -> tuple[Path, Path]:
        """Write ``evaluation.json`` and ``evaluation.md`` into ``out``; return their paths."""
        out.mkdir(parents=True, exist_ok=True)
        js, md = out / JSON_NAME, out / MARKDOWN_NAME
        js.write_text(json.dumps(self.to_json(), indent=1) + "\n")
        md.write_text(self.markdown())
        return js, md
