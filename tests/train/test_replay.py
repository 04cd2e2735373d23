"""Replay evaluation core: the moment schedule, the scripted questions, the report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mm_ros.core.answers import AnswerValue, Detection
from mm_ros.core.errors import ConfigError
from mm_ros.sim.world import World, WorldConfig
from mm_ros.train.data import DataConfig, shown_enough
from mm_ros.train.replay import ABSENT_OBJECT, MomentSchedule, ReplayReport, questions_at

NS = 1_000_000_000


def test_schedule_takes_the_first_truth_on_each_grid_point_after_the_warmup() -> None:
    schedule = MomentSchedule(1.0, warmup_s=2.0)
    stamps = [i * NS // 30 for i in range(30 * 5)]  # 30 Hz frames, as the world stamps them
    taken = [s for s in stamps if schedule.take(s)]
    assert taken == [2 * NS, 3 * NS, 4 * NS]


def test_schedule_skips_a_gap_without_catching_up() -> None:
    schedule = MomentSchedule(1.0)
    taken = [s for s in (0, NS // 2, 5 * NS + 1, 5 * NS + 2, 6 * NS) if schedule.take(s)]
    assert taken == [0, 5 * NS + 1, 6 * NS]


def test_schedule_refuses_bad_periods() -> None:
    with pytest.raises(ConfigError, match=r"every_s must be > 0 and warmup_s >= 0, found 0\.0"):
        MomentSchedule(0.0)


def world_truth(index: int) -> dict[str, Any]:
    world = World(WorldConfig(seed=3, duration_s=5.0), start_ns=7 * NS)
    data: dict[str, Any] = json.loads(world.frame(index).truth.to_json())
    return data


def test_questions_name_the_most_visible_object_and_carry_the_truth_stamp() -> None:
    truth = world_truth(60)
    questions = questions_at(truth)
    kinds = [q.kind for q in questions]
    assert kinds[0] == "spatial"
    assert kinds[-1] == "motion"
    assert {q.stamp_ns for q in questions} == {int(truth["stamp_ns"])}
    assert {q.frame for q in questions} == {60}
    rules = DataConfig(seeds=(0,))  # training's thresholds
    clear = [
        o
        for o in truth["objects"]
        if o["in_view"] and shown_enough(o["box_px"], o["visible_fraction"], rules, boxed=False)
    ]
    best = min(clear, key=lambda o: (-o["visible_fraction"], o["name"]))  # ties: by name
    spatial = questions[0]
    assert spatial.text == f"where is the {best['name']}?"
    assert spatial.truth == {"name": best["name"], "side": best["side"]}
    assert questions[-1].truth == {"motion": truth["motion"]}


def test_nothing_in_view_asks_about_an_absent_object_and_skips_grounding() -> None:
    truth = world_truth(60)
    truth["objects"] = [dict(o, in_view=False, box_px=None) for o in truth["objects"]]
    truth["last_sound"] = None
    questions = questions_at(truth)
    assert [q.kind for q in questions] == ["spatial", "motion"]
    assert questions[0].truth == {"name": ABSENT_OBJECT, "side": "none"}


def test_objects_are_asked_about_only_when_shown_as_training_asks() -> None:
    truth = world_truth(60)
    in_view = [o for o in truth["objects"] if o["in_view"] and o["box_px"]]
    assert in_view
    # every object in view is half hidden: training asks neither where it is nor for its box
    truth["objects"] = [dict(o, visible_fraction=0.5) for o in truth["objects"]]
    kinds = [q.kind for q in questions_at(truth)]
    assert "grounding" not in kinds
    spatial = [q for q in questions_at(truth) if q.kind == "spatial"]
    if any(o["name"] == ABSENT_OBJECT for o in in_view):
        assert not spatial  # the absent object's answer would be moot
    else:
        assert [q.truth for q in spatial] == [{"name": ABSENT_OBJECT, "side": "none"}]

    # small boxes: 21 px a side is clear enough for "where is", not for a box (24 px)
    def shrunk(o: dict[str, Any]) -> dict[str, Any]:
        x, y = o["box_px"][0], o["box_px"][1]
        return dict(o, box_px=[x, y, x + 21, y + 21], visible_fraction=1.0)

    truth["objects"] = [shrunk(o) if o["in_view"] and o["box_px"] else o
                        for o in world_truth(60)["objects"]]  # fmt: skip
    kinds = [q.kind for q in questions_at(truth)]
    assert "spatial" in kinds
    assert "grounding" not in kinds
    assert "grounding" in [
        q.kind for q in questions_at(truth, DataConfig(seeds=(0,), min_box_px=20))
    ]


def test_report_scores_rows_and_writes_json_and_markdown(tmp_path: Path) -> None:
    truth = world_truth(60)
    truth["last_sound"] = {"sound": "beep", "onset_ns": 0, "end_ns": 1, "peak": 0.5}
    questions = {q.kind: q for q in questions_at(truth)}
    box = tuple(questions["grounding"].truth["box_px"])
    side = questions["spatial"].truth["side"]
    report = ReplayReport(bag="kitchen")
    report.add(questions["spatial"], AnswerValue("q", "vqa", text=f"it is {side}."), 0.2)
    report.add(
        questions["grounding"],
        AnswerValue("q", "grounding", detections=(Detection("x", box),), model_id="m@1"),
        0.4,
    )
    report.add(questions["audio"], AnswerValue("q", "vqa", text="i heard a clap."), 0.3)
    report.add(questions["motion"], AnswerValue("q", "vqa", error="deadline"), 9.0)
    js, md = report.write(tmp_path / "out")
    data = json.loads(js.read_text())
    assert data["model_id"] == "m@1"
    assert (data["questions"], data["errors"], data["moments"]) == (4, 1, 1)
    assert {k: v["correct"] for k, v in data["accuracy"].items()} == {
        "spatial": 1,
        "grounding": 1,
        "audio": 0,
        "motion": 0,
    }
    assert data["grounding_iou"]["mean"] == pytest.approx(1.0)
    assert data["latency_s"]["p50"] == pytest.approx(0.3)  # the failed answer is left out
    assert [r["correct"] for r in data["rows"]] == [True, True, False, False]
    text = md.read_text()
    assert text.startswith("# Replay evaluation of kitchen")
    assert "| grounding | 1 | 1 | 100.0 % |" in text
    assert "| motion | how am i moving? | deadline | no | - |" in text


def test_a_box_on_another_object_is_reported_as_such(tmp_path: Path) -> None:
    truth = world_truth(60)
    grounding = next(q for q in questions_at(truth) if q.kind == "grounding")
    others = grounding.truth["others"]
    in_view = [o for o in truth["objects"] if o["in_view"] and o["box_px"]]
    assert sorted(o["name"] for o in others) == sorted(
        o["name"] for o in in_view if o["name"] != grounding.truth["name"]
    )
    assert others, "frame 60 of seed 3 shows more than one object"
    wrong = tuple(others[0]["box_px"])
    report = ReplayReport(bag="kitchen")
    report.add(grounding, AnswerValue("q", "grounding", detections=(Detection("x", wrong),)), 0.1)
    row = json.loads(report.write(tmp_path)[0].read_text())["rows"][0]
    assert (row["correct"], row["miss"]) == (False, "another object")
    assert "| no (another object) |" in (tmp_path / "evaluation.md").read_text()
