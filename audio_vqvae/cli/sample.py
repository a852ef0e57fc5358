"""``audio-vqvae sample``: speech from a learned prior over the codes, in a chosen voice."""

from __future__ import annotations

import argparse

from . import argtypes
from .common import add_envelope_argument


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sample",
        help="speech from a code prior (train-prior), from nothing or continuing a prompt",
        description="Sample codes from the prior and decode them with the VQ-VAE in --speaker's voice: "
        "OUT/sample_000.wav "
        "... (--count of them), or with --prompt FILE ... OUT/<id>_continued.wav, continuing each file's first "
        "--prompt-seconds. OUT/units.txt holds every sample's codes (prompt included).",
    )
    p.add_argument("--prior", required=True, metavar="CKPT", help="the prior's checkpoint (train-prior's EXP/last.pt)")
    p.add_argument("--vqvae", required=True, metavar="CKPT", help="the VQ-VAE whose codes the prior models")
    p.add_argument(
        "--speaker", required=True, help="the voice (a speaker of the VQ-VAE, and of the prior if conditioned)"
    )
    p.add_argument("--seconds", type=argtypes.seconds, default=2.0, help="seconds of new speech per sample (default 2)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--count", type=argtypes.utterance_count, default=4, help="samples without --prompt (default 4)")
    p.add_argument("--prompt", nargs="+", metavar="FILE", default=[], help="audio files to continue, one sample each")
    p.add_argument(
        "--prompt-seconds", type=argtypes.seconds, default=1.0, help="seconds of each prompt kept (default 1)"
    )
    p.add_argument("--temperature", type=argtypes.finite_temperature, default=1.0, help="the prior's; 0 is greedy")
    p.add_argument("--top-k", type=argtypes.positive_int("codes"), help="sample among the k likeliest codes")
    p.add_argument("--top-p", type=argtypes.probability, help="sample among the likeliest codes of this total mass")
    p.add_argument(
        "--decoder-temperature", type=argtypes.finite_temperature, default=1.0, help="the WaveNet's (default 1)"
    )
    p.add_argument("--batch-size", type=argtypes.utterance_count, default=8, help="sequences sampled together")
    p.add_argument("--seed", type=int, default=0, help="seed of the sampling (default 0)")
    add_envelope_argument(p)
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, ... (default auto: a GPU if there is one)")
    p.add_argument("--force", action="store_true", help="overwrite existing outputs")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Sample speech from a prior."""
    from ..inference.sampling import SampleOptions, sample_speech
    from ..models.prior import CodePrior
    from ..models.vqvae import VQVAE

    prior = CodePrior.load(args.prior, map_location=args.device)
    vqvae = VQVAE.load(args.vqvae, map_location=args.device)
    options = SampleOptions(
        temperature=args.temperature,
        top_k=args.top_k,
        top_p=args.top_p,
        decoder_temperature=args.decoder_temperature,
        batch_size=args.batch_size,
        seed=args.seed,
        envelope=args.envelope,
    )
    written = sample_speech(
        prior,
        vqvae,
        args.out,
        args.speaker,
        args.seconds,
        count=args.count,
        prompts=args.prompt,
        prompt_seconds=args.prompt_seconds,
        options=options,
        force=args.force,
    )
    print(f"wrote {len(written)} samples to {args.out}")
    return 0
