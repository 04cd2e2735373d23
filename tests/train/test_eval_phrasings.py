"""``mm-ros eval --phrasings FILE``: a person's own templates, checked, asked and reported."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest

from mm_ros.cli.main import main
from mm_ros.core.errors import ConfigError
from mm_ros.train import phrasing
from mm_ros.train.evaluate import (
    GROUNDING_PLAIN,
    EvalConfig,
    heldout_examples,
    load_phrasings,
    parse_phrasings,
    rows_of,
)
from mm_ros.train.tasks import Kind

if TYPE_CHECKING:
    from pathlib import Path

MINE = {
    "spatial": ["where's the {object}?", "is the {object} on my left or right?"],
    "spatial-list": ["what have we got {side}?"],
    "grounding": ["could you put a box on the {object}?"],
    "absent": ["find the {object}", "where is the {object}?"],
    "audio": ["what noise was that?"],
}
YAML = """\
# leaves out motion
spatial:
  - where's the {object}?
  - is the {object} on my left or right?
spatial-list:
  - what have we got {side}?
grounding:
  - could you put a box on the {object}?
absent:
  - find the {object}
  - where is the {object}?
audio:
  - what noise was that?
"""


def mine(tmp_path: Path) -> Path:
    path = tmp_path / "mine.yaml"
    path.write_text(YAML)
    return path


def test_a_file_is_read_as_its_templates_by_kind(tmp_path: Path) -> None:
    phrasings = load_phrasings(mine(tmp_path))
    assert phrasings.name == "mine.yaml"
    assert {k.value: list(ts) for k, ts in phrasings.by_kind().items()} == MINE
    assert phrasings.to_json() == {"templates": MINE}


@pytest.mark.parametrize(
    ("document", "said"),
    [
        ({"spatial-lists": ["what is {side}?"]}, ["expected kinds among", "'spatial-lists'"]),
        ({"spatial": ["where is the {colour}?"]}, ["{object}", "found {colour}"]),
        ({"spatial-list": ["where is the {object}?"]}, ["only the slots {side}", "{object}"]),
        ({"motion": ["is the {object} moving?"]}, ["expected no slot", "found {object}"]),
        ({"audio": ["was the {object} loud?"]}, ["only the slots {sound1} {sound2}"]),
        ({"spatial": ["where is {}?"]}, ["found {}"]),
        ({"spatial": ["where is the {object"]}, ["expected {slot} pairs", "{object"]),
        ({"motion": []}, ["motion: expected a non-empty list", "found []"]),
        ({"motion": "am i moving?"}, ["expected a non-empty list", "'am i moving?'"]),
        ({"motion": ["am i moving?", 3]}, ["expected a template (text), found 3"]),
        ({"motion": ["  "]}, ["expected a template (text), found '  '"]),
        (["where is the {object}?"], ["expected a mapping of kinds", "found list"]),
        (None, ["expected a mapping of kinds", "found NoneType"]),
    ],
)
def test_bad_phrasings_are_refused_naming_what_was_expected(document: Any, said: list[str]) -> None:
    with pytest.raises(ConfigError) as refused:
        parse_phrasings(document, "mine.yaml")
    message = str(refused.value)
    assert "mine.yaml" in message
    for part in said:
        assert part in message


def test_a_missing_or_broken_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"expected a readable YAML file, found .*none\.yaml"):
        load_phrasings(tmp_path / "none.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("spatial: [where is the {object}?\n")
    with pytest.raises(ConfigError, match=r"broken\.yaml: expected YAML"):
        load_phrasings(broken)


def test_the_files_templates_are_asked_as_written_with_the_truth_filled_in(
    tmp_path: Path,
) -> None:
    phrasings = load_phrasings(mine(tmp_path))
    config = EvalConfig(episodes=1, per_kind=0, unseen_per_kind=50, phrasings=phrasings)
    examples = heldout_examples(config)
    assert {e.kind for e in examples} == set(MINE)  # motion left out: never asked
    for example in examples:
        assert example.unseen
        assert not example.typed  # as a person asks: the service reads the task
        truth = example.truth
        if example.kind == Kind.LIST.value:
            slots = {"side": phrasing.SIDE_PHRASES[truth["side"]][0]}
        else:
            slots = {"object": truth.get("name", "")}
        assert example.question in [t.format(**slots) for t in MINE[example.kind]]
    asked = {e.question for e in examples if e.kind == Kind.LIST.value}
    assert "what have we got on my left?" in asked
    boxes = [e for e in examples if e.kind == Kind.GROUNDING.value]
    assert boxes
    assert all(rows_of(e) == [GROUNDING_PLAIN] for e in boxes)
    absent = {e.task for e in examples if e.kind == Kind.ABSENT.value}
    assert absent <= {"grounding", "spatial"}  # "find X" reads as a box question


def test_eval_with_phrasings_heads_the_column_with_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import torch

    path = mine(tmp_path)
    out = tmp_path / "eval"
    threads = torch.get_num_threads()
    args = ["eval", "--phrasings", str(path), "--out", str(out), "--episodes", "1"]
    try:
        args += ["--per-kind", "1", "--unseen-per-kind", "2", "--threads", "1", "--no-progress"]
        assert main(args) == 0
    finally:
        torch.set_num_threads(threads)
    table = (out / "eval.md").read_text()
    assert table in capsys.readouterr().out
    assert "| n (mine.yaml) | accuracy (mine.yaml) | mean IoU (mine.yaml) |" in table
    assert "unseen" not in table
    report = json.loads((out / "eval.json").read_text())
    assert report["phrasings"] == {"path": str(path), "templates": MINE}
    results = report["results"]
    assert results["spatial"]["phrasings"]["n"] == 2
    assert results[GROUNDING_PLAIN]["phrasings"]["n"] == 2  # box words, no [grounding] typed
    assert "phrasings" not in results["grounding"]
    for left_out in ("motion", "refer", "identify"):
        assert set(results[left_out]) == {"seen"}


def test_eval_refuses_a_bad_phrasings_file_before_loading_the_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["eval", "--out", str(tmp_path), "--phrasings", str(tmp_path / "no.yaml")]) == 2
    assert "no.yaml" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text("motion: [how am i moving, {object}?]\n")
    assert main(["eval", "--out", str(tmp_path), "--phrasings", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "mm-ros: error: phrasings" in err
    assert "motion" in err
    assert not (tmp_path / "eval.json").exists()
