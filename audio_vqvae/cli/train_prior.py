"""``audio-vqvae train-prior``: train a prior over the codes that ``encode`` wrote."""

from __future__ import annotations

import argparse

from ..config import PriorExperiment, apply_overrides, load_overrides, merge, parse_assignments
from .common import add_override_arguments
from .train import add_run_arguments, report


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train-prior",
        help="train a prior (a causal Transformer) over the codes that encode wrote",
        description="Train a code prior on --tokens (an encode output folder, or its units file; frame codes or "
        "de-duplicated with durations). With --data, the corpus's manifests name each utterance's speaker and the "
        "prior is speaker-conditioned. An --out folder that holds last.pt is resumed; runs under torchrun too.",
    )
    p.add_argument("--tokens", required=True, metavar="DIR", help="training codes: encode's --out folder or units file")
    p.add_argument("--valid-tokens", metavar="DIR", help="held-out codes: validation loss and best.pt")
    p.add_argument("--data", metavar="DIR", help="prepared corpus whose manifests give each utterance's speaker")
    add_override_arguments(p, "model.n_layers=4 train.steps=2000")
    p.add_argument("--out", required=True, metavar="EXP", help="experiment folder (checkpoints, logs, config)")
    add_run_arguments(p)
    p.set_defaults(func=run)


def prior_config_from_args(args: argparse.Namespace) -> PriorExperiment:
    """The prior's defaults, then the YAML file's overrides, then ``--set key=value`` overrides."""
    overrides = load_overrides(args.config) if args.config else {}
    return apply_overrides(PriorExperiment(), merge(overrides, parse_assignments(args.set or [])))


def run(args: argparse.Namespace) -> int:
    """Train a code prior."""
    from ..training.prior import train_prior

    cfg = prior_config_from_args(args)
    result = train_prior(
        cfg,
        args.tokens,
        args.out,
        valid_tokens=args.valid_tokens,
        data_dir=args.data,
        resume=args.resume,
        stop_at=args.stop_at,
        time_limit=None if args.time_limit is None else 60 * args.time_limit,
    )
    return report(result)
