from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from mm_ros.core.errors import CheckpointError
from mm_ros.train import data, trainer
from mm_ros.train.layout import drop_words
from tests.train.conftest import SMALL

BASE = trainer.TrainConfig(
    seed=0,
    stage1_steps=2,
    stage2_steps=4,
    batch=8,
    warmup_steps=1,
    checkpoint_every=3,
    log_every=2,
    device="cpu",
    threads=1,  # the machine is shared; one thread is also the most repeatable
    model=SMALL,
)


class StopRunError(Exception):
    pass


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(folder / trainer.CHECKPOINT / trainer.WEIGHTS_FILE))


def test_training_reduces_the_loss(tmp_path: Path, small_dataset: data.Dataset) -> None:
    config = dataclasses.replace(BASE, stage1_steps=0, stage2_steps=20, lr_stage2=1e-2,
                                 checkpoint_every=100)  # fmt: skip
    # one fixed batch, seen again and again: the loss on it must fall
    fixed = small_dataset.examples[:8]
    subset = data.Dataset(small_dataset.images, small_dataset.audio, small_dataset.imu, fixed,
                          small_dataset.image_size)  # fmt: skip
    losses: list[float] = []
    trainer.train(config, tmp_path, dataset=subset, progress=False,
                  on_step=lambda _s, loss: losses.append(loss))  # fmt: skip
    assert len(losses) == 20
    assert np.mean(losses[-5:]) < 0.75 * np.mean(losses[:5])
    records = [json.loads(line) for line in (tmp_path / trainer.LOG_FILE).read_text().splitlines()]
    assert [r["step"] for r in records] == list(range(2, 21, 2))


def test_resume_continues_from_the_checkpoint(tmp_path: Path, small_dataset: data.Dataset) -> None:
    straight = tmp_path / "straight"
    trainer.train(BASE, straight, dataset=small_dataset, progress=False)

    def stop_at_3(step: int, _loss: float) -> None:
        if step == 3:
            raise StopRunError

    resumed = tmp_path / "resumed"
    with pytest.raises(StopRunError):
        trainer.train(BASE, resumed, dataset=small_dataset, progress=False, on_step=stop_at_3)
    assert json.loads((resumed / "checkpoint" / "state.json").read_text())["step"] == 3
    steps: list[int] = []
    folder = trainer.train(BASE, resumed, dataset=small_dataset, progress=False, resume=True,
                           on_step=lambda s, _l: steps.append(s))  # fmt: skip
    assert steps == [4, 5, 6]
    a, b = _weights(straight), _weights(resumed)
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6)
    assert (folder / "mm_model.json").is_file()


def test_resume_refuses_another_seed(tmp_path: Path, small_dataset: data.Dataset) -> None:
    config = dataclasses.replace(BASE, stage1_steps=1, stage2_steps=1, checkpoint_every=1)
    trainer.train(config, tmp_path, dataset=small_dataset, progress=False)
    with pytest.raises(CheckpointError, match="seed"):
        trainer.train(dataclasses.replace(config, seed=1), tmp_path, dataset=small_dataset,
                      progress=False, resume=True)  # fmt: skip


def test_stage_one_freezes_the_language_model(tmp_path: Path, small_dataset: data.Dataset) -> None:
    config = dataclasses.replace(BASE, stage1_steps=2, stage2_steps=0, checkpoint_every=1)
    before = trainer.TinyModel(SMALL, 0).state()
    trainer.train(config, tmp_path, dataset=small_dataset, progress=False)
    after = _weights(tmp_path)
    llm = [k for k in before if k.startswith("llm.")]
    adapters = [k for k in before if k.startswith("adapter.")]
    assert all(torch.equal(before[k], after[k]) for k in llm)
    assert any(not torch.equal(before[k], after[k]) for k in adapters)


def test_word_dropout_keeps_tags() -> None:
    rng = np.random.default_rng(0)
    out = drop_words("what is this {<1><2><30><40>}?", rng, 1.0)
    assert out == "<unk> <unk> <unk> {<1><2><30><40>}?"
    assert drop_words("where is the red cube?", rng, 0.0) == "where is the red cube?"
