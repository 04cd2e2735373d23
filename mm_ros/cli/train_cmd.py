"""``mm-ros train tiny``: train mm-tiny on the synthetic world (the AnyMAL recipe, two stages).

``mm-ros train tiny --seed 0`` reproduces the shipped model; ``--ship`` copies the result into
the package (``mm_ros/models/mm-tiny``), where the model service finds its default model.
Heavy imports happen inside the handler.
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING

from mm_ros.core.errors import ConfigError

if TYPE_CHECKING:
    from mm_ros.train.trainer import TrainConfig

EXIT_OK = 0
STAGE1_SHARE = 0.008  # of --steps: alignment is short for a model whose LM starts random


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``train``."""
    parser = subparsers.add_parser("train", help="train a model on the synthetic world")
    sub = parser.add_subparsers(dest="train_command", metavar="MODEL")
    tiny = sub.add_parser("tiny", help="train mm-tiny (image + audio + IMU adapters, tiny Llama)")
    tiny.add_argument("--seed", type=int, default=0, help="initialisation and data order")
    tiny.add_argument("--out", type=Path, default=Path("runs/mm-tiny"), help="run folder")
    tiny.add_argument(
        "--steps", type=int, default=0, help="steps of stages 1 and 2 (0: the shipped recipe)"
    )
    tiny.add_argument(
        "--stage3-steps",
        type=int,
        default=None,
        help="steps of stage 3, crowd tuning (default: the shipped recipe's; 0: none)",
    )
    tiny.add_argument(
        "--start-stage3",
        type=Path,
        default=None,
        metavar="MODEL",
        help="skip stages 1 and 2: continue this finished stage-2 model of the same seed and "
        "recipe with stage 3 (e.g. the model a run with --stage3-steps 0 wrote)",
    )
    tiny.add_argument("--episodes", type=int, default=0, help="training episodes (0: default)")
    tiny.add_argument("--batch", type=int, default=0, help="questions per step (0: default)")
    tiny.add_argument(
        "--stop-after", type=int, default=0, help="end at this step (the schedule of --steps)"
    )
    tiny.add_argument(
        "--lr", type=float, default=0.0, help="stage-2 peak learning rate (0: the recipe's)"
    )
    tiny.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint")
    tiny.add_argument("--device", default="", help="cpu | cuda (default: cuda when present)")
    tiny.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    tiny.add_argument(
        "--align-weight",
        type=float,
        default=None,
        help="token-space alignment loss of the image tokens (default: the recipe's 1; 0: off)",
    )
    tiny.add_argument(
        "--shape-weight",
        type=float,
        default=None,
        help="loss of each object token picking its object's shape among the shape words "
        "(default: the recipe's; 0: off)",
    )
    tiny.add_argument(
        "--colour-weight",
        type=float,
        default=None,
        help="the same for the colour among the colour words (default: the recipe's; 0: off)",
    )
    tiny.add_argument(
        "--one-object",
        action="store_true",
        help="ask side, box, identify and refer questions about one object per snapshot "
        "(default: about every object in view)",
    )
    tiny.add_argument(
        "--crowd-curriculum",
        default="",
        metavar="STEP:MOST,...",
        help="image questions only about snapshots with at most MOST objects in view from "
        "stage-2 step STEP on, e.g. 0:1,400:2,800:99 (default: no limit, the shipped recipe)",
    )
    tiny.add_argument(
        "--antialias",
        action="store_true",
        help="resize camera frames with antialiasing (default: sampling, the shipped recipe)",
    )
    tiny.add_argument("--ship", action="store_true", help="copy the model into the package")
    tiny.add_argument("--no-progress", action="store_true", help="no progress bar")
    tiny.set_defaults(handler=cmd_tiny)
    parser.set_defaults(handler=lambda _args: _usage(parser))


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def cmd_tiny(args: argparse.Namespace) -> int:
    """Train, write OUT/mm-tiny, optionally ship it into the package."""
    from mm_ros.train.trainer import start_stage3, train

    config = recipe(args)
    started = time.monotonic()
    if args.start_stage3 is not None:
        if args.resume:
            raise ConfigError("--start-stage3 starts a run; --resume continues one: use one")
        start_stage3(args.start_stage3, args.out, config)
    folder = train(
        config,
        args.out,
        resume=args.resume or args.start_stage3 is not None,
        progress=not args.no_progress,
        stop_after=args.stop_after,
    )
    print(f"mm-tiny written to {folder} in {time.monotonic() - started:.0f} s")
    if args.ship:
        from mm_ros.llm.backends.composed import PACKAGE_MODEL

        ship(folder, args.out, PACKAGE_MODEL)
        print(
            f"shipped into {PACKAGE_MODEL} with its training log; the model card was kept: "
            "update its figures from `mm-ros eval --out runs/eval` (and copy eval.json)"
        )
    return EXIT_OK


def recipe(args: argparse.Namespace) -> TrainConfig:
    """Return the shipped recipe with the command line's changes."""
    import dataclasses

    from mm_ros.train.trainer import TrainConfig, parse_crowd

    numbers = (args.steps, args.episodes, args.batch, args.lr)
    weights = (args.align_weight or 0.0, args.shape_weight or 0.0, args.colour_weight or 0.0)
    if min(*numbers, *weights, args.stage3_steps or 0) < 0:
        raise ConfigError(
            "--steps, --stage3-steps, --episodes, --batch, --align-weight, --shape-weight, "
            "--colour-weight and --lr must be >= 0"
        )
    config = TrainConfig(
        seed=args.seed,
        device=args.device,
        threads=args.threads,
        crowd_curriculum=parse_crowd(args.crowd_curriculum),
    )
    changes: dict[str, object] = {}
    if args.align_weight is not None:
        changes["align_weight"] = args.align_weight
    if args.shape_weight is not None:
        changes["align_shape_weight"] = args.shape_weight
    if args.colour_weight is not None:
        changes["align_colour_weight"] = args.colour_weight
    if args.one_object:
        changes["every_object"] = False
    if args.steps:
        stage1 = round(args.steps * STAGE1_SHARE)
        changes.update(stage1_steps=stage1, stage2_steps=args.steps - stage1)
    if args.stage3_steps is not None:
        changes["stage3_steps"] = args.stage3_steps
    if args.antialias:
        changes["model"] = dataclasses.replace(config.model, image_antialias=True)
    # 0 means "the recipe's" for these
    for flag, name in (("episodes", "train_episodes"), ("batch", "batch"), ("lr", "lr_stage2")):
        if getattr(args, flag):
            changes[name] = getattr(args, flag)
    return dataclasses.replace(config, **changes)  # type: ignore[arg-type]


def ship(model: Path, run: Path, package: Path) -> None:
    """Replace ``package`` with the trained ``model``, keeping its model card (README.md).

    The run's ``train_log.jsonl`` goes beside the weights; ``eval.json`` does not survive, since
    it described the previous weights.
    """
    card = package / "README.md"
    kept = card.read_text() if card.is_file() else None
    if package.exists():
        shutil.rmtree(package)
    shutil.copytree(model, package)
    log = run / "train_log.jsonl"
    if log.is_file():
        shutil.copy2(log, package / log.name)
    if kept is not None:
        card.write_text(kept)
