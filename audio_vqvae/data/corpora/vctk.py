"""VCTK (CSTR, Edinburgh): 109/110 English speakers, 48 kHz, versions 0.92 (FLAC, two mics) and 0.80 (WAV).

Usage: ``audio-vqvae prepare vctk VCTK_DIR OUT_DIR [--mic mic1|mic2|both]``
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

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

MICS = ("mic1", "mic2", "both")
TRIM_TOP_DB_080 = 30.0  # 0.80 keeps long leading/trailing pauses with room noise; 0.92 is trimmed already

_NAME_092 = re.compile(r"(?P<speaker>[a-z]+\d+)_(?P<number>\d+)_(?P<mic>mic[12])\.flac")
_NAME_080 = re.compile(r"(?P<speaker>[a-z]+\d+)_(?P<number>\d+)\.wav")


def prepare(
    corpus_dir: str | Path,
    out_dir: str | Path,
    *,
    mic: str = "mic1",
    trim_top_db: float | None | str = "auto",
    **options,
) -> PrepareReport:
    """Prepare VCTK 0.92 or 0.80, whichever ``corpus_dir`` holds.

    Layouts (detected):

    - 0.92: ``wav48_silence_trimmed/pXXX/pXXX_YYY_mic1.flac`` and ``_mic2.flac`` (48 kHz FLAC,
      two microphones: mic1 an omni-directional DPA 4035, mic2 a small-diaphragm Sennheiser MKH 800);
      transcripts ``txt/pXXX/pXXX_YYY.txt``.
    - 0.80: ``wav48/pXXX/pXXX_YYY.wav`` (48 kHz WAV, one mic), transcripts ``txt/``.

    Quirks:

    - p315 has no transcripts (lost): its audio is kept with ``text`` None.
    - p280 has no mic2 recordings in 0.92. With ``mic="mic2"``, any utterance without a mic2 file
      (all of p280's) falls back to its mic1 file, so the speaker set does not depend on the mic;
      the report notes how many did. With ``mic="both"`` such utterances keep their one file.
    - s5 (0.92 only) is an extra speaker; it is kept like the others.
    - Utterance numbers are not sentence ids: the first ~24 of each speaker are shared passages
      (elicitation paragraph, rainbow passage) read by everyone, the rest are newspaper sentences
      chosen per speaker. So the split holds out sentences by normalised transcript. An utterance
      without a transcript (p315) joins the sentence most speakers read under its number, or is a
      sentence of its own where no one else has that number.
    - 0.92 is already silence-trimmed; 0.80 is not, so it is trimmed at 30 dB by default.

    Args:
        corpus_dir: the VCTK folder (holding ``wav48_silence_trimmed/`` or ``wav48/``, and ``txt/``).
        out_dir: output folder (layout in ``audio_vqvae.data.prepare``).
        mic: "mic1", "mic2" or "both" (0.92 only). Ids are ``pXXX_YYY``; with "both",
            ``pXXX_YYY_mic1`` and ``pXXX_YYY_mic2`` (same sentence, so always the same split).
        trim_top_db: silence trimming in dB, None for none, "auto" for none on 0.92 and 30 dB on 0.80.
        **options: fields of ``audio_vqvae.data.prepare.PrepareOptions`` (sample_rate, min_duration, ...).
    Returns:
        The report (kept, skipped, notes).
    """
    corpus_dir = check_corpus_dir(corpus_dir, out_dir)
    if mic not in MICS:
        raise UsageError(f"mic must be one of {', '.join(MICS)}, got {mic!r}")
    report_notes: list[str] = []
    if (corpus_dir / "wav48_silence_trimmed").is_dir():
        version = "0.92"
        sources, fallbacks = _sources_092(corpus_dir, mic)
        if fallbacks:
            speakers = sorted({s for s, _ in fallbacks})
            report_notes.append(
                f"{len(fallbacks)} utterance(s) have no mic2 file and use mic1 instead "
                f"(speakers: {', '.join(speakers)})"
            )
    elif (corpus_dir / "wav48").is_dir():
        version = "0.80"
        if mic != "mic1":
            raise UsageError(f"{corpus_dir}: VCTK 0.80 has one microphone; --mic {mic} needs 0.92")
        sources = _sources_080(corpus_dir)
    else:
        raise CorpusError(f"{corpus_dir}: no wav48_silence_trimmed/ (VCTK 0.92) or wav48/ (VCTK 0.80) folder")
    if not sources:
        raise CorpusError(f"{corpus_dir}: no VCTK {version} audio files found")
    if trim_top_db == "auto":
        trim_top_db = TRIM_TOP_DB_080 if version == "0.80" else None
    opts = make_options({**options, "trim_top_db": trim_top_db})

    untranscribed = sorted({s.speaker for s in sources if s.text is None})
    if untranscribed:
        report_notes.append(f"no transcripts for speaker(s) {', '.join(untranscribed)}: audio kept, text empty")
    report = build_corpus(sources, out_dir, opts, sentences=_sentence_keys(sources))
    report.notes[:0] = [f"VCTK {version}, mic {mic}"] + report_notes
    return report


def _transcript(corpus_dir: Path, speaker: str, stem: str) -> str | None:
    path = corpus_dir / "txt" / speaker / f"{stem}.txt"
    if not path.is_file():
        return None
    text = " ".join(path.read_text(encoding="utf-8", errors="replace").split())
    return text or None


def _sources_092(corpus_dir: Path, mic: str) -> tuple[list[SourceUtterance], list[tuple[str, str]]]:
    """Sources and the (speaker, utterance) pairs that fell back from mic2 to mic1."""
    files: dict[tuple[str, str], dict[str, Path]] = {}  # (speaker, number) -> {mic: path}
    for path in sorted((corpus_dir / "wav48_silence_trimmed").glob("*/*.flac")):
        m = _NAME_092.fullmatch(path.name)
        if m and m["speaker"] == path.parent.name:
            files.setdefault((m["speaker"], m["number"]), {})[m["mic"]] = path
    sources, fallbacks = [], []
    for (speaker, number), by_mic in sorted(files.items()):
        stem = f"{speaker}_{number}"
        text = _transcript(corpus_dir, speaker, stem)
        if mic == "both":
            chosen = [(f"{stem}_{m}", p) for m, p in sorted(by_mic.items())]
        elif mic in by_mic:
            chosen = [(stem, by_mic[mic])]
        elif mic == "mic2":
            chosen = [(stem, by_mic["mic1"])]
            fallbacks.append((speaker, stem))
        else:  # mic1 asked, only mic2 recorded: use it rather than lose the utterance
            chosen = [(stem, by_mic["mic2"])]
        sources += [SourceUtterance(utt_id, path, speaker, text) for utt_id, path in chosen]
    return sources, fallbacks


def _sources_080(corpus_dir: Path) -> list[SourceUtterance]:
    sources = []
    for path in sorted((corpus_dir / "wav48").glob("*/*.wav")):
        m = _NAME_080.fullmatch(path.name)
        if m and m["speaker"] == path.parent.name:
            stem = path.stem
            sources.append(SourceUtterance(stem, path, m["speaker"], _transcript(corpus_dir, m["speaker"], stem)))
    return sources


def _number(utt_id: str) -> str:
    return utt_id.split("_")[1]


def _sentence_keys(sources: list[SourceUtterance]) -> dict[str, str]:
    """{id: sentence key}: the normalised transcript; without one, the text most read under the same number."""
    by_number: dict[str, Counter] = {}
    for s in sources:
        if s.text is not None:
            by_number.setdefault(_number(s.id), Counter())[normalize_text(s.text)] += 1
    keys = {}
    for s in sources:
        if s.text is not None:
            keys[s.id] = normalize_text(s.text)
        elif _number(s.id) in by_number:
            counts = by_number[_number(s.id)]
            keys[s.id] = min(counts, key=lambda text: (-counts[text], text))  # most common, ties by text
        else:
            keys[s.id] = f"#{s.speaker}_{_number(s.id)}"  # both mics of one reading share it
    return keys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="audio-vqvae prepare vctk", description=prepare.__doc__.split("\n")[0])
    parser.add_argument("corpus_dir", help="VCTK folder (0.92 or 0.80)")
    parser.add_argument("out_dir", help="output folder")
    parser.add_argument("--mic", choices=MICS, default="mic1", help="0.92 microphone (default mic1)")
    add_options(parser)
    return run_main(parser, prepare, argv)


if __name__ == "__main__":
    raise SystemExit(main())
