"""``mm-ros eval`` as a user runs it: the table with intervals, the JSON, and bad sizes refused."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from mm_ros.cli.main import main

if TYPE_CHECKING:
    from pathlib import Path

    import pytest


def test_eval_writes_the_table_and_json_of_the_shipped_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import torch

    threads = torch.get_num_threads()
    args = ["eval", "--out", str(tmp_path), "--episodes", "1", "--per-kind", "2"]
    try:
        assert main([*args, "--unseen-per-kind", "1", "--threads", "1", "--no-progress"]) == 0
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(threads)
    table = (tmp_path / "eval.md").read_text()
    assert table in capsys.readouterr().out
    assert "| accuracy [95 % interval] |" in table
    report = json.loads((tmp_path / "eval.json").read_text())
    assert report["model_id"].startswith("mm-tiny@")
    motion = report["results"]["motion"]
    assert (motion["seen"]["n"], motion["unseen"]["n"]) == (2, 1)
    low, high = motion["seen"]["ci95"]
    assert low <= motion["seen"]["accuracy"] <= high


def test_eval_refuses_negative_sizes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", "--out", str(tmp_path), "--per-kind", "-1"]) == 2
    assert "--per-kind -1" in capsys.readouterr().err
    assert not (tmp_path / "eval.json").exists()
    assert main(["eval", "--out", str(tmp_path), "--threads", "-2"]) == 2
    assert "--threads must be >= 0" in capsys.readouterr().err
