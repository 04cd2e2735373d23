"""``mm-ros eval``: held-out accuracy of a composed model on the synthetic world.

Every question goes through the model service's own `AnswerEngine`, with snapshots cut from
sensor windows filled with the world's frames, audio and IMU, so the whole inference chain is
measured. Writes ``eval.md`` and ``eval.json`` into ``--out``.

``--phrasings FILE`` asks a person's own templates (YAML, kind → list of templates) in the
second column instead of the held-out ones; `PHRASINGS_HELP` lists the kinds and their slots.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from mm_ros.core.errors import ConfigError

EXIT_OK = 0
PHRASINGS_HELP = (
    "YAML file of your own question templates, kind -> list of templates, asked as written "
    "(no [task] typed: the service reads it from the words) on the same held-out seeds; its "
    "column replaces the unseen one. Kinds and slots: spatial (where is X? -> left/centre/"
    "right): {object}, the bare name, e.g. 'where is the {object}?'; spatial-list (what is on "
    "my left?): {side}, 'on my left' / 'in front of me' / 'on my right'; grounding (a box asked "
    "in plain words): {object}; audio (what did I just hear?): none; motion (how am I "
    "moving?): none; absent (an object not in view: right when it says it does not see it): "
    "{object}. Also the training generator's slots: {the} {a} {side} {sideword} in the object "
    "kinds, {sound1} {sound2} in audio. Kinds left out get no cell"
)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``eval``."""
    parser = subparsers.add_parser("eval", help="held-out accuracy on the synthetic world")
    parser.add_argument("--model", default="", help="composed model folder ('' = mm-tiny)")
    parser.add_argument("--out", type=Path, default=Path("runs/eval"), help="report folder")
    parser.add_argument("--episodes", type=int, help="held-out episodes (default 40)")
    # None: EvalConfig's defaults (not imported here: `mm-ros --help` stays fast)
    parser.add_argument(
        "--per-kind", type=int, help="questions per kind, training templates (default 200)"
    )
    parser.add_argument(
        "--unseen-per-kind",
        type=int,
        help="questions per kind, held-out templates never trained on, or the --phrasings "
        "file's (default 100)",
    )
    parser.add_argument("--phrasings", type=Path, metavar="FILE", help=PHRASINGS_HELP)
    parser.add_argument(
        "--device",
        default="auto",
        help="language-model device: auto (cuda when torch sees a GPU, as model_service), "
        "cpu, cuda, cuda:N; the model card's figures are measured on cpu",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="torch CPU threads (0: torch's default, all cores); 1 beside a training run",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(handler=cmd_eval)


def cmd_eval(args: argparse.Namespace) -> int:
    """Evaluate, print the table, write the report."""
    from mm_ros.llm.backends.base import BackendConfig
    from mm_ros.train.evaluate import EvalConfig, evaluate_backend, load_phrasings, write_report

    given = {
        name: value
        for name, value in (
            ("episodes", args.episodes),
            ("per_kind", args.per_kind),
            ("unseen_per_kind", args.unseen_per_kind),
        )
        if value is not None
    }
    if given.get("episodes", 1) < 1 or min(given.values(), default=0) < 0:
        raise ConfigError(
            "--episodes must be >= 1, --per-kind and --unseen-per-kind >= 0, found "
            + ", ".join(f"--{k.replace('_', '-')} {v}" for k, v in given.items())
        )
    if args.threads < 0:
        raise ConfigError(f"--threads must be >= 0 (0: torch's default), found {args.threads}")
    phrasings = load_phrasings(args.phrasings) if args.phrasings is not None else None
    config = replace(EvalConfig(), **given, phrasings=phrasings)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    report = evaluate_backend(
        BackendConfig(model_dir=args.model, device=args.device),
        config,
        progress=not args.no_progress,
    )
    md, js = write_report(report, args.out)
    print(report.markdown())
    print(f"written {md} and {js}")
    return EXIT_OK
