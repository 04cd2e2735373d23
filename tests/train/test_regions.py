"""Token-space alignment targets and loss (mm_ros.train.regions)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mm_ros.core.errors import ConfigError
from mm_ros.train import regions

VOCAB = {w: i for i, w in enumerate(["nothing", "left", "centre", "right", "red", "blue", "cube",
                                      "ball", *(f"<{v}>" for v in range(101))])}  # fmt: skip


def obj(colour: str, shape: str, side: str, box: list[float]) -> dict:
    percent = [round(100 * box[0] / 640), round(100 * box[1] / 480), round(100 * box[2] / 640),
               round(100 * box[3] / 480)]  # fmt: skip
    return {"colour": colour, "shape": shape, "side": side, "box_px": box, "percent": percent}


def test_regions_are_raster_strips_of_the_source_image() -> None:
    boxes = regions.token_regions(96, 8, 4, 640, 480)
    assert boxes.shape == (36, 4)  # 12 x 12 patches, strips of 4 → 12 rows x 3
    np.testing.assert_allclose(boxes[0], [0, 0, 640 / 3, 40])
    np.testing.assert_allclose(boxes[4], [640 / 3, 40, 2 * 640 / 3, 80])  # row 1, strip 1
    np.testing.assert_allclose(boxes[-1], [2 * 640 / 3, 440, 640, 480])
    assert regions.token_regions(96, 8, 1, 640, 480).shape == (144, 4)
    with pytest.raises(ConfigError, match="multiple"):
        regions.token_regions(96, 8, 5, 640, 480)


@pytest.mark.parametrize(("reducer", "columns"), [("concat4", False), ("concat4_columns", True)])
def test_regions_hold_the_patches_each_reduced_token_concatenates(
    reducer: str, columns: bool
) -> None:
    from mm_ros.adapters.reducers import make_reducer
    from mm_ros.adapters.spec import ReducerKind, ReducerSpec

    grid, patch = 12, 8
    # each patch token carries the source-pixel centre of its patch (x, y)
    ys, xs = np.meshgrid(np.arange(grid), np.arange(grid), indexing="ij")
    centres = np.stack([(xs + 0.5) * patch * 640 / 96, (ys + 0.5) * patch * 480 / 96], axis=-1)
    tokens = torch.from_numpy(centres.reshape(1, grid * grid, 2))
    reduced = make_reducer(ReducerSpec(ReducerKind(reducer)), 2, grid)(tokens)[0]
    boxes = regions.token_regions(96, patch, 4, 640, 480, columns=columns)
    assert reduced.shape == (len(boxes), 8)
    cells = reduced.reshape(len(boxes), 4, 2).numpy()
    for token, (x0, y0, x1, y1) in zip(cells, boxes, strict=True):
        assert np.all((x0 < token[:, 0]) & (token[:, 0] < x1)), (token, (x0, y0, x1, y1))
        assert np.all((y0 < token[:, 1]) & (token[:, 1] < y1)), (token, (x0, y0, x1, y1))


def test_column_regions_are_one_patch_wide_and_four_tall() -> None:
    boxes = regions.token_regions(96, 8, 4, 640, 480, columns=True)
    assert boxes.shape == (36, 4)  # 3 bands of 12 columns
    np.testing.assert_allclose(boxes[0], [0, 0, 640 / 12, 160])
    np.testing.assert_allclose(boxes[13], [640 / 12, 160, 2 * 640 / 12, 320])  # band 1, col 1
    np.testing.assert_allclose(boxes[-1], [11 * 640 / 12, 320, 640, 480])


def test_targets_name_the_nearest_covering_object_else_background() -> None:
    boxes = regions.token_regions(96, 8, 4, 640, 480)
    near = obj("red", "cube", "left", [0, 0, 200, 80])  # rows 0-1 of the left strip
    far = obj("blue", "ball", "left", [0, 0, 640, 40])  # row 0, all strips, behind `near`
    targets = regions.token_targets([[near, far]], boxes, VOCAB)
    assert targets.shape == (1, 36, regions.MAX_TARGETS)
    words = {i: w for w, i in VOCAB.items()}

    def named(t: int) -> list[str]:
        return [words[int(i)] for i in targets[0, t] if i != regions.PAD]

    assert named(0) == ["red", "cube", "left", "<0>", "<0>", "<31>", "<17>"]  # near hides far
    assert named(3) == ["red", "cube", "left", "<0>", "<0>", "<31>", "<17>"]
    assert named(1)[:2] == ["blue", "ball"]  # only the far object there
    assert named(35) == ["nothing"]
    sliver = obj("red", "cube", "left", [0, 470, 10, 480])  # 10 x 10 px of a 213 x 40 region
    assert [words[int(i)] for i in regions.token_targets([[sliver]], boxes, VOCAB)[0, 33]
            if i != regions.PAD] == ["nothing"]  # fmt: skip
    with pytest.raises(ConfigError, match="lacks"):
        regions.token_targets([[near]], boxes, {"red": 0})


def test_loss_is_low_for_a_token_made_of_its_target_words() -> None:
    torch.manual_seed(0)
    table = torch.randn(len(VOCAB), 32)
    targets = torch.full((1, 2, regions.MAX_TARGETS), regions.PAD)
    targets[0, 0, :3] = torch.tensor([VOCAB["red"], VOCAB["cube"], VOCAB["left"]])
    targets[0, 1, 0] = VOCAB["nothing"]
    aligned = torch.stack([table[targets[0, 0, :3]].sum(0), table[VOCAB["nothing"]]])[None]
    random = torch.randn(1, 2, 32)
    assert regions.alignment_loss(aligned, table, targets) < regions.alignment_loss(
        random, table, targets
    )
    tokens = random.clone().requires_grad_(True)
    loss = regions.alignment_loss(tokens, table.requires_grad_(True), targets)
    loss.backward()
    assert tokens.grad is not None
    assert tokens.grad.abs().sum() > 0
    assert table.grad is None  # the LM's table is not moved by this loss
    cosine = torch.nn.functional.normalize(aligned, dim=-1) @ (
        torch.nn.functional.normalize(table, dim=-1).T
    )
    nearest = cosine.topk(3, dim=-1).indices[0].tolist()
    words = [[list(VOCAB)[i] for i in token] for token in nearest]
    assert set(words[0]) == {"red", "cube", "left"}
    assert words[1][0] == "nothing"


def test_readout_counts_tokens_whose_nearest_word_is_their_target() -> None:
    torch.manual_seed(0)
    table = torch.randn(len(VOCAB), 32)
    targets = torch.full((1, 3, regions.MAX_TARGETS), regions.PAD)
    targets[0, 0, :2] = torch.tensor([VOCAB["red"], VOCAB["cube"]])
    targets[0, 1, :2] = torch.tensor([VOCAB["blue"], VOCAB["ball"]])
    targets[0, 2, 0] = VOCAB["nothing"]  # background: not counted
    shapes = torch.tensor([VOCAB["cube"], VOCAB["ball"]])
    colours = torch.tensor([VOCAB["red"], VOCAB["blue"]])
    # token 0 reads red cube; token 1 reads blue but *cube*; token 2 anything
    tokens = torch.stack(
        [table[VOCAB["red"]] + table[VOCAB["cube"]], table[VOCAB["blue"]] + table[VOCAB["cube"]],
         table[VOCAB["ball"]]]
    )[None]  # fmt: skip
    assert regions.word_readout(tokens, table, targets, 0, colours) == (2, 2)
    assert regions.word_readout(tokens, table, targets, 1, shapes) == (1, 2)


def test_choice_loss_asks_object_tokens_for_their_shape_only() -> None:
    torch.manual_seed(0)
    table = torch.randn(len(VOCAB), 32)
    shapes = torch.tensor([VOCAB["cube"], VOCAB["ball"]])
    targets = torch.full((1, 3, regions.MAX_TARGETS), regions.PAD)
    targets[0, 0, :2] = torch.tensor([VOCAB["red"], VOCAB["cube"]])
    targets[0, 1, :2] = torch.tensor([VOCAB["blue"], VOCAB["ball"]])
    targets[0, 2, 0] = VOCAB["nothing"]
    right = torch.stack([table[VOCAB["cube"]], table[VOCAB["ball"]], table[VOCAB["red"]]])[None]
    swapped = torch.stack([table[VOCAB["ball"]], table[VOCAB["cube"]], table[VOCAB["red"]]])[None]
    low = regions.choice_loss(right, table, targets, 1, shapes)
    assert low < 0.01  # scale 16 on unit cosines: the right word wins by far
    assert regions.choice_loss(swapped, table, targets, 1, shapes) > 5
    # the background token takes no part: whatever it shows, the loss is the same
    other = right.clone()
    other[0, 2] = torch.randn(32)
    assert torch.isclose(regions.choice_loss(other, table, targets, 1, shapes), low)
    tokens = swapped.clone().requires_grad_(True)
    regions.choice_loss(tokens, table.requires_grad_(True), targets, 1, shapes).backward()
    assert tokens.grad is not None
    assert tokens.grad[0, :2].abs().sum() > 0
    assert tokens.grad[0, 2].abs().sum() == 0
    assert table.grad is None  # the LM's table is not moved by this loss
    # no object token: zero, and still a tensor that backpropagates
    empty = torch.full_like(targets, regions.PAD)
    empty[..., 0] = VOCAB["nothing"]
    zero = regions.choice_loss(tokens, table, empty, 1, shapes)
    assert float(zero.detach()) == 0.0
    zero.backward()
