"""``audio-vqvae decode``: speech from discrete tokens."""

from __future__ import annotations

import argparse

from .common import add_generation_arguments, add_model_arguments, generation_options, load_model


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "decode",
        help="speech from discrete tokens",
        description="Generate speech from units with one speaker's voice: a units.txt (plain frames, or "
        "de-duplicated with --durations or tokens.json + durations.txt beside it), a units.jsonl, or a folder "
        "of .npy files. Outputs OUT/<id>.wav.",
    )
    add_model_arguments(p)
    p.add_argument("--units", required=True, metavar="FILE", help="units.txt, units.jsonl, or a folder of .npy")
    p.add_argument("--durations", metavar="FILE", help="run lengths of de-duplicated units (id|d1 d2 ...)")
    p.add_argument("--speaker", required=True, help="speaker name (from the checkpoint) or id")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    add_generation_arguments(p, encodes=False)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Speech from a units file with any speaker."""
    from ..inference.jobs import decode_units

    model = load_model(args)
    written = decode_units(
        model, args.units, args.speaker, args.out, durations=args.durations, **generation_options(args)
    )
    print(f"wrote {len(written)} files to {args.out}")
    return 0
