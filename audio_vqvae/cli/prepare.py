"""``audio-vqvae prepare``: prepare a corpus folder (resampled audio, manifests, speakers, split)."""

from __future__ import annotations

import argparse
import importlib


def add_parser(sub: argparse._SubParsersAction) -> None:
    from ..data.corpora import CORPORA

    p = sub.add_parser(
        "prepare",
        help="prepare a corpus: resampled audio, manifests, speakers, split",
        description="Prepare a corpus folder for training and evaluation (audio_vqvae/data/corpora): "
        "'audio-vqvae prepare CORPUS --help' lists the corpus's options.",
    )
    p.add_argument("corpus", choices=CORPORA, help="vctk, librispeech, folder (your own recordings) or synthetic")
    p.add_argument("args", nargs=argparse.REMAINDER, help="the corpus's arguments (folders and options)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    module = importlib.import_module(f"audio_vqvae.data.corpora.{args.corpus}")
    return module.main(["--debug", *args.args] if args.debug else args.args)
