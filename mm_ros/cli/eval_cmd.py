"""``mm-ros eval``: held-out accuracy of a composed model on the synthetic world.

Every question goes through the model service's own `AnswerEngine`, with snapshots cut from
sensor windows filled with the world's frames, audio and IMU, so the whole inference chain is
measured. Writes ``eval.md`` and ``eval.json`` into ``--out``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mm_ros.core.errors import ConfigError

EXIT_OK = 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``eval``."""
    parser = subparsers.add_parser("eval", help="held-out accuracy on the synthetic world")
    parser.add_argument("--model", default="", help="composed model folder ('' = mm-tiny)")
    parser.add_argument("--out", type=Path, default=Path("runs/eval"), help="report folder")
    parser.add_argument("--episodes", type=int, default=40, help="held-out episodes")
    parser.add_argument("--per-kind", type=int, default=60, help="questions per kind")
    parser.add_argument(
        "--unseen-per-kind", type=int, default=30, help="questions per kind, unseen phrasings"
    )
    parser.add_argument("--device", default="cpu", help="language-model device")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(handler=cmd_eval)


def cmd_eval(args: argparse.Namespace) -> int:
    """Evaluate, print the table, write the report."""
    from mm_ros.llm.backends.base import BackendConfig
    from mm_ros.train.evaluate import EvalConfig, evaluate_backend, write_report

    if args.episodes < 1 or args.per_kind < 0 or args.unseen_per_kind < 0:
        raise ConfigError("--episodes must be >= 1, --per-kind and --unseen-per-kind >= 0")
    config = EvalConfig(
        episodes=args.episodes, per_kind=args.per_kind, unseen_per_kind=args.unseen_per_kind
    )
    report = evaluate_backend(
        BackendConfig(model_dir=args.model, device=args.device),
        config,
        progress=not args.no_progress,
    )
    md, js = write_report(report, args.out)
    print(report.markdown())
    print(f"written {md} and {js}")
    return EXIT_OK
