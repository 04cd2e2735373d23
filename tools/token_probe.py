#!/usr/bin/env python3
"""What a trained mm-tiny's image tokens say: colour and shape read off them, on held-out pictures.

    python3 tools/token_probe.py [MODEL_DIR] [--episodes N]

Each image token over an object is read as the nearest of the colour words (and of the shape
words) in the LM's embedding table, the read-out the token-space alignment loss trains
(`mm_ros.train.regions`). The share of tokens read right says how much of an object the image
pathway delivers before the LM does anything: a wrong shape here is a wrong answer to "what is
on my left?" however well the LM reads. Held-out world seeds (`data.heldout_seeds`), so the
figure is about pictures the model never saw. Prints one line per attribute and exits 0.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from mm_ros.train import data as data_mod
from mm_ros.train import regions, trainer

SHIPPED = Path(__file__).resolve().parents[1] / "mm_ros" / "models" / "mm-tiny"


def readout(model: trainer.TinyModel, dataset: data_mod.Dataset) -> dict[str, tuple[int, int]]:
    """Object tokens whose colour / shape is read right, and how many (`regions.word_readout`)."""
    # colour, shape, side, box of each token's object (`regions.token_targets`)
    targets = trainer.image_token_targets(model, dataset, trainer.TrainConfig().align_min_cover)
    vocab = model.tokenizer.get_vocab()
    model.train(False)
    with torch.no_grad():
        tokens = model.adapters["image"](torch.from_numpy(dataset.images.astype(np.float32)))
    table = model.llm.get_input_embeddings().weight
    return {
        name: regions.word_readout(
            tokens, table, torch.from_numpy(targets), slot, torch.tensor([vocab[w] for w in words])
        )
        for slot, (name, words) in enumerate(trainer.SLOT_WORDS.items())
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", nargs="?", type=Path, default=SHIPPED, help="model folder")
    parser.add_argument("--episodes", type=int, default=10, help="held-out episodes (30 pictures)")
    args = parser.parse_args()
    model = trainer.TinyModel(trainer.TrainConfig().model, seed=0)
    model.load_folder(args.model)
    dataset = data_mod.build_dataset(
        data_mod.DataConfig(seeds=data_mod.heldout_seeds(args.episodes)), trainer.inputs_of(model)
    )
    for name, (right, count) in readout(model, dataset).items():
        print(f"{name}: {100 * right / max(1, count):.1f} % of {count} object tokens read right")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
