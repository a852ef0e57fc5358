"""Corpus preparation shared by every data_prep module: load, check, resample once, write, split, validate.

Every corpus ends up in the same layout under ``out_dir``::

    train.jsonl valid.jsonl test.jsonl   manifests (Utterance rows; paths relative to out_dir)
    speakers.txt                         sorted speaker list; a speaker's id is its line index
    wav/<speaker>/<id>.wav               16-bit PCM at the model rate, optionally silence-trimmed
    phones.tsv                           optional phone alignments ("id start end phone", seconds)
    bad_files.tsv                        every skipped file: "path<TAB>reason", written even when empty

A corpus module lists its utterances as ``SourceUtterance``s and calls ``prepare_audio``, one of
the split functions, and ``write_corpus``; ``add_options``/``run_main`` give all of them the same
command line.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing
import os
import random
import re
import sys
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ..errors import DEBUG_VARIABLE, AudioVQVAEError, CorpusError, ManifestError, UsageError, debug_requested
from ..fileio import atomic_write_text
from .alignment import PhoneSegment, write_phone_table
from .audio import AudioError, audio_info, is_silent, load_audio, save_audio, trim_silence
from .manifest import (
    SPLITS,
    Utterance,
    read_manifest,
    read_speakers,
    write_manifest,
    write_speakers,
)

# Ids and speaker names become file and folder names.
_SAFE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]*")
STAMP = ".prepare.json"  # in wav/: the options the files there were written with


@dataclass
class PrepareOptions:
    """Options every corpus shares; each default is defined here once.

    Attributes:
        sample_rate: the model rate; audio is resampled to it once, here.
        trim_top_db: cut leading/trailing silence quieter than this many dB below the loudest
            frame (``audio.trim_silence``); None keeps the audio as it is.
        min_duration: shortest utterance kept, in seconds, after trimming.
        silence_db: a file whose peak is below this (dBFS) is skipped as silent.
        valid_fraction, test_fraction: share of utterances held out (whole sentences where the
            corpus has them).
        seed: seed of the split.
        workers: processes that load and write audio; 0 works in this process.
    """

    sample_rate: int = 16000
    trim_top_db: float | None = None
    min_duration: float = 0.1
    silence_db: float = -60.0
    valid_fraction: float = 0.05
    test_fraction: float = 0.05
    seed: int = 0
    workers: int = 0

    def __post_init__(self):  # checked before any audio is touched
        if self.sample_rate <= 0 or self.min_duration < 0 or self.workers < 0:
            raise UsageError(
                f"sample_rate must be positive, min_duration and workers non-negative "
                f"(got {self.sample_rate}, {self.min_duration}, {self.workers})"
            )
        _check_fractions(self.valid_fraction, self.test_fraction)


@dataclass
class SourceUtterance:
    """One utterance of a corpus before preparation.

    Attributes:
        id: unique id, also the output file name (letters, digits, ``_.+-``).
        path: the source audio file (any format soundfile reads, any rate).
        speaker: speaker name, also a folder name.
        text: transcript, if the corpus has one.
        wav: (T,) audio already at the model rate, for generated corpora; ``path`` then only
            names the utterance in reports.
    """

    id: str
    path: Path
    speaker: str
    text: str | None = None
    wav: np.ndarray | None = None


@dataclass
class PrepareReport:
    """What preparation kept and skipped; ``notes`` holds corpus-level remarks for the user."""

    kept: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return f"kept {self.kept}, skipped {len(self.skipped)} (see bad_files.tsv)"


def _check_name(kind: str, name: str) -> None:
    if not _SAFE_NAME.fullmatch(name):
        raise CorpusError(f"{kind} {name!r} cannot be a file name (use letters, digits and _.+- only)")


def _stamp(opts: PrepareOptions) -> dict:
    return {k: getattr(opts, k) for k in ("sample_rate", "trim_top_db", "min_duration", "silence_db")}


def _reusable(out: Path, src: SourceUtterance, opts: PrepareOptions, stamp_mtime: float) -> Utterance | None:
    """The row for an output left by an earlier run, if it can be trusted; None to (re)write it.

    Trusted only when it was written after the current options were stamped and after the source
    last changed (like make), and its header shows the model rate, one channel and enough samples.
    """
    if src.wav is not None or not out.is_file() or not Path(src.path).is_file():
        return None
    try:
        out_mtime = out.stat().st_mtime
        if out_mtime < stamp_mtime or out_mtime < Path(src.path).stat().st_mtime:
            return None
        info = audio_info(out)
    except (OSError, AudioError):
        return None
    if info.sample_rate != opts.sample_rate or info.channels != 1 or info.duration < opts.min_duration:
        return None
    return Utterance(src.id, "", src.speaker, info.duration, info.sample_rate, info.n_samples, src.text)


def _check_audio(wav: torch.Tensor, opts: PrepareOptions) -> tuple[torch.Tensor, str | None]:
    """Silence, trimming and length checks on a loaded waveform: (the audio to write, skip reason or None)."""
    if wav.numel() == 0:
        return wav, "empty (0 samples)"
    if not torch.isfinite(wav).all():
        return wav, f"{int((~torch.isfinite(wav)).sum())} samples are not finite (NaN or Inf)"
    if is_silent(wav, opts.silence_db):
        return wav, f"silent: peak below {opts.silence_db:g} dBFS"
    if opts.trim_top_db is not None:
        wav = trim_silence(wav, opts.sample_rate, opts.trim_top_db)
    duration = wav.numel() / opts.sample_rate
    if duration < opts.min_duration:
        trimmed = " after trimming" if opts.trim_top_db is not None else ""
        return wav, f"too short{trimmed}: {duration:.3f} s < {opts.min_duration:g} s"
    return wav, None


def _prepare_one(job: tuple[SourceUtterance, str, PrepareOptions, float]) -> Utterance | tuple[str, str]:
    """Load, check and write one utterance: its row, or (source path, reason) when skipped."""
    src, out_dir, opts, stamp_mtime = job
    rel = f"wav/{src.speaker}/{src.id}.wav"
    out = Path(out_dir) / rel
    row = _reusable(out, src, opts, stamp_mtime)
    if row is None:
        if src.wav is not None:
            wav = torch.as_tensor(np.asarray(src.wav, dtype=np.float32)).reshape(-1)  # (T,)
        else:
            try:
                wav = load_audio(src.path, opts.sample_rate)
            except AudioError as e:
                prefix = f"{src.path}: "
                message = str(e)
                return str(src.path), message[len(prefix) :] if message.startswith(prefix) else message
        wav, reason = _check_audio(wav, opts)
        if reason is not None:
            return str(src.path), reason
        save_audio(out, wav, opts.sample_rate, overwrite=True)  # atomic; only ever our own output file
        n = wav.numel()
        row = Utterance(src.id, "", src.speaker, n / opts.sample_rate, opts.sample_rate, n, src.text)
    row.path = rel
    return row


def _worker_init() -> None:
    torch.set_num_threads(1)  # the pool is the parallelism; threads per worker would oversubscribe


def prepare_audio(
    sources: Iterable[SourceUtterance], out_dir: str | os.PathLike[str], options: PrepareOptions | None = None
) -> tuple[dict[str, Utterance], PrepareReport]:
    """Load each source with ``load_audio`` (mono, resampled once), check it, and write it to wav/.

    A file is skipped, with its reason in the report, when it is missing or unreadable, empty,
    holds NaN/Inf, is silent (peak below ``silence_db``), or is shorter than ``min_duration``
    (after trimming). Nothing is dropped silently.

    Re-runs are cheap: an output already in wav/ is kept without reading its source when it is
    newer than both its source and the options stamp (wav/.prepare.json, rewritten whenever the
    options change, so outputs of other options are never reused, even after an interrupted run).
    Only files inside ``out_dir/wav`` are ever written, always atomically; a source file is never
    touched, and an output path that is also a source is refused. Nothing is deleted: outputs of
    utterances no longer prepared stay in wav/, and only the manifests say what the corpus holds.

    Args:
        sources: the corpus's utterances; ids must be unique.
        out_dir: output folder.
        options: shared options (defaults when None).
    Returns:
        ({id: row with a path relative to out_dir}, report), rows in the order of ``sources``.
    Raises:
        CorpusError: duplicate or unsafe ids or speaker names, or an output that would overwrite a source.
    """
    opts = options or PrepareOptions()
    out_dir = Path(out_dir)
    sources = list(sources)
    seen: set[str] = set()
    wav_dir = (out_dir / "wav").resolve()
    for src in sources:
        _check_name("utterance id", src.id)
        _check_name("speaker name", src.speaker)
        if src.id in seen:
            raise CorpusError(f"duplicate utterance id '{src.id}' ({src.path})")
        seen.add(src.id)
        if src.wav is None and Path(src.path).resolve() == wav_dir / src.speaker / f"{src.id}.wav":
            raise CorpusError(f"{src.path}: the output would overwrite this source file; choose another out_dir")

    stamp_path = out_dir / "wav" / STAMP
    stamp = _stamp(opts)
    try:
        old = json.loads(stamp_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        old = None
    if old != stamp:
        atomic_write_text(stamp_path, json.dumps(stamp) + "\n")
    stamp_mtime = stamp_path.stat().st_mtime

    jobs = [(src, str(out_dir), opts, stamp_mtime) for src in sources]
    bar = {"total": len(jobs), "unit": "file", "desc": "prepare", "disable": None}  # as encode's: off without a tty
    if opts.workers > 0 and len(jobs) > 1:
        # spawn, not fork: forking a process that has used torch's thread pools can deadlock.
        with multiprocessing.get_context("spawn").Pool(opts.workers, initializer=_worker_init) as pool:
            chunksize = max(1, len(jobs) // (8 * opts.workers))
            results = list(tqdm(pool.imap(_prepare_one, jobs, chunksize=chunksize), **bar))  # imap keeps the order
    else:
        results = [_prepare_one(job) for job in tqdm(jobs, **bar)]

    rows: dict[str, Utterance] = {}
    report = PrepareReport()
    for result in results:
        if isinstance(result, Utterance):
            rows[result.id] = result
        else:
            report.skipped.append(result)
    report.kept = len(rows)
    return rows, report


def _check_fractions(valid_fraction: float, test_fraction: float) -> None:
    if not (0 <= valid_fraction < 1 and 0 <= test_fraction < 1 and valid_fraction + test_fraction < 1):
        raise UsageError(
            f"split fractions must be in [0, 1) with a sum below 1: valid {valid_fraction}, test {test_fraction}"
        )


def split_by_sentence(
    utterances: Sequence[Utterance],
    key: Callable[[Utterance], str],
    valid_fraction: float = PrepareOptions.valid_fraction,
    test_fraction: float = PrepareOptions.test_fraction,
    seed: int = 0,
) -> dict[str, list[Utterance]]:
    """Hold out whole sentences: every reading of a sentence goes to the same split.

    Sentences are shuffled with ``seed`` and given to test, then valid, until each holds at least
    its fraction of the utterances (so a positive fraction holds out at least one sentence). Then
    every speaker missing from train gets back the last held-out sentence they read, so every
    speaker is in train (the decoder's speaker embedding must be trained). Deterministic.

    Args:
        utterances: rows to split.
        key: an utterance's sentence (e.g. normalised transcript); ``lambda u: u.id`` splits by utterance.
        valid_fraction, test_fraction: shares of utterances to hold out, each in [0, 1).
        seed: shuffling seed.
    Returns:
        {"train": [...], "valid": [...], "test": [...]}, each sorted by id.
    """
    _check_fractions(valid_fraction, test_fraction)
    groups: dict[str, list[Utterance]] = {}
    for u in utterances:
        groups.setdefault(key(u), []).append(u)
    order = sorted(groups)
    random.Random(seed).shuffle(order)
    targets = {"test": test_fraction * len(utterances), "valid": valid_fraction * len(utterances)}
    counts = {"test": 0, "valid": 0}
    assignment: dict[str, str] = {}
    held_out: list[str] = []  # in the order they were held out
    for sentence in order:
        split = next((s for s in ("test", "valid") if counts[s] < targets[s]), "train")
        assignment[sentence] = split
        if split != "train":
            counts[split] += len(groups[sentence])
            held_out.append(sentence)
    in_train = {u.speaker for s, split in assignment.items() if split == "train" for u in groups[s]}
    for speaker in sorted({u.speaker for u in utterances} - in_train):
        if speaker in in_train:  # brought in by an earlier speaker's sentence
            continue
        sentence = next(s for s in reversed(held_out) if any(u.speaker == speaker for u in groups[s]))
        assignment[sentence] = "train"
        held_out.remove(sentence)
        in_train.update(u.speaker for u in groups[sentence])
    splits: dict[str, list[Utterance]] = {split: [] for split in SPLITS}
    for sentence, split in assignment.items():
        splits[split].extend(groups[sentence])
    return {split: sorted(rows, key=lambda u: u.id) for split, rows in splits.items()}


def split_by_utterance(
    utterances: Sequence[Utterance],
    valid_fraction: float = PrepareOptions.valid_fraction,
    test_fraction: float = PrepareOptions.test_fraction,
    seed: int = 0,
) -> dict[str, list[Utterance]]:
    """A random split of utterances for corpora without sentence ids; every speaker stays in train."""
    return split_by_sentence(utterances, lambda u: u.id, valid_fraction, test_fraction, seed)


def normalize_text(text: str) -> str:
    """A sentence key from a transcript: lower case, letters, digits and apostrophes, single spaces."""
    return " ".join(re.sub(r"[^\w']+", " ", text.lower()).replace("_", " ").split())


def write_corpus(
    out_dir: str | os.PathLike[str],
    splits: Mapping[str, Sequence[Utterance]],
    report: PrepareReport,
    phones: Mapping[str, Sequence[PhoneSegment]] | None = None,
) -> None:
    """Write the manifests, speaker list, bad_files.tsv and (optionally) phones.tsv, then read them back.

    Every split in ``SPLITS`` gets a manifest, empty if absent from ``splits``. The speaker list is
    the sorted union of the splits' speakers. Alignments are written for the manifests' utterances
    only; a phones.tsv from an earlier run is left in place when ``phones`` is None.

    Raises:
        ValueError: an unknown split name, or an id in two splits.
        ManifestError: a file read back differs from what was written, or names missing audio.
    """
    out_dir = Path(out_dir)
    unknown = set(splits) - set(SPLITS)
    if unknown:
        raise ValueError(f"unknown split(s) {sorted(unknown)}; expected {SPLITS}")
    owner: dict[str, str] = {}
    for split, rows in splits.items():
        for row in rows:
            if row.id in owner:
                raise ValueError(f"utterance '{row.id}' is in both {owner[row.id]} and {split}")
            owner[row.id] = split

    for split in SPLITS:
        rows = list(splits.get(split, []))
        path = write_manifest(out_dir / f"{split}.jsonl", rows)
        back = read_manifest(path)  # validated after writing, as lhotse does
        if [r.id for r in back] != [r.id for r in rows]:
            raise ManifestError(f"{path}: read back {len(back)} rows, wrote {len(rows)}")
        missing = [r.path for r in back if not Path(r.path).is_file()]
        if missing:
            raise ManifestError(f"{path}: {len(missing)} audio file(s) missing, e.g. {missing[0]}")

    speakers = sorted({row.speaker for rows in splits.values() for row in rows})
    if read_speakers(write_speakers(out_dir / "speakers.txt", speakers)) != speakers:
        raise ManifestError(f"{out_dir / 'speakers.txt'}: read back a different speaker list")

    def clean(text: str) -> str:
        return " ".join(str(text).split())  # one line, no tabs

    lines = ["path\treason"] + [f"{clean(path)}\t{clean(reason)}" for path, reason in report.skipped]
    atomic_write_text(out_dir / "bad_files.tsv", "\n".join(lines) + "\n")

    if phones is not None:
        durations = {row.id: row.duration for rows in splits.values() for row in rows}
        kept = {utt: list(phones[utt]) for utt in sorted(durations) if utt in phones}
        write_phone_table(out_dir / "phones.tsv", kept)
        report.notes.append(
            f"alignments: {len(kept)} of {len(durations)} utterances, {len(durations) - len(kept)} have none"
        )
        overlong = sum(1 for utt, segs in kept.items() if segs and segs[-1].end > durations[utt] + 0.05)
        if overlong:
            report.notes.append(f"{overlong} alignment(s) end more than 50 ms after their audio: check they match")


def build_corpus(
    sources: Sequence[SourceUtterance],
    out_dir: str | os.PathLike[str],
    options: PrepareOptions,
    sentences: Mapping[str, str] | None = None,
    phones: Mapping[str, Sequence[PhoneSegment]] | None = None,
    skipped: Sequence[tuple[str, str]] = (),
) -> PrepareReport:
    """The whole pipeline: ``prepare_audio``, split, ``write_corpus``.

    Args:
        sources: the corpus's utterances.
        out_dir: output folder.
        options: shared options.
        sentences: {utterance id: sentence key}, to hold out whole sentences; None splits by utterance.
        phones: alignments to write to phones.tsv, by utterance id.
        skipped: (path, reason) of utterances the corpus module already rejected (e.g. a missing
            alignment); they head bad_files.tsv.
    Returns:
        The report; ``kept`` counts the rows in the manifests.
    Raises:
        CorpusError: no sources, or none usable (bad_files.tsv is written first, saying why).
    """
    if not sources and not skipped:
        raise CorpusError("no utterances to prepare")
    rows, report = prepare_audio(sources, out_dir, options)
    report.skipped[:0] = skipped
    key = (lambda u: sentences[u.id]) if sentences is not None else (lambda u: u.id)
    splits = split_by_sentence(list(rows.values()), key, options.valid_fraction, options.test_fraction, options.seed)
    write_corpus(out_dir, splits, report, phones)
    if not rows:
        total = len(sources) + len(skipped)
        raise CorpusError(f"none of the {total} files could be used; see {Path(out_dir) / 'bad_files.tsv'}")
    return report


def check_corpus_dir(corpus_dir: str | os.PathLike[str], out_dir: str | os.PathLike[str]) -> Path:
    """``corpus_dir`` as a Path; a CorpusError naming it when it is not an existing folder or is ``out_dir``."""
    path = Path(corpus_dir)
    if not path.exists():
        raise CorpusError(f"{path}: corpus folder not found")
    if not path.is_dir():
        raise CorpusError(f"{path}: not a folder")
    if path.resolve() == Path(out_dir).resolve():
        raise CorpusError(f"{path}: the output folder must not be the corpus folder")
    return path


# -- the shared command line ---------------------------------------------------------------------


def _float_or_none(text: str) -> float | None:
    return None if text.lower() in ("none", "off") else float(text)


# (flag, PrepareOptions field, type, metavar, help); defaults come from the corpus's prepare().
_FLAGS = (
    ("--sample-rate", "sample_rate", int, "HZ", "model rate (16000)"),
    ("--trim-db", "trim_top_db", _float_or_none, "DB", "trim leading/trailing silence; 'none' keeps it"),
    ("--min-duration", "min_duration", float, "S", "skip shorter files (0.1 s)"),
    ("--silence-db", "silence_db", float, "DB", "skip files whose peak is lower (-60 dBFS)"),
    ("--valid-fraction", "valid_fraction", float, "F", "share held out for valid (0.05)"),
    ("--test-fraction", "test_fraction", float, "F", "share held out for test (0.05)"),
    ("--seed", "seed", int, "N", "split seed (0)"),
    ("--workers", "workers", int, "N", "processes loading audio (0: this one)"),
)


def add_options(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the ``PrepareOptions`` flags; unset ones are left out, so the corpus's defaults apply."""
    group = parser.add_argument_group("shared options")
    for flag, dest, kind, metavar, text in _FLAGS:
        group.add_argument(flag, dest=dest, type=kind, metavar=metavar, help=text, default=argparse.SUPPRESS)
    return parser


def make_options(options: Mapping[str, object]) -> PrepareOptions:
    """``PrepareOptions`` from keyword arguments; an unknown name is a ValueError naming it."""
    names = {f.name for f in dataclasses.fields(PrepareOptions)}
    unknown = sorted(set(options) - names)
    if unknown:
        raise ValueError(f"unknown option(s) {', '.join(unknown)}; known: {', '.join(sorted(names))}")
    return PrepareOptions(**options)


def run_main(parser: argparse.ArgumentParser, prepare: Callable[..., PrepareReport], argv: list[str] | None) -> int:
    """Parse, call ``prepare(**args)``, print notes and the summary.

    A user error (``errors.AudioVQVAEError``) or a file system error (no permission, a full disk) is one
    line on stderr and exit status 1, after its traceback with ``--debug`` or ``AUDIO_VQVAE_DEBUG=1``;
    anything else is a bug and shows its traceback.
    """
    parser.add_argument(
        "--debug", action="store_true", help=f"show the traceback of an error too (or set {DEBUG_VARIABLE}=1)"
    )
    args = vars(parser.parse_args(argv))
    debug = args.pop("debug") or debug_requested()
    try:
        report = prepare(**args)
    except (AudioVQVAEError, OSError) as e:
        if debug:
            traceback.print_exc()
        print(f"{parser.prog}: error: {' '.join(str(e).split())}", file=sys.stderr)
        return 1
    for note in report.notes:
        print(note)
    print(report.summary())
    return 0
