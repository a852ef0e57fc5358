"""``audio-vqvae convert``: convert speech to other speakers' voices."""

from __future__ import annotations

import argparse

from ..errors import UsageError
from .common import add_generation_arguments, add_model_arguments, generation_options, load_model


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "convert",
        help="convert speech to other speakers' voices",
        description="Encode each file and generate it with a target speaker's voice, in batches. Inputs: any format "
        "and rate soundfile reads; outputs: 16-bit WAV at the model rate, OUT/<id>_to_<speaker>.wav.",
    )
    add_model_arguments(p)
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--speaker", help="target speaker (name from the checkpoint, or id) for all files")
    p.add_argument(
        "--pairs",
        metavar="FILE",
        help="lines 'source_path target_speaker [output_name]' (tab-separated if paths hold spaces; "
        "relative paths are relative to FILE's folder)",
    )
    add_generation_arguments(p)
    p.add_argument("files", nargs="*", metavar="FILE", help="audio files")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Convert audio files to target speakers' voices."""
    from ..inference.jobs import convert_job, generate_speech, read_pairs

    if bool(args.pairs) == bool(args.files):
        raise UsageError("give audio files with --speaker, or --pairs FILE (not both)")
    if args.pairs:
        if args.speaker:
            raise UsageError("--speaker applies to files; a --pairs file names each target speaker")
        jobs = read_pairs(args.pairs, args.out)
    else:
        if not args.speaker:
            raise UsageError("--speaker is required with audio files (or use --pairs FILE)")
        jobs = [convert_job(f, args.speaker, args.out) for f in args.files]
    model = load_model(args)
    written = generate_speech(model, jobs, chunk_seconds=args.chunk_seconds, **generation_options(args))
    print(f"wrote {len(written)} files to {args.out}")
    return 0
