"""The ``audio-vqvae`` command: one subcommand per task, each a thin call into the library."""

from __future__ import annotations

import argparse
import json
import logging
import sys

from . import __version__
from .config import PRESETS, Config, experiment_config, load_overrides, merge, parse_assignments, to_dict


def config_from_args(args: argparse.Namespace) -> Config:
    """Model preset, then the YAML file's overrides, then ``--set key=value`` overrides."""
    overrides = load_overrides(args.config) if args.config else {}
    overrides = merge(overrides, parse_assignments(args.set or []))
    return experiment_config(args.preset, overrides)


def add_config_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", default="paper", choices=sorted(PRESETS), help="model preset (default: paper)")
    p.add_argument("--config", metavar="CONF.yaml", help="YAML file of overrides (model:, data:, optim:, train:)")
    p.add_argument(
        "--set", action="append", metavar="KEY=VALUE", help="override one key, e.g. model.decoder.n_stacks=2"
    )


def cmd_info(args: argparse.Namespace) -> int:
    """Print the resolved model config, receptive fields and parameter counts."""
    from .model import VQVAE

    cfg = config_from_args(args)
    info = VQVAE.from_config(cfg.model).describe()
    if args.json:
        print(json.dumps({"config": to_dict(cfg), "model": info}, indent=2))
        return 0
    print(f"hop {info['hop_length']} samples, {info['frame_rate_hz']:g} codes/s, K = {info['codebook_size']}")
    for part in ("encoder", "decoder"):
        print(
            f"{part} receptive field {info[f'{part}_receptive_field_samples']} samples "
            f"({info[f'{part}_receptive_field_ms']:.1f} ms), {info[f'{part}_parameters']:,} parameters"
        )
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    """Train on a prepared corpus folder."""
    from .train import train

    cfg = config_from_args(args)
    result = train(cfg, args.data, args.out, resume=args.resume, stop_at=args.stop_at)
    print(f"trained to step {result.step}; checkpoint {result.last_checkpoint}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="audio-vqvae",
        description="Discrete speech units with a VQ-VAE and a speaker-conditioned WaveNet decoder.",
    )
    parser.add_argument("--version", action="version", version=f"audio-vqvae {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("info", help="show a config's sizes and receptive fields")
    add_config_arguments(p)
    p.add_argument("--json", action="store_true", help="print the resolved config and sizes as JSON")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser(
        "train",
        help="train a model on a prepared corpus",
        description="Train on DIR (train.jsonl, valid.jsonl, speakers.txt from data_prep). An --out folder that "
        "holds last.pt is resumed; run under torchrun for several GPUs or machines.",
    )
    add_config_arguments(p)
    p.add_argument("--data", required=True, metavar="DIR", help="prepared corpus folder")
    p.add_argument("--out", required=True, metavar="EXP", help="experiment folder (checkpoints, logs, config)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--resume", action="store_const", const=True, default=None, help="resume EXP/last.pt (required)")
    g.add_argument("--no-resume", dest="resume", action="store_const", const=False, help="refuse an EXP with last.pt")
    p.add_argument("--stop-at", type=int, metavar="STEP", help="stop after this step; run again to resume")
    p.set_defaults(func=cmd_train)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    from .errors import USER_ERRORS

    try:
        return args.func(args)
    except USER_ERRORS as e:
        print(f"audio-vqvae {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
