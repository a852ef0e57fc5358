"""``audio-vqvae info``: show a config's sizes and receptive fields."""

from __future__ import annotations

import argparse
import json

from ..config import to_dict
from .common import add_config_arguments, config_from_args


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="show a config's sizes and receptive fields")
    add_config_arguments(p)
    p.add_argument("--json", action="store_true", help="print the resolved config and sizes as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print the resolved model config, receptive fields and parameter counts."""
    from ..models.vqvae import VQVAE

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
