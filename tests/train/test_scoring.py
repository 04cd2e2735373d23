from __future__ import annotations

import pytest

from mm_ros.core.answers import AnswerValue, Detection
from mm_ros.train import tasks
from mm_ros.train.evaluate import EvalConfig, Report, Score, answer_from_text, score
from mm_ros.train.tasks import Kind


def _answer(text: str, *boxes: tuple[float, float, float, float], error: str = "") -> AnswerValue:
    detections = tuple(Detection("x", b) for b in boxes)
    return AnswerValue(question="q", task="vqa", text=text, raw_text=text, detections=detections,
                       error=error)  # fmt: skip


@pytest.mark.parametrize(
    ("kind", "truth", "text", "correct"),
    [
        (Kind.SIDE, {"side": "left"}, "the red cube is on your left.", True),
        (Kind.SIDE, {"side": "left"}, "the red cube is on your right.", False),
        (Kind.SIDE, {"side": "centre"}, "it is in the center.", True),
        (Kind.SIDE, {"side": "left"}, "left or right, who knows", False),
        (Kind.SIDE, {"side": "none"}, "i do not see the red cube.", True),
        (Kind.LIST, {"names": ["red cube", "blue ball"]}, "the blue ball and the red cube.", True),
        (Kind.LIST, {"names": ["red cube", "blue ball"]}, "the red cube.", False),
        (Kind.LIST, {"names": []}, "nothing.", True),
        (Kind.LIST, {"names": []}, "the red cube.", False),
        (Kind.IDENTIFY, {"name": "green cone"}, "the green cone.", True),
        (Kind.IDENTIFY, {"name": "green cone"}, "the green cylinder.", False),
        (Kind.AUDIO, {"sound": "beep"}, "i heard a beep.", True),
        (Kind.AUDIO, {"sound": "speech-like babble"}, "i heard speech-like babble.", True),
        (Kind.AUDIO, {"sound": "silence"}, "i heard a clap.", False),
        (Kind.MOTION, {"motion": "turning left"}, "you are turning left.", True),
        (Kind.MOTION, {"motion": "turning left"}, "you are turning right.", False),
        (Kind.MOTION, {"motion": "still"}, "you are standing still.", True),
        (Kind.ABSENT, {"side": "none"}, "i do not see the red cube.", True),
        (Kind.ABSENT, {"side": "none"}, "the red cube is on your left.", False),
    ],
)
def test_text_answers(kind: Kind, truth: dict[str, object], text: str, correct: bool) -> None:
    assert score(kind.value, truth, _answer(text)).correct is correct


def test_not_seen_with_a_box_is_wrong() -> None:
    said = _answer("i do not see the red cube.")
    assert score(Kind.ABSENT.value, {"side": "none"}, said).correct
    boxed = _answer("i do not see the red cube.", (1.0, 1.0, 5.0, 5.0))
    assert not score(Kind.ABSENT.value, {"side": "none"}, boxed).correct


def test_rows_split_box_questions_by_how_they_are_asked() -> None:
    from mm_ros.train.data import Example
    from mm_ros.train.evaluate import GROUNDING_PLAIN, LIST_SOME, rows_of

    def example(kind: Kind, typed: bool, **truth: object) -> Example:
        return Example(0, 1, 2, kind.value, "", "q", "", False, dict(truth), typed)

    assert rows_of(example(Kind.GROUNDING, True)) == ["grounding"]
    assert rows_of(example(Kind.GROUNDING, False)) == [GROUNDING_PLAIN]
    assert rows_of(example(Kind.LIST, False, names=[])) == ["spatial-list"]
    assert rows_of(example(Kind.LIST, False, names=["red cube"])) == ["spatial-list", LIST_SOME]
    report = Report("m")
    report.add(example(Kind.LIST, False, names=["red cube"]), _answer(""), Score(True))
    report.add(example(Kind.LIST, False, names=[]), _answer(""), Score(False))
    assert report.accuracy(Kind.LIST) == 0.5
    assert report.accuracy(LIST_SOME) == 1.0
    assert "| … with something there | 1 | 100.0 %" in report.markdown()


def test_boxes_are_scored_by_iou_in_source_pixels() -> None:
    truth = {"box_px": [100.0, 100.0, 200.0, 200.0]}
    hit = score(Kind.GROUNDING.value, truth, _answer("", (110.0, 100.0, 210.0, 200.0)))
    assert hit.correct
    assert hit.iou == pytest.approx(90 * 100 / (2 * 100 * 100 - 90 * 100))
    miss = score(Kind.REFER.value, truth, _answer("", (300.0, 300.0, 400.0, 400.0)))
    assert not miss.correct
    assert miss.iou == 0.0
    none = score(Kind.GROUNDING.value, truth, _answer("no box"))
    assert none == Score(False, 0.0, "no box")


@pytest.mark.parametrize(
    ("box", "miss"),
    [
        ((305.0, 100.0, 405.0, 200.0), "another object"),  # on the other object
        ((170.0, 100.0, 370.0, 200.0), "another object"),  # spans both, more of the other
        ((150.0, 150.0, 250.0, 250.0), "loose"),  # a quarter on the target, nothing else
        ((100.0, 300.0, 200.0, 400.0), "on nothing"),
    ],
)
def test_a_missed_box_says_why(box: tuple[float, float, float, float], miss: str) -> None:
    truth = {
        "box_px": [100.0, 100.0, 200.0, 200.0],
        "others": [{"name": "red cone", "box_px": [300.0, 100.0, 400.0, 200.0]}],
    }
    result = score(Kind.GROUNDING.value, truth, _answer("", box))
    assert not result.correct
    assert result.miss == miss
    assert result.boxed == ("red cone" if miss == "another object" else None)
    hit = score(Kind.REFER.value, truth, _answer("", (100.0, 100.0, 200.0, 200.0)))
    assert hit.correct
    assert hit.miss is None
    failed = score(Kind.REFER.value, truth, _answer("", error="timeout"))
    assert failed.miss == "error"


def test_report_counts_why_boxes_missed() -> None:
    from mm_ros.train.data import Example

    report = Report("m")
    e = Example(0, 1, 2, Kind.GROUNDING.value, "grounding", "where is the red cube?", "",
                False, {"name": "red cube", "box_px": [0.0, 0.0, 10.0, 10.0]},
                typed=True)  # fmt: skip
    for result in (Score(True, 0.9), Score(False, 0.0, "another object", "red cone"),
                   Score(False, 0.0, "another object", "blue cube"),
                   Score(False, 0.0, "another object", "red cone"),
                   Score(False, 0.3, "loose")):  # fmt: skip
        report.add(e, _answer(""), result)
    cell = report.to_json()["results"]["grounding"]["seen"]
    assert cell["misses"] == {"another object": 3, "loose": 1}
    assert list(cell["confusions"].items()) == [
        ("red cube → red cone", 2),
        ("red cube → blue cube", 1),
    ]
    table = report.markdown()
    assert "| grounding (seen) | 4 | 3 (75 %) | 1 (25 %) | 0 (0 %) | 0 (0 %) | 0 (0 %) |" in table
    assert "red cube → red cone (2), red cube → blue cube (1)." in table


def test_report_splits_box_accuracy_by_objects_in_view() -> None:
    from mm_ros.train.data import Example

    report = Report("m")

    def ask(others: int, correct: bool, unseen: bool = False) -> None:
        truth = {"name": "red cube", "box_px": [0.0, 0.0, 10.0, 10.0],
                 "others": [{"name": "x", "box_px": [20.0, 0.0, 30.0, 10.0]}] * others}  # fmt: skip
        e = Example(0, 1, 2, Kind.REFER.value, "grounding", "find the cube.", "", unseen, truth)
        report.add(e, _answer(""), Score(correct, 1.0 if correct else 0.0))

    for others, correct in ((0, True), (0, True), (1, True), (1, False), (4, False), (6, True)):
        ask(others, correct)
    ask(0, False, unseen=True)  # unseen phrasings are reported apart
    assert report.to_json()["by_objects_in_view"]["refer"] == {
        "1": {"n": 2, "accuracy": 1.0},
        "2": {"n": 2, "accuracy": 0.5},
        "4": {"n": 2, "accuracy": 0.5},
    }
    assert "- refer: 1: 100 % of 2, 2: 50 % of 2, 4+: 50 % of 2" in report.markdown()


def test_an_error_is_wrong() -> None:
    assert not score(Kind.MOTION.value, {"motion": "still"}, _answer("", error="timeout")).correct


def test_model_text_with_percent_boxes_maps_to_source_pixels() -> None:
    raw = "<p> red cube </p> { <10> <20> <30> <40> }"
    value = answer_from_text(raw, "q", "grounding", (640, 480))
    assert value.detections[0].label == "red cube"
    assert value.detections[0].box_px == pytest.approx((64.0, 96.0, 192.0, 192.0))
    assert tasks.percent_box((64.0, 96.0, 192.0, 192.0), 640, 480) == (10, 20, 30, 40)


def test_report_table_and_json() -> None:
    from mm_ros.train.data import Example

    report = Report("m")
    e = Example(0, 1, 2, Kind.MOTION.value, "vqa", "how am i moving?", "you are standing still.",
                False, {"motion": "still"})  # fmt: skip
    report.add(e, _answer("you are standing still."), Score(True))
    report.add(e, _answer("you are turning left."), Score(False))
    assert report.to_json()["results"]["motion"]["seen"] == {
        "n": 2,
        "accuracy": 0.5,
        "ci95": [0.0945, 0.9055],  # Wilson: wide at n = 2
    }
    assert "| motion | 2 | 50.0 % [9.5, 90.5] |" in report.markdown()


@pytest.mark.parametrize(
    ("correct", "n", "low", "high"),
    [(53, 60, 0.778, 0.942), (178, 200, 0.839, 0.926), (0, 10, 0.0, 0.278), (10, 10, 0.722, 1.0)],
)
def test_interval_is_the_wilson_score_interval(
    correct: int, n: int, low: float, high: float
) -> None:
    from mm_ros.train.evaluate import Tally

    lo, hi = Tally(n=n, correct=correct).interval()
    assert (lo, hi) == pytest.approx((low, high), abs=1e-3)
    assert lo <= correct / n <= hi


def test_eval_config_is_checked() -> None:
    from mm_ros.core.errors import ConfigError

    with pytest.raises(ConfigError):
        EvalConfig(episodes=0)
