from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from mm_ros.core.errors import CheckpointError, ConfigError
from mm_ros.train import data, trainer
from mm_ros.train.layout import drop_words
from mm_ros.train.tasks import Kind
from tests.train.conftest import SMALL

BASE = trainer.TrainConfig(
    seed=0,
    stage1_steps=2,
    stage2_steps=4,
    stage3_steps=0,
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


def test_resume_takes_a_checkpoint_from_before_a_model_field(
    tmp_path: Path, small_dataset: data.Dataset
) -> None:
    config = dataclasses.replace(BASE, stage1_steps=1, stage2_steps=2, checkpoint_every=1)
    trainer.train(dataclasses.replace(config, stage2_steps=1), tmp_path, dataset=small_dataset,
                  progress=False)  # fmt: skip
    state = tmp_path / trainer.CHECKPOINT / trainer.STATE_FILE
    document = json.loads(state.read_text())
    del document["config"]["model"]["image_antialias"]  # written before the field existed
    state.write_text(json.dumps(document))
    steps: list[int] = []
    trainer.train(config, tmp_path, dataset=small_dataset, progress=False, resume=True,
                  on_step=lambda s, _l: steps.append(s))  # fmt: skip
    assert steps == [3]
    antialiased = dataclasses.replace(
        config, model=dataclasses.replace(SMALL, image_antialias=True)
    )
    with pytest.raises(CheckpointError, match="image_antialias"):
        trainer.train(antialiased, tmp_path, dataset=small_dataset, progress=False, resume=True)


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
    made_up = drop_words("what is this {<1><2><30><40>}?", rng, 1.0, made_up=1.0).split()
    assert made_up[-1] == "{<1><2><30><40>}?"
    assert all(w.isalpha() and 3 <= len(w) <= 8 for w in made_up[:3])


def test_own_task_identifiers_are_sometimes_asked_as_vqa() -> None:
    from mm_ros.train.trainer import as_vqa

    rng = np.random.default_rng(0)
    asked = [as_vqa("audio", rng, 0.2) for _ in range(2000)]
    assert 0.17 < asked.count("vqa") / len(asked) < 0.23
    assert set(asked) == {"audio", "vqa"}
    assert {as_vqa("grounding", rng, 1.0), as_vqa("spatial", rng, 0.0)} == {"grounding", "spatial"}
    assert as_vqa("motion", None, 1.0) == "motion"  # no rng: evaluation, as asked


def test_packed_rows_score_like_separate_sequences(small_dataset: data.Dataset) -> None:
    from mm_ros.train.layout import IGNORE, packed_batch, teacher_forcing_batch

    model = trainer.TinyModel(SMALL, 0)
    model.train(False)
    by_snap = trainer._by_snapshot(small_dataset.examples)
    snaps = sorted(by_snap)[:2]
    rows = [[(e.task, e.question, e.answer) for e in by_snap[s]] for s in snaps]
    index = np.array(snaps)
    blocks = {
        "image": model.adapters["image"](
            torch.from_numpy(small_dataset.images[index].astype(np.float32))
        ),
        "audio": model.adapters["audio"](
            torch.from_numpy(small_dataset.audio[index].astype(np.float32))
        ),
        "imu": model.adapters["imu"](torch.from_numpy(small_dataset.imu[index])),
    }
    with torch.no_grad():
        embeds, mask, positions, labels = packed_batch(model.backend, rows, blocks)
        logits = model.llm(inputs_embeds=embeds, attention_mask=mask, position_ids=positions).logits
        packed = torch.nn.functional.cross_entropy(
            logits[:, :-1].flatten(0, 1),
            labels[:, 1:].flatten(),
            ignore_index=IGNORE,
            reduction="sum",
        )
        flat = [(r, item) for r, row in enumerate(rows) for item in row]
        which = [r for r, _ in flat]
        e2, m2, l2 = teacher_forcing_batch(
            model.backend, [item for _, item in flat], {k: v[which] for k, v in blocks.items()}
        )
        lg2 = model.llm(inputs_embeds=e2, attention_mask=m2).logits
        separate = torch.nn.functional.cross_entropy(
            lg2[:, :-1].flatten(0, 1), l2[:, 1:].flatten(), ignore_index=IGNORE, reduction="sum"
        )
    assert int((labels != IGNORE).sum()) == int((l2 != IGNORE).sum())
    assert embeds.shape[1] < e2.shape[1] * len(rows[0])  # the prefix is there once per row
    torch.testing.assert_close(packed, separate, rtol=1e-4, atol=1e-3)


def test_stage_one_asks_captions_and_stage_two_the_rest(small_dataset: data.Dataset) -> None:
    by_snap = trainer._by_snapshot(small_dataset.examples)
    rng = np.random.default_rng(0)
    first = trainer.step_rows(0, BASE, by_snap, rng)
    assert all(e.kind == "caption" for row in first for e in row)
    start = trainer.step_rows(BASE.stage1_steps, BASE, by_snap, rng)
    # the curriculum's first kinds: the image questions
    assert {e.kind for row in start for e in row} - {"caption"} <= {"spatial", "spatial-list"}
    assert all(len({e.snap for e in row}) == 1 for row in start)
    late = dataclasses.replace(BASE, stage2_steps=5000)
    end = trainer.step_rows(late.total_steps - 1, late, by_snap, rng)
    assert {e.kind for row in end for e in row} >= {"motion", "spatial"}
    assert trainer.kinds_at(10_000, BASE) == {k.value for k in Kind} - {"caption"}


def test_crowd_curriculum_draws_snapshots_with_few_objects_first(
    small_dataset: data.Dataset,
) -> None:
    by_snap = trainer._by_snapshot(small_dataset.examples)
    in_view = [len(objects) for objects in small_dataset.objects]
    assert min(in_view) <= 1 < max(in_view)  # the subset has both kinds of snapshot
    config = dataclasses.replace(BASE, crowd_curriculum=((0, 1), (50, 2), (100, 99)))
    assert [trainer.crowd_limit(s, config) for s in (0, 49, 50, 100)] == [1, 1, 2, 99]
    assert trainer.crowd_limit(0, BASE) is None

    def crowds(stage2_step: int) -> set[int]:
        seen = set()
        for seed in range(20):
            rng = np.random.default_rng(seed)
            step = config.stage1_steps + stage2_step
            rows = trainer.step_rows(step, config, by_snap, rng, in_view)
            seen |= {in_view[row[0].snap] for row in rows}
        return seen

    assert max(crowds(0)) <= 1
    assert max(crowds(60)) <= 2
    assert max(crowds(100)) > 2  # the limit is lifted


def test_stage3_continues_a_finished_stage2_model_exactly(
    tmp_path: Path, small_dataset: data.Dataset
) -> None:
    full = dataclasses.replace(BASE, stage3_steps=3, lr_stage3=1e-2)
    trainer.train(full, tmp_path / "straight", dataset=small_dataset, progress=False)
    # stages 1 and 2 alone write a model folder; stage 3 continues it from its weights alone
    first = dataclasses.replace(full, stage3_steps=0)
    model = trainer.train(first, tmp_path / "first", dataset=small_dataset, progress=False)
    shutil.copy2(tmp_path / "first" / trainer.LOG_FILE, model / trainer.LOG_FILE)
    trainer.start_stage3(model, tmp_path / "second", full)
    steps: list[int] = []
    trainer.train(full, tmp_path / "second", dataset=small_dataset, progress=False, resume=True,
                  on_step=lambda s, _l: steps.append(s))  # fmt: skip
    assert steps == [7, 8, 9]
    a, b = _weights(tmp_path / "straight"), _weights(tmp_path / "second")
    assert any(not torch.equal(a[k], _weights(tmp_path / "first")[k]) for k in a)  # it trained
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6)
    records = [json.loads(line) for line in (tmp_path / "second" / trainer.LOG_FILE).open()]
    assert [r["stage"] for r in records] == [1, 2, 2, 3, 3]  # logged every 2 steps and at 9


def test_stage3_needs_a_model_folder_and_steps(tmp_path: Path) -> None:
    config = dataclasses.replace(BASE, stage3_steps=2)
    with pytest.raises(ConfigError, match=r"mm_model\.json"):
        trainer.start_stage3(tmp_path, tmp_path / "out", config)
    with pytest.raises(ConfigError, match="stage3_steps"):
        trainer.start_stage3(tmp_path, tmp_path / "out", BASE)


def test_start_stage3_refuses_a_model_of_another_recipe(
    tmp_path: Path, small_dataset: data.Dataset
) -> None:
    other = "concat4_columns" if SMALL.image_reducer == "concat4" else "concat4"
    layout = dataclasses.replace(SMALL, image_reducer=other)  # same shapes, other token layout
    config = dataclasses.replace(BASE, stage1_steps=1, stage2_steps=0, model=layout)
    model = trainer.train(config, tmp_path / "other", dataset=small_dataset, progress=False)
    with pytest.raises(CheckpointError, match="not this recipe's image adapter"):
        trainer.start_stage3(model, tmp_path / "out", dataclasses.replace(BASE, stage3_steps=2))
    with pytest.raises(ConfigError, match="image_reducer"):
        dataclasses.replace(SMALL, image_reducer="concat5")


def test_stage3_draws_mostly_crowded_snapshots(small_dataset: data.Dataset) -> None:
    by_snap = trainer._by_snapshot(small_dataset.examples)
    in_view = [len(objects) for objects in small_dataset.objects]
    config = dataclasses.replace(
        BASE, stage3_steps=10, stage3_crowd=2, stage3_crowd_share=0.5, warmup_steps=5
    )
    crowded = sum(n >= 2 for n in in_view)
    assert 4 <= crowded < len(in_view)  # the subset has both kinds
    assert [config.stage_at(s) for s in (0, 1, 2, 5, 6, 15)] == [1, 1, 2, 2, 3, 3]
    for seed in range(10):
        rng = np.random.default_rng(seed)
        rows = trainer.step_rows(config.stage3_start, config, by_snap, rng, in_view)
        snaps = [row[0].snap for row in rows]
        assert len(set(snaps)) == len(snaps) == config.batch
        assert sum(in_view[snap] >= 2 for snap in snaps) >= 4  # half of 8
    # a fresh warmup (a fifth of the 10 steps) at the start of stage 3, up to its own peak
    assert trainer.lr_at(config.stage3_start, config) == pytest.approx(config.lr_stage3 / 2)
    assert trainer.lr_at(config.stage3_start + 1, config) == pytest.approx(config.lr_stage3)


@pytest.mark.parametrize("text", ["0", "0:x", "0:0", "-1:2", "400:2,100:3", "0:1,,0:2"])
def test_bad_crowd_curriculum_says_what_was_expected(text: str) -> None:
    with pytest.raises(ConfigError, match="crowd curriculum"):
        trainer.parse_crowd(text)


def test_crowd_curriculum_text() -> None:
    assert trainer.parse_crowd("0:1, 400:2,800:99") == ((0, 1), (400, 2), (800, 99))
    assert trainer.parse_crowd("") == ()


def _image_tokens(
    model: trainer.TinyModel, dataset: data.Dataset, folder: Path | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return the image tokens of every snapshot (weights from ``folder``) and the LM table."""
    if folder is not None:
        model.load_state(_weights(folder))
    with torch.no_grad():
        out = model.adapters["image"](torch.from_numpy(dataset.images.astype(np.float32)))
    return out, model.llm.get_input_embeddings().weight.detach()


def test_alignment_pulls_image_tokens_towards_their_words(
    tmp_path: Path, small_dataset: data.Dataset
) -> None:
    from mm_ros.train import regions

    config = dataclasses.replace(BASE, stage1_steps=12, stage2_steps=0, lr_stage1=1e-2,
                                 align_weight=1.0, checkpoint_every=100,
                                 align_min_cover=0.02)  # 4 tokens of whole rows  # fmt: skip
    model = trainer.TinyModel(config.model, config.seed)
    align = trainer.Alignment.of(model, small_dataset, config)
    assert align is not None
    tokens = model.specs["image"].token_count
    assert align.targets.shape == (len(small_dataset.images), tokens, regions.MAX_TARGETS)
    assert (align.targets[:, :, 1] != regions.PAD).any()  # some tokens show an object
    assert BASE.align_weight == 1.0  # the recipe's
    off = dataclasses.replace(BASE, align_weight=0.0)
    assert trainer.Alignment.of(model, small_dataset, off) is None

    def align_loss(folder: Path | None) -> float:
        out, table = _image_tokens(model, small_dataset, folder)
        return float(regions.alignment_loss(out, table, torch.from_numpy(align.targets)))

    before = align_loss(None)
    trainer.train(config, tmp_path, dataset=small_dataset, progress=False)
    assert align_loss(tmp_path) < 0.8 * before


def test_choice_loss_teaches_object_tokens_their_shape(
    tmp_path: Path, small_dataset: data.Dataset
) -> None:
    from mm_ros.sim.scene import Colour, Shape
    from mm_ros.train import regions

    config = dataclasses.replace(BASE, stage1_steps=12, stage2_steps=0, lr_stage1=1e-2,
                                 align_weight=1.0, align_shape_weight=1.0, checkpoint_every=100,
                                 align_min_cover=0.02)  # fmt: skip
    model = trainer.TinyModel(config.model, config.seed)
    align = trainer.Alignment.of(model, small_dataset, config)
    assert align is not None
    vocab = model.tokenizer.get_vocab()
    (shape,) = align.choices  # the colour term is off
    assert (shape.slot, shape.weight) == (1, 1.0)
    assert sorted(shape.words.tolist()) == sorted(vocab[s.value] for s in Shape)
    both = trainer.Alignment.of(
        model, small_dataset, dataclasses.replace(config, align_colour_weight=0.5)
    )
    assert both is not None
    colour = next(c for c in both.choices if c.slot == 0)
    assert colour.weight == 0.5
    assert sorted(colour.words.tolist()) == sorted(vocab[c.label] for c in Colour)

    def shape_loss(folder: Path | None) -> float:
        out, table = _image_tokens(model, small_dataset, folder)
        targets = torch.from_numpy(align.targets)
        return float(regions.choice_loss(out, table, targets, 1, shape.words))

    before = shape_loss(None)
    trainer.train(config, tmp_path, dataset=small_dataset, progress=False)
    # measured: 0.18 of before with the term, 0.73 with the alignment loss alone
    assert shape_loss(tmp_path) < 0.4 * before
