"""``audio-vqvae train``: train a model on a prepared corpus."""

from __future__ import annotations

import argparse
import signal

from . import argtypes
from .common import add_config_arguments, config_from_args


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a model on a prepared corpus",
        description="Train on DIR (train.jsonl, valid.jsonl, speakers.txt from audio-vqvae prepare). An --out "
        "folder that holds last.pt is resumed; run under torchrun for several GPUs or machines.",
    )
    add_config_arguments(p)
    p.add_argument("--data", required=True, metavar="DIR", help="prepared corpus folder")
    p.add_argument("--out", required=True, metavar="EXP", help="experiment folder (checkpoints, logs, config)")
    add_run_arguments(p)
    p.set_defaults(func=run)


def add_run_arguments(p: argparse.ArgumentParser) -> None:
    """--resume / --no-resume, --stop-at and --time-limit: how far this call trains."""
    g = p.add_mutually_exclusive_group()
    g.add_argument("--resume", action="store_const", const=True, default=None, help="resume EXP/last.pt (required)")
    g.add_argument("--no-resume", dest="resume", action="store_const", const=False, help="refuse an EXP with last.pt")
    p.add_argument("--stop-at", type=argtypes.step, metavar="STEP", help="stop after this step; run again to resume")
    p.add_argument(
        "--time-limit",
        type=argtypes.minutes,
        metavar="MINUTES",
        help="stop after the step that ends past this wall time (set-up included), writing last.pt; run again "
        "to resume (e.g. a cluster job's limit minus a margin). SIGTERM or Ctrl-C also stops after the step in "
        "progress, writing last.pt (exit status 128 + the signal's number); a second one aborts at once",
    )


def run(args: argparse.Namespace) -> int:
    """Train on a prepared corpus folder."""
    from ..training import train

    cfg = config_from_args(args)
    time_limit = None if args.time_limit is None else 60 * args.time_limit
    result = train(cfg, args.data, args.out, resume=args.resume, stop_at=args.stop_at, time_limit=time_limit)
    return report(result)


def report(result) -> int:
    """Print how a training call ended; the exit status (128 + the signal's number when one stopped it)."""
    saved = f"checkpoint {result.last_checkpoint}" if result.last_checkpoint.is_file() else "no checkpoint written"
    if result.stop_signal is not None:
        print(
            f"stopped by {signal.Signals(result.stop_signal).name} at step {result.step}; {saved}; run again to resume"
        )
        return 128 + result.stop_signal  # as a shell reports that signal: a job script's next stage does not run
    print(f"trained to step {result.step}; {saved}")
    return 0
