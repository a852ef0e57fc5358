"""Any folder of recordings, one sub-folder per speaker, or a CSV listing ``path,speaker`` (and more).

Usage: ``audio-vqvae prepare folder CORPUS_DIR_OR_CSV OUT_DIR``
"""

from __future__ import annotations

import argparse
import csv
import re
from dataclasses import dataclass
from pathlib import Path

import soundfile as sf

from audio_vqvae.data.alignment import PhoneSegment, read_segment_table, read_textgrid
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
from audio_vqvae.errors import CorpusError, UsageError

# Every container format libsndfile reads here (wav, flac, ogg, aiff, mp3 with libsndfile >= 1.1, ...).
AUDIO_SUFFIXES = frozenset("." + f.lower() for f in sf.available_formats()) | {".aif", ".oga", ".opus"}

# A CSV header's column names (any case) for each thing a row may give; other columns are ignored.
CSV_COLUMNS = {
    "path": ("path", "wav", "audio"),
    "speaker": ("speaker",),
    "id": ("id", "utt_id", "utterance"),
    "sentence": ("sentence", "sentence_id"),
    "text": ("text",),
    "align": ("align", "alignment", "alignments"),
}


@dataclass
class _Entry:
    """One listed audio file before ids are made unique."""

    path: Path
    speaker: str
    name: str  # the id is <speaker>_<name> when the CSV gives none
    where: str  # "file.csv:LINE" or the file, for error messages
    text: str | None = None
    utt_id: str | None = None  # from the CSV's id column
    sentence: str | None = None  # from the CSV's sentence column
    align: Path | None = None  # from the CSV's align column


def prepare(corpus_dir: str | Path, out_dir: str | Path, **options) -> PrepareReport:
    """Prepare ``speaker/**/*.<audio>`` under a folder, or the files a CSV lists.

    - Folder: each first-level sub-folder is a speaker; its audio files (any format soundfile
      reads, at any depth) are its utterances. Hidden files and folders, files directly in
      ``corpus_dir``, and ``out_dir`` (if inside ``corpus_dir``) are ignored. Anything else named
      like an audio file (a dangling symlink, a folder ``x.wav``) is a bad file, as in a CSV.
    - CSV (``corpus_dir`` ends in .csv): rows ``path,speaker``, or, after a header row, any
      columns in any order. A header names (in any case) the audio path (``path``, ``wav`` or
      ``audio``) and ``speaker``, and optionally the utterance id (``id``, ``utt_id`` or
      ``utterance``), the sentence (``sentence`` or ``sentence_id``), the transcript (``text``)
      and a phone alignment file (``align``, ``alignment`` or ``alignments``); other columns are
      ignored. Relative paths (audio and alignments) are relative to the CSV's folder. A listed
      audio file that is missing is a bad file, not an error.

    Ids are the CSV's id where it gives one, else ``<speaker>_<path stem relative to the speaker
    folder (or CSV folder)>``, with '/' and any character other than letters, digits and ``_.+-``
    replaced by '_'; generated ids are made unique with a ``-2``, ``-3``... suffix, a repeated CSV
    id is an error. Speaker names are made safe the same way.

    Split: with a sentence column, all utterances of one sentence value go to the same split (a
    test sentence is unheard in every voice); without one but with a text column, the normalised
    transcript (``prepare.normalize_text``) is the sentence; a row without either is a sentence
    of its own. Otherwise (a folder, or a CSV of paths and speakers only) the split is by
    utterance at random. Every speaker stays in train.

    Alignments: each file is a Praat TextGrid (``.TextGrid``, its "phones" tier) or a table of
    ``start end phone [more columns, ignored]`` in seconds, tab or whitespace separated, header
    optional (``alignment.read_segment_table``); they go to phones.tsv. A row with an empty align
    cell keeps its audio without an alignment. An alignment file that is missing, cannot be read
    or holds no segments skips its utterance (listed in bad_files.tsv); a malformed one is an
    ``AlignmentError`` naming the file and line. Trimming is refused with alignments: it would
    move the audio away from them.

    Args:
        corpus_dir: the folder, or a .csv file.
        out_dir: output folder (layout in ``audio_vqvae.data.prepare``).
        **options: fields of ``audio_vqvae.data.prepare.PrepareOptions``.
    Returns:
        The report (kept, skipped, notes).
    Raises:
        CorpusError: no corpus, no audio, a malformed CSV row, a repeated CSV id, or no usable audio at all.
        AlignmentError: a malformed alignment file.
        UsageError: trimming with alignments.
    """
    corpus = Path(corpus_dir)
    opts = make_options(options)
    if not corpus.exists():
        raise CorpusError(f"{corpus}: corpus folder or CSV not found")
    if corpus.is_dir():
        check_corpus_dir(corpus, out_dir)
    columns: set[str] = set()
    if corpus.is_file():
        if corpus.suffix.lower() != ".csv":
            raise CorpusError(f"{corpus}: expected a folder or a .csv file")
        entries, columns = _csv_entries(corpus)
        notes = [f"folder corpus from {corpus.name}: {len(entries)} listed file(s)"]
    else:
        entries, ignored = _folder_entries(corpus, Path(out_dir))
        notes = [f"folder corpus: {len({e.speaker for e in entries})} speaker folder(s)"]
        if ignored:
            notes.append(f"{ignored} audio file(s) directly in {corpus} ignored (put them in speaker folders)")
    if not entries:
        raise CorpusError(f"{corpus}: no audio files found (expected <speaker>/<file>.wav or a path,speaker CSV)")
    if "align" in columns and opts.trim_top_db is not None:
        raise UsageError(
            f"{corpus}: alignments are timed on the untrimmed audio: drop --trim-db or the CSV's alignment column"
        )
    sources = _unique_sources(entries)

    sentences = None
    if columns & {"sentence", "text"}:
        sentences = {src.id: _sentence_key(entry, src.id) for entry, src in zip(entries, sources)}
        how = "sentence column" if "sentence" in columns else "normalised text"
        notes.append(f"split by sentence ({how}): {len(set(sentences.values()))} sentence(s)")

    phones: dict[str, list[PhoneSegment]] | None = None
    skipped: list[tuple[str, str]] = []
    if "align" in columns:
        phones, kept = {}, []
        for entry, src in zip(entries, sources):  # read before any audio work: a malformed file fails fast
            if entry.align is not None:
                segments, reason = _read_alignment(entry.align)
                if segments is None:
                    skipped.append((str(src.path), reason))
                    continue
                phones[src.id] = segments
            kept.append(src)
        sources = kept

    report = build_corpus(sources, out_dir, opts, sentences=sentences, phones=phones, skipped=skipped)
    report.notes[:0] = notes
    return report


def _sentence_key(entry: _Entry, utt_id: str) -> str:
    """The split key: the sentence value, else the normalised transcript, else the utterance itself."""
    if entry.sentence:
        return f"sentence:{entry.sentence}"
    text = normalize_text(entry.text) if entry.text else ""
    return f"text:{text}" if text else f"utterance:{utt_id}"


def _read_alignment(path: Path) -> tuple[list[PhoneSegment] | None, str]:
    """(segments, "") or (None, why the utterance is skipped); a malformed file raises AlignmentError."""
    if not path.is_file():
        return None, f"alignment file not found: {path}"
    try:
        if path.suffix.lower() == ".textgrid":
            segments = read_textgrid(path, tier="phones")
        else:
            segments = read_segment_table(path)
    except OSError as e:
        return None, f"cannot read alignment file {path}: {e.strerror or e}"
    if not segments:
        return None, f"alignment file holds no segments: {path}"
    return segments, ""


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.+-]", "_", name).lstrip(".") or "_"


def _folder_entries(corpus: Path, out_dir: Path) -> tuple[list[_Entry], int]:
    """An entry for each audio file (or anything else named like one), and the count of ignored top-level files."""
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
            # not is_file(): a dangling symlink or a folder named x.wav is a bad file (bad_files.tsv), as in a CSV
            if out_dir not in path.resolve().parents:
                entries.append(_Entry(path, child.name, rel.with_suffix("").as_posix(), str(path)))
    return entries, ignored


def _header_columns(csv_path: Path, cells: list[str]) -> dict[str, int] | None:
    """{what: column index} when ``cells`` is a header (it names an audio path and a speaker column), else None."""
    names = [c.strip().lower() for c in cells]
    found: dict[str, int] = {}
    for what, aliases in CSV_COLUMNS.items():
        hits = [i for i, name in enumerate(names) if name in aliases]
        if len(hits) > 1:
            shown = " and ".join(repr(cells[i].strip()) for i in hits)
            raise CorpusError(f"{csv_path}:1: columns {shown} both name the {what} column; keep one")
        if hits:
            found[what] = hits[0]
    return found if {"path", "speaker"} <= set(found) else None


def _csv_entries(csv_path: Path) -> tuple[list[_Entry], set[str]]:
    """The CSV's rows as entries, and the optional columns its header names (id, sentence, text, align)."""
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as f:
            rows = [(n, row) for n, row in enumerate(csv.reader(f), 1) if any(cell.strip() for cell in row)]
    except UnicodeDecodeError as e:
        raise CorpusError(f"{csv_path}: not UTF-8 text ({e.reason})") from None
    columns = {"path": 0, "speaker": 1}
    if rows:
        header = _header_columns(csv_path, rows[0][1])
        if header is not None:
            columns = header
            rows = rows[1:]
    entries = []
    for lineno, row in rows:
        cells = [c.strip() for c in row]

        def cell(what: str, cells: list[str] = cells) -> str:  # "" where the row has no such column
            i = columns.get(what)
            return cells[i] if i is not None and i < len(cells) else ""

        where = f"{csv_path}:{lineno}"
        if len(cells) <= max(columns["path"], columns["speaker"]) or not cell("path"):
            raise CorpusError(f"{where}: expected path,speaker, found {','.join(cells)!r}")
        path, speaker = Path(cell("path")), cell("speaker")
        if not speaker:
            raise CorpusError(f"{where}: empty speaker")
        full = path if path.is_absolute() else csv_path.parent / path
        try:
            name = full.relative_to(csv_path.parent).with_suffix("").as_posix()
        except ValueError:  # outside the CSV's folder
            name = path.stem
        align = Path(cell("align")) if cell("align") else None
        if align is not None and not align.is_absolute():
            align = csv_path.parent / align
        text, utt_id, sentence = (cell(what) or None for what in ("text", "id", "sentence"))
        entries.append(_Entry(full, speaker, name, where, text, utt_id, sentence, align))
    return entries, set(columns) - {"path", "speaker"}


def _unique_sources(entries: list[_Entry]) -> list[SourceUtterance]:
    """One source per entry, in order: CSV ids as given (made safe), others ``<speaker>_<name>`` made unique."""
    given: dict[str, str] = {}  # safe CSV id -> where it is given
    for e in entries:
        if e.utt_id is not None:
            safe_id = _safe(e.utt_id)
            if safe_id in given:
                raise CorpusError(f"{e.where}: utterance id '{e.utt_id}' ('{safe_id}') is already at {given[safe_id]}")
            given[safe_id] = e.where
    speakers: dict[str, str] = {}  # safe name -> original
    sources, taken = [], set(given)
    for e in entries:
        safe_speaker = _safe(e.speaker)
        if speakers.setdefault(safe_speaker, e.speaker) != e.speaker:
            raise CorpusError(f"speakers '{speakers[safe_speaker]}' and '{e.speaker}' both become '{safe_speaker}'")
        if e.utt_id is not None:
            utt_id = _safe(e.utt_id)
        else:
            base = _safe(f"{safe_speaker}_{e.name}")
            utt_id, k = base, 1
            while utt_id in taken:
                k += 1
                utt_id = f"{base}-{k}"
            taken.add(utt_id)
        sources.append(SourceUtterance(utt_id, e.path, safe_speaker, e.text))
    return sources


CSV_HELP = """\
a CSV: rows path,speaker, or a header row naming (any case) the columns path|wav|audio and speaker,
and optionally id|utt_id|utterance (the utterance id), sentence|sentence_id (utterances of one
sentence are held out together; without it a text column's normalised transcript is the sentence),
text, and align|alignment|alignments (a TextGrid with a "phones" tier, or a "start end phone ..."
table in seconds, per utterance; written to phones.tsv; --trim-db is then refused). Other columns
are ignored; relative paths are relative to the CSV's folder. An alignment file that is missing
or empty skips its utterance (see bad_files.tsv); a malformed one is an error naming its line.

example (the development corpus of shared/devcorpus/make_corpus.py):
  audio-vqvae prepare folder /path/to/devc4/utterances.csv data/devc4 --test-fraction 0.1"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="audio-vqvae prepare folder",
        description=prepare.__doc__.split("\n")[0],
        epilog=CSV_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "corpus_dir", help="folder of speaker folders (split by utterance), or a CSV listing the files (see below)"
    )
    parser.add_argument("out_dir", help="output folder")
    add_options(parser)
    return run_main(parser, prepare, argv)


if __name__ == "__main__":
    raise SystemExit(main())
