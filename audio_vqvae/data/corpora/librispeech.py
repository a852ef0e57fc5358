"""LibriSpeech (Panayotov et al. 2015): read audiobooks, 16 kHz FLAC, with optional phone alignments.

Usage: ``audio-vqvae prepare librispeech LIBRISPEECH_DIR OUT_DIR [--subsets ...] [--alignments PATH]``
"""

from __future__ import annotations

import argparse
from pathlib import Path

from audio_vqvae.data.alignment import PhoneSegment, read_phone_table, read_textgrid
from audio_vqvae.data.prepare import (
    PrepareReport,
    SourceUtterance,
    add_options,
    build_corpus,
    check_corpus_dir,
    make_options,
    normalize_text,
    run_main,
)
from audio_vqvae.errors import AlignmentError, CorpusError, InputNotFoundError, UsageError

AUDIO_SUFFIXES = (".flac", ".wav")  # .wav for copies converted from the FLAC release


def prepare(
    corpus_dir: str | Path,
    out_dir: str | Path,
    *,
    subsets: list[str] | None = None,
    alignments: str | Path | None = None,
    **options,
) -> PrepareReport:
    """Prepare one or more LibriSpeech subsets as one corpus.

    Layout: ``<subset>/<speaker>/<chapter>/<speaker>-<chapter>-<utt>.flac`` with one transcript
    per chapter, ``<speaker>-<chapter>.trans.txt`` (lines ``<utt_id> UPPER CASE TEXT``).
    ``corpus_dir`` is the LibriSpeech root (every subset in it is used unless ``subsets`` names
    some) or one subset folder.

    Split: the subsets are pooled and split by sentence (normalised transcript; "CHAPTER ONE"
    and the like recur across speakers), so every speaker is in train. The official dev-* and
    test-* speakers are disjoint from train-*, which a speaker-conditioned decoder cannot serve
    inside one corpus; to evaluate on them, prepare them into their own ``out_dir``.

    Quirks: ids (``103-1240-0000``) and speakers (``103``) are numbers; LibriSpeech is already
    16 kHz, so nothing is resampled at the default rate. Trimming is off by default and refused
    with alignments (they are timed on the untrimmed audio).

    Args:
        corpus_dir: the LibriSpeech root or a subset folder.
        out_dir: output folder (layout in ``audio_vqvae.data.prepare``).
        subsets: subset folder names to use from the root (default all).
        alignments: phone alignments: a folder of Montreal Forced Aligner TextGrids
            (``<utt_id>.TextGrid`` at any depth, e.g. ``<speaker>/<utt_id>.TextGrid``; tier "phones")
            or a phone table file (``utt_id start end phone``). They go to phones.tsv; the report
            says how many kept utterances have none.
        **options: fields of ``audio_vqvae.data.prepare.PrepareOptions``.
    Returns:
        The report (kept, skipped, notes).
    """
    corpus_dir = check_corpus_dir(corpus_dir, out_dir)
    opts = make_options(options)
    chapters = _chapter_dirs(corpus_dir, subsets)
    sources = [src for chapter in chapters for src in _chapter_sources(chapter)]
    if not sources:
        raise CorpusError(
            f"{corpus_dir}: no LibriSpeech audio found (expected <subset>/<speaker>/<chapter>/*.flac "
            "with a .trans.txt beside them)"
        )
    phones = None
    if alignments is not None:
        if opts.trim_top_db is not None:
            raise UsageError("alignments are timed on the untrimmed audio: drop --trim-db or --alignments")
        phones = _read_alignments(Path(alignments), {s.id for s in sources})
    keys = {s.id: normalize_text(s.text) if s.text else f"#{s.id}" for s in sources}
    report = build_corpus(sources, out_dir, opts, sentences=keys, phones=phones)
    report.notes.insert(0, f"LibriSpeech: {len(chapters)} chapter(s)")
    return report


def _chapter_dirs(corpus_dir: Path, subsets: list[str] | None) -> list[Path]:
    """Chapter folders (those holding a .trans.txt) of the chosen subsets, sorted."""
    if any(corpus_dir.glob("*/*/*.trans.txt")):  # a subset folder
        if subsets:
            raise UsageError(f"{corpus_dir}: is one subset folder; --subsets needs the LibriSpeech root")
        roots = [corpus_dir]
    else:
        found = sorted(p.name for p in corpus_dir.iterdir() if p.is_dir() and any(p.glob("*/*/*.trans.txt")))
        missing = sorted(set(subsets or ()) - set(found))
        if missing:
            raise CorpusError(f"{corpus_dir}: no subset(s) {', '.join(missing)} (found: {', '.join(found) or 'none'})")
        roots = [corpus_dir / name for name in (subsets or found)]
    return sorted({t.parent for root in roots for t in root.glob("*/*/*.trans.txt")})


def _chapter_sources(chapter: Path) -> list[SourceUtterance]:
    texts = {}
    for trans in sorted(chapter.glob("*.trans.txt")):
        for line in trans.read_text(encoding="utf-8", errors="replace").splitlines():
            parts = line.split(maxsplit=1)
            if parts:
                texts[parts[0]] = parts[1] if len(parts) > 1 else None
    speaker = chapter.parent.name
    sources = []
    for path in sorted(p for p in chapter.iterdir() if p.suffix.lower() in AUDIO_SUFFIXES):
        sources.append(SourceUtterance(path.stem, path, speaker, texts.get(path.stem)))
    return sources


def _read_alignments(path: Path, ids: set[str]) -> dict[str, list[PhoneSegment]]:
    """Alignments for ``ids`` from a TextGrid folder or a phone table (read before any audio work)."""
    if path.is_file():
        table = read_phone_table(path)
        return {utt: segs for utt, segs in table.items() if utt in ids}
    if not path.is_dir():
        raise InputNotFoundError(f"{path}: alignments not found (a folder of TextGrids or a phone table file)")
    grids: dict[str, Path] = {}
    for grid in sorted(path.rglob("*.TextGrid")):
        if grid.stem in grids:
            raise AlignmentError(f"{grid}: a second TextGrid for '{grid.stem}' (first: {grids[grid.stem]})")
        grids[grid.stem] = grid
    return {utt: read_textgrid(grid, tier="phones") for utt, grid in grids.items() if utt in ids}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="audio-vqvae prepare librispeech", description=prepare.__doc__.split("\n")[0])
    parser.add_argument("corpus_dir", help="LibriSpeech root or one subset folder")
    parser.add_argument("out_dir", help="output folder")
    parser.add_argument("--subsets", nargs="+", default=None, help="subset names under the root (default all)")
    parser.add_argument("--alignments", default=None, help="folder of MFA TextGrids, or a phone table")
    add_options(parser)
    return run_main(parser, prepare, argv)


if __name__ == "__main__":
    raise SystemExit(main())
