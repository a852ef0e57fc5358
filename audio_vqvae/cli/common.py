"""What several subcommands share: the config options, the checkpoint and the generation options."""

from __future__ import annotations

import argparse

from ..config import PRESETS, Config, experiment_config, load_overrides, merge, parse_assignments
from . import argtypes


def config_from_args(args: argparse.Namespace) -> Config:
    """Model preset, then the YAML file's overrides, then ``--set key=value`` overrides."""
    overrides = load_overrides(args.config) if args.config else {}
    overrides = merge(overrides, parse_assignments(args.set or []))
    return experiment_config(args.preset, overrides)


def add_config_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--preset",
        default="default",
        choices=sorted(PRESETS),
        help="model preset: default (paper sizes, EMA codebook, revival, mel loss), paper (as published), tiny",
    )
    add_override_arguments(p, "model.decoder.n_stacks=2 train.steps=1000")


def add_override_arguments(p: argparse.ArgumentParser, example: str) -> None:
    """--config YAML and --set KEY=VALUE: overrides of a config's defaults (``example``: two of them)."""
    p.add_argument("--config", metavar="CONF.yaml", help="YAML file of overrides (model:, data:, optim:, train:)")
    p.add_argument(
        "--set",
        action="extend",
        nargs="+",
        metavar="KEY=VALUE",
        help=f"override keys, e.g. --set {example} (repeatable)",
    )


def load_model(args: argparse.Namespace):
    """The checkpoint's model on the chosen device (auto: a GPU when there is one)."""
    from ..models.vqvae import VQVAE

    return VQVAE.load(args.ckpt, map_location=args.device)


def generation_options(args: argparse.Namespace) -> dict:
    return {
        "force": args.force,
        "batch_size": args.batch_size,
        "chunk_frames": args.chunk_frames,
        "temperature": args.temperature,
        "seed": args.seed,
        "envelope": args.envelope,
    }


def add_model_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ckpt", required=True, metavar="CKPT", help="trained checkpoint (EXP/last.pt, best.pt, ...)")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, ... (default auto: a GPU if there is one)")
    p.add_argument("--force", action="store_true", help="overwrite existing outputs")


def add_generation_arguments(p: argparse.ArgumentParser, encodes: bool = True) -> None:
    p.add_argument(
        "--batch-size", type=argtypes.utterance_count, default=8, help="utterances generated together (default 8)"
    )
    p.add_argument(
        "--temperature",
        type=argtypes.finite_temperature,
        default=1.0,
        help="sampling temperature; 0 is greedy (default 1)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the sampling (default 0)")
    add_envelope_argument(p)
    p.add_argument(
        "--chunk-frames",
        type=argtypes.frames,
        default=250,
        help="frames generated per chunk; bounds memory (default 250)",
    )
    if encodes:
        p.add_argument(
            "--chunk-seconds", type=argtypes.seconds, default=4.0, help="encoder window in seconds (default 4)"
        )


ENVELOPE_HELP = (
    "strength in [0, 1] of the mel decoder's spectral envelope imposed on the WaveNet's output (an LPC "
    "post-filter; needs a model with a mel decoder; 0: off, the default)"
)


def add_envelope_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--envelope", type=argtypes.envelope_strength, default=0.0, metavar="S", help=ENVELOPE_HELP)
