"""A SYNTHETIC corpus (formant-synthesised, not speech) in the prepared layout, with exact phone alignments.

Usage: ``audio-vqvae prepare synthetic OUT_DIR [--n-speakers 4] [--n-sentences 20]``
"""

from __future__ import annotations

import argparse
from pathlib import Path

from audio_vqvae.data.alignment import PhoneSegment
from audio_vqvae.data.prepare import PrepareReport, SourceUtterance, add_options, build_corpus, make_options, run_main
from audio_vqvae.errors import UsageError

NOTICE = "SYNTHETIC corpus: formant-synthesised speech-like audio, not real speech"


def prepare(out_dir: str | Path, n_speakers: int = 4, n_sentences: int = 20, seed: int = 0, **options) -> PrepareReport:
    """Generate ``audio_vqvae.data.synthetic``'s parallel corpus and write it like any prepared corpus.

    The audio is made at the model rate, so it skips ``load_audio`` but goes through the same
    checks and writer; phones.tsv holds the synthesiser's exact alignments. Every speaker reads
    every sentence, and the split holds out whole sentences (every speaker stays in train).
    Trimming is refused: it would move the audio away from its alignments.

    Args:
        out_dir: output folder (layout in ``audio_vqvae.data.prepare``).
        n_speakers, n_sentences: corpus size.
        seed: seed of the synthesiser and of the split.
        **options: other fields of ``audio_vqvae.data.prepare.PrepareOptions``.
    Returns:
        The report; its first note says the corpus is synthetic.
    """
    from audio_vqvae.data.synthetic import synthesize_corpus

    opts = make_options({**options, "seed": seed})
    if opts.trim_top_db is not None:
        raise UsageError("the synthetic corpus comes with exact alignments; trimming would break them")
    sources, sentences, phones = [], {}, {}
    for utt in synthesize_corpus(n_speakers, n_sentences, opts.sample_rate, seed):
        sources.append(SourceUtterance(utt.id, Path(f"synthetic/{utt.id}"), utt.speaker, utt.text, wav=utt.wav))
        sentences[utt.id] = f"sentence{utt.sentence}"
        phones[utt.id] = [PhoneSegment(start, end, phone) for start, end, phone in utt.phones]
    report = build_corpus(sources, out_dir, opts, sentences=sentences, phones=phones)
    report.notes.insert(0, f"{NOTICE} ({n_speakers} speakers x {n_sentences} sentences, seed {seed})")
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="audio-vqvae prepare synthetic", description=NOTICE)
    parser.add_argument("out_dir", help="output folder")
    parser.add_argument("--n-speakers", type=int, default=4)
    parser.add_argument("--n-sentences", type=int, default=20)
    add_options(parser)
    return run_main(parser, prepare, argv)


if __name__ == "__main__":
    raise SystemExit(main())
