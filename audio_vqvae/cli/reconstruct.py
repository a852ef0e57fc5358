"""``audio-vqvae reconstruct``: re-synthesise speech with each file's own speaker."""

from __future__ import annotations

import argparse

from .common import add_generation_arguments, add_model_arguments, generation_options, load_model


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "reconstruct",
        help="re-synthesise speech with each file's own speaker",
        description="convert with each utterance's own speaker, for listening checks: from a --manifest's rows, or "
        "plain files of one --speaker. Outputs OUT/<id>.wav.",
    )
    add_model_arguments(p)
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--manifest", metavar="M.jsonl", help="prepared manifest; each row names its speaker")
    p.add_argument("--speaker", help="the speaker of plain files")
    add_generation_arguments(p)
    p.add_argument("files", nargs="*", metavar="FILE", help="audio files")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Convert each file to its own speaker (listening checks)."""
    from ..inference.jobs import generate_speech, reconstruct_jobs

    jobs = reconstruct_jobs(args.out, args.files, args.manifest, args.speaker)
    model = load_model(args)
    written = generate_speech(model, jobs, chunk_seconds=args.chunk_seconds, **generation_options(args))
    print(f"wrote {len(written)} files to {args.out}")
    return 0
