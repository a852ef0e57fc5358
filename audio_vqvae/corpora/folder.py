"""Any folder of recordings, one sub-folder per speaker, or a CSV listing ``path,speaker``.

Usage: ``audio-vqvae prepare folder CORPUS_DIR_OR_CSV OUT_DIR``
"""

from __future__ import annotations

import argparse
import csv
import re
from pathlib import Path

import soundfile as sf

from audio_vqvae.prepare import (
    PrepareReport,
    SourceUtterance,
    add_options,
    build_corpus,
    check_corpus_dir,
    make_options,
    run_main,
)

# Every container format libsndfile reads here (wav, flac, ogg, aiff, mp3 with libsndfile >= 1.1, ...).
AUDIO_SUFFIXES = frozenset("." + f.lower() for f in sf.available_formats()) | {".aif", ".oga", ".opus"}


def prepare(corpus_dir: str | Path, out_dir: str | Path, **options) -> PrepareReport:
    """Prepare ``speaker/**/*.<audio>`` under a folder, or the files a CSV lists.

    - Folder: each first-level sub-folder is a speaker; its audio files (any format soundfile
      reads, at any depth) are its utterances. Hidden files and folders, files directly in
      ``corpus_dir``, and ``out_dir`` (if inside ``corpus_dir``) are ignored.
    - CSV (``corpus_dir`` ends in .csv): rows ``path,speaker``; a first row naming the columns
      ("path", "speaker", optionally "text") is a header. Relative paths are relative to the
      CSV's folder. A listed file that is missing is a bad file, not an error.

    Ids are ``<speaker>_<path stem relative to the speaker folder (or CSV folder)>`` with '/'
    and any character other than letters, digits and ``_.+-`` replaced by '_', then made unique
    with a ``-2``, ``-3``... suffix. Speaker names are made safe the same way. The split is by
    utterance at random (no sentence ids), every speaker in train.

    Args:
        corpus_dir: the folder, or a .csv file.
        out_dir: output folder (layout in ``audio_vqvae.prepare``).
        **options: fields of ``audio_vqvae.prepare.PrepareOptions``.
    Returns:
        The report (kept, skipped, notes).
    """
    corpus = Path(corpus_dir)
    opts = make_options(options)
    if not corpus.exists():
        raise ValueError(f"{corpus}: corpus folder or CSV not found")
    if corpus.is_dir():
        check_corpus_dir(corpus, out_dir)
    if corpus.is_file():
        if corpus.suffix.lower() != ".csv":
            raise ValueError(f"{corpus}: expected a folder or a .csv file")
        entries = _csv_entries(corpus)
        notes = [f"folder corpus from {corpus.name}: {len(entries)} listed file(s)"]
    else:
        entries, ignored = _folder_entries(corpus, Path(out_dir))
        notes = [f"folder corpus: {len({e[1] for e in entries})} speaker folder(s)"]
        if ignored:
            notes.append(f"{ignored} audio file(s) directly in {corpus} ignored (put them in speaker folders)")
    if not entries:
        raise ValueError(f"{corpus}: no audio files found (expected <speaker>/<file>.wav or a path,speaker CSV)")
    sources = _unique_sources(entries)
    report = build_corpus(sources, out_dir, opts)
    report.notes[:0] = notes
    return report


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.+-]", "_", name).lstrip(".") or "_"


def _folder_entries(corpus: Path, out_dir: Path) -> tuple[list[tuple[Path, str, str, str | None]], int]:
    """(path, speaker, name for the id, text) for each audio file, and the count of ignored top-level files."""
    out_dir = out_dir.resolve()
    entries, ignored = [], 0
    for child in sorted(corpus.iterdir()):
        if child.name.startswith("."):
            continue
        if child.is_file():
            ignored += child.suffix.lower() in AUDIO_SUFFIXES
            continue
        if child.resolve() == out_dir or out_dir in child.resolve().parents:
            continue
        for path in sorted(child.rglob("*")):
            rel = path.relative_to(child)
            if path.suffix.lower() not in AUDIO_SUFFIXES or any(p.startswith(".") for p in rel.parts):
                continue
            if path.is_file() and out_dir not in path.resolve().parents:
                entries.append((path, child.name, rel.with_suffix("").as_posix(), None))
    return entries, ignored


def _csv_entries(csv_path: Path) -> list[tuple[Path, str, str, str | None]]:
    with open(csv_path, newline="", encoding="utf-8-sig") as f:
        rows = [(n, row) for n, row in enumerate(csv.reader(f), 1) if any(cell.strip() for cell in row)]
    columns = {"path": 0, "speaker": 1}
    if rows and {"path", "speaker"} <= {c.strip().lower() for c in rows[0][1]}:
        columns = {c.strip().lower(): i for i, c in enumerate(rows[0][1])}
        rows = rows[1:]
    entries = []
    for lineno, row in rows:
        cells = [c.strip() for c in row]
        if len(cells) <= max(columns["path"], columns["speaker"]) or not cells[columns["path"]]:
            raise ValueError(f"{csv_path}:{lineno}: expected path,speaker, found {','.join(cells)!r}")
        path, speaker = Path(cells[columns["path"]]), cells[columns["speaker"]]
        if not speaker:
            raise ValueError(f"{csv_path}:{lineno}: empty speaker")
        full = path if path.is_absolute() else csv_path.parent / path
        try:
            name = full.relative_to(csv_path.parent).with_suffix("").as_posix()
        except ValueError:  # outside the CSV's folder
            name = path.stem
        text = cells[columns["text"]] if "text" in columns and len(cells) > columns["text"] else None
        entries.append((full, speaker, name, text or None))
    return entries


def _unique_sources(entries: list[tuple[Path, str, str, str | None]]) -> list[SourceUtterance]:
    speakers: dict[str, str] = {}  # safe name -> original
    sources, taken = [], set()
    for path, speaker, name, text in entries:
        safe_speaker = _safe(speaker)
        if speakers.setdefault(safe_speaker, speaker) != speaker:
            raise ValueError(f"speakers '{speakers[safe_speaker]}' and '{speaker}' both become '{safe_speaker}'")
        base = _safe(f"{safe_speaker}_{name}")
        utt_id, k = base, 1
        while utt_id in taken:
            k += 1
            utt_id = f"{base}-{k}"
        taken.add(utt_id)
        sources.append(SourceUtterance(utt_id, path, safe_speaker, text))
    return sources


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="audio-vqvae prepare folder", description=prepare.__doc__.split("\n")[0])
    parser.add_argument("corpus_dir", help="folder of speaker folders, or a path,speaker CSV")
    parser.add_argument("out_dir", help="output folder")
    add_options(parser)
    return run_main(parser, prepare, argv)


if __name__ == "__main__":
    raise SystemExit(main())
