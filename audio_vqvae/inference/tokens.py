"""Discrete units on disk: de-duplication, utterance ids, and the formats downstream tools read.

Formats (``--format``), all in one output folder, each written by the same code that reads it back:

- ``units``: ``units.txt``, one line per utterance, ``id|u1 u2 u3 ...`` (fairseq / textlesslib
  quantizer output). De-duplicated units have their run lengths in ``durations.txt``, same ids in the
  same order, ``id|d1 d2 ...``.
- ``bare``: ``units.bare.txt``, one utterance per line, ``u1 u2 u3 ...`` and nothing else (unit language
  models, fairseq speech-to-speech ``load_code``), with ``ids.txt`` beside it, one id per line in the
  same order; ``durations.bare.txt`` likewise when de-duplicated.
- ``tsv``: ``units.tsv``, ``id<TAB>u1 u2 ...`` per line (textlesslib's ``--preserve_name`` form), and
  ``durations.tsv`` when de-duplicated.
- ``jsonl``: ``units.jsonl``, one JSON object per line, ``{"id", "units"}``, plus ``"durations"``.
- ``codes``: ``codes/<id>.npy``, the frame codes of one utterance, int16 (int32 when K > 32768). These
  are integers, not features: the folder was ``npy/`` before, and ``--format npy`` now says so.
- ``vectors``: ``vectors/<id>.txt``, one frame per line, space-separated floats: the codebook vectors
  of the codes, or the encoder's outputs before quantization.
- ``zerospeech``: a ZeroSpeech 2021 phonetic submission in ``zerospeech/`` (``meta.yaml``,
  ``phonetic/<subset>/<name>.txt`` float frames; see ``zerospeech.py``, which also validates one).
- ``tokens.json``: what the integers mean (codebook size, hop, frame rate, sample rate, checkpoint).

Utterance ids: a file's id is its name without the last extension (``a.b c.wav`` -> ``a.b c``); a file
found in a folder given to ``encode`` keeps its path relative to that folder (``spk1/ch2/a.b c``),
with ``/`` between the parts, and its per-file outputs go in matching subfolders
(``codes/spk1/ch2/a.b c.npy``). Dots and spaces are fine everywhere. Rejected, with an error naming
the id: empty ids or parts (``a//b``, ``/a``, ``a/``), ``.``/``..`` parts, ``\\`` (ids become paths),
``|`` (the units separator), control characters such as newlines and tabs, and leading or trailing
whitespace in any part (text formats would not keep it visibly).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from .. import __version__
from ..errors import InputNotFoundError, TokenFormatError
from ..fileio import atomic_write, atomic_write_text, fsync_folder, read_utf8_lines, temp_path
from .zerospeech import META as ZEROSPEECH_META
from .zerospeech import SUBMISSION_DIR as ZEROSPEECH_DIR
from .zerospeech import feature_relpath, meta_yaml

METADATA = "tokens.json"
UNITS = "units.txt"
DURATIONS = "durations.txt"
BARE_UNITS = "units.bare.txt"
BARE_DURATIONS = "durations.bare.txt"
IDS = "ids.txt"
TSV_UNITS = "units.tsv"
TSV_DURATIONS = "durations.tsv"
JSONL = "units.jsonl"
CODES_DIR = "codes"
VECTORS_DIR = "vectors"
FORMATS = ("units", "bare", "tsv", "jsonl", "codes", "vectors", "zerospeech")
# Formats that need the (N, D) vectors of each utterance, not only its codes.
VECTOR_FORMATS = ("vectors", "zerospeech")
_RENAMED = {
    "npy": "the integer codes' format is now 'codes' (codes/<id>.npy); ZeroSpeech float features are 'zerospeech'",
}


@dataclass
class Tokens:
    """The units of one utterance.

    Attributes:
        id: utterance id.
        codes: (N,) int64 frame codes.
        latents: (N, D) float32 vectors (quantized or continuous), or None.
    """

    id: str
    codes: Tensor
    latents: Tensor | None = None


def deduplicate(codes: Tensor) -> tuple[Tensor, Tensor]:
    """Merge runs of equal codes (textlesslib's ``unique_consecutive(return_counts=True)``).

    Args:
        codes: (N,) int codes.
    Returns:
        units (M,) and durations (M,) int64, M <= N, ``expand(units, durations) == codes``.
    """
    units, durations = torch.unique_consecutive(codes, return_counts=True)
    return units, durations


def expand(units: Tensor, durations: Tensor) -> Tensor:
    """Inverse of ``deduplicate``: (M,) units repeated (M,) times each -> (N,) frame codes."""
    if units.shape != durations.shape:
        raise TokenFormatError(f"{units.numel()} units but {durations.numel()} durations")
    if durations.numel() and int(durations.min()) < 1:
        raise TokenFormatError(f"durations must be >= 1, got {int(durations.min())}")
    return torch.repeat_interleave(units, durations)


def check_id(uid: str) -> str:
    """Return ``uid`` if every format can hold it; raise TokenFormatError naming it otherwise.

    ``/`` separates the parts of an id kept from a relative path (``spk1/utt 3``); each part follows the
    rules of a file name.
    """
    bad = None
    parts = uid.split("/")
    if not uid or uid in (".", ".."):
        bad = "not a usable name"
    elif "\\" in uid:
        bad = "'\\' cannot appear (ids become paths; '/' separates their parts)"
    elif "|" in uid:
        bad = "'|' cannot appear (units files separate the id with it)"
    elif any(ord(ch) < 32 or ord(ch) == 127 for ch in uid):
        bad = "control characters (newline, tab, ...) cannot appear"
    elif any(part in ("", ".", "..") for part in parts):
        bad = "empty, '.' or '..' parts cannot appear (ids become paths under the output folder)"
    elif any(part != part.strip() for part in parts):
        bad = "leading or trailing whitespace is not allowed"
    if bad:
        raise TokenFormatError(f"utterance id {uid!r}: {bad}")
    return uid


def id_from_path(path: str | os.PathLike[str], root: str | os.PathLike[str] | None = None) -> str:
    """Utterance id of an audio file: its name without the last extension, or, under a folder ``root``,
    its relative path without the last extension with ``/`` between the parts (``spk1/a.b c``)."""
    path = Path(path)
    if root is None:
        return check_id(path.stem)
    return check_id(path.relative_to(root).with_suffix("").as_posix())


# ---- writing ------------------------------------------------------------------------------------
def check_formats(formats: Iterable[str]) -> list[str]:
    """The formats without repeats, in order; unknown (or renamed) ones raise TokenFormatError."""
    formats = list(dict.fromkeys(formats))
    for f in formats:
        if f in _RENAMED:
            raise TokenFormatError(f"token format {f!r}: {_RENAMED[f]}")
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise TokenFormatError(f"unknown token format(s) {', '.join(unknown) or '(none)'}; known: {', '.join(FORMATS)}")
    return formats


def text_files(formats: Iterable[str], dedup: bool) -> list[str]:
    """The one-line-per-utterance files of ``formats`` (durations with ``dedup``), in writing order."""
    names = []
    for f in formats:
        if f in _TEXT:
            units, durations, _ = _TEXT[f]
            names += [units] + ([durations] if dedup else []) + ([IDS] if f == "bare" else [])
        elif f == "jsonl":
            names.append(JSONL)
    return names


def output_paths(out_dir: str | Path, ids: Iterable[str], formats: Iterable[str], dedup: bool) -> list[Path]:
    """Every file an encode run will write, metadata included, so existing ones can be refused first."""
    out = Path(out_dir)
    formats = check_formats(formats)
    paths = [out / METADATA] + [out / name for name in text_files(formats, dedup)]
    ids = list(ids)
    if "codes" in formats:
        paths += [out / CODES_DIR / f"{uid}.npy" for uid in ids]
    if "vectors" in formats:
        paths += [out / VECTORS_DIR / f"{uid}.txt" for uid in ids]
    if "zerospeech" in formats:
        paths += [out / ZEROSPEECH_DIR / ZEROSPEECH_META] + [out / ZEROSPEECH_DIR / feature_relpath(u) for u in ids]
    return paths


def units_line(uid: str, values: Iterable[int]) -> str:
    """``id|v1 v2 ...``"""
    return f"{uid}|{bare_line(values)}"


def bare_line(values: Iterable[int]) -> str:
    """``v1 v2 ...``"""
    return " ".join(str(int(v)) for v in values)


def tsv_line(uid: str, values: Iterable[int]) -> str:
    """``id<TAB>v1 v2 ...``"""
    return f"{uid}\t{bare_line(values)}"


# format: (units file, durations file, line(id, values))
_TEXT = {
    "units": (UNITS, DURATIONS, units_line),
    "bare": (BARE_UNITS, BARE_DURATIONS, lambda uid, values: bare_line(values)),
    "tsv": (TSV_UNITS, TSV_DURATIONS, tsv_line),
}


def save_npy(path: str | Path, codes: Tensor, codebook_size: int) -> Path:
    """Codes (N,) as int16 (int32 if K > 32768), written atomically."""
    dtype = np.int16 if codebook_size <= 2**15 else np.int32
    array = codes.cpu().numpy().astype(dtype)
    return atomic_write(path, lambda f: np.save(f, array))


def save_vectors(path: str | Path, vectors: Tensor) -> Path:
    """(N, D) floats as text, one frame per line; 9 significant digits keep float32 values exact."""
    lines = [" ".join(f"{v:.9g}" for v in row) for row in vectors.cpu().float().tolist()]
    return atomic_write_text(path, "".join(line + "\n" for line in lines))


class TokenWriter:
    """Write the chosen formats for a stream of utterances; nothing appears in ``out_dir`` before ``close``.

    Every file goes first to a staging folder inside ``out_dir`` (``.tokens.<pid>-<random>.tmp``,
    same layout), on disk, so memory stays bounded. ``close(metadata)`` moves the files into
    place and writes ``tokens.json`` last; on an error the staging folder is removed and
    ``out_dir`` is left as it was, so a failed ``--force`` run never mixes two runs' files. The
    staging folder of a killed run is removed by the next ``fileio.folder_lock`` of ``out_dir``.

    Args:
        out_dir: output folder (created).
        formats: any of ``FORMATS``.
        dedup: de-duplicate units in the text formats (durations written alongside).
        codebook_size: K, for the .npy integer type.
        zerospeech: meta.yaml fields of a ``zerospeech`` submission (``zerospeech.meta_yaml``); its
            frame_shift comes from the metadata's ``frame_rate`` given to ``close``.
    """

    def __init__(
        self,
        out_dir: str | Path,
        formats: Iterable[str],
        dedup: bool,
        codebook_size: int,
        zerospeech: dict | None = None,
    ):
        self.out = Path(out_dir)
        self.formats = check_formats(formats)
        self.dedup = dedup
        self.codebook_size = codebook_size
        self.zerospeech = zerospeech
        self.count = 0
        self.out.mkdir(parents=True, exist_ok=True)
        for name in (UNITS, DURATIONS, JSONL):  # fixed temporary names of older versions, never written now
            (self.out / f".{name}.partial").unlink(missing_ok=True)
        self.stage: Path | None = temp_path(self.out / "tokens")
        self.stage.mkdir()
        names = text_files(self.formats, dedup)
        self._text = {n: open(self.stage / n, "w", encoding="utf-8") for n in names}

    def add(self, tokens: Tokens) -> None:
        """Write one utterance: (N,) codes, and its (N, D) latents for the vector formats."""
        uid = check_id(tokens.id)
        codes = tokens.codes.reshape(-1).long().cpu()
        if tokens.latents is None and any(f in VECTOR_FORMATS for f in self.formats):
            raise TokenFormatError(f"utterance {uid!r}: the vectors and zerospeech formats need latents")
        if "zerospeech" in self.formats:
            save_vectors(self.stage / ZEROSPEECH_DIR / feature_relpath(uid), tokens.latents)
        if "codes" in self.formats:
            save_npy(self.stage / CODES_DIR / f"{uid}.npy", codes, self.codebook_size)
        if "vectors" in self.formats:
            save_vectors(self.stage / VECTORS_DIR / f"{uid}.txt", tokens.latents)
        units, durations = deduplicate(codes) if self.dedup else (codes, None)
        for units_file, durations_file, line in (_TEXT[f] for f in self.formats if f in _TEXT):
            self._text[units_file].write(line(uid, units.tolist()) + "\n")
            if durations is not None:
                self._text[durations_file].write(line(uid, durations.tolist()) + "\n")
        if IDS in self._text:
            self._text[IDS].write(uid + "\n")
        if JSONL in self._text:
            record = {"id": uid, "units": units.tolist()}
            if durations is not None:
                record["durations"] = durations.tolist()
            self._text[JSONL].write(json.dumps(record, ensure_ascii=False) + "\n")
        self.count += 1

    def close(self, metadata: dict) -> Path:
        """Move the staged files into place and write the metadata last; returns the metadata's path."""
        for f in self._text.values():
            f.flush()
            os.fsync(f.fileno())
            f.close()
        self._text = {}
        if "zerospeech" in self.formats:
            if not metadata.get("frame_rate"):
                raise TokenFormatError("the zerospeech format needs the frame rate (metadata 'frame_rate')")
            text = meta_yaml(1 / metadata["frame_rate"], self.zerospeech)
            atomic_write_text(self.stage / ZEROSPEECH_DIR / ZEROSPEECH_META, text)
        # Without tokens.json while files move, a crash in this short window leaves no metadata
        # that describes a mix of two runs.
        (self.out / METADATA).unlink(missing_ok=True)
        folders = {self.out}
        for path in sorted(p for p in self.stage.rglob("*") if p.is_file()):
            target = self.out / path.relative_to(self.stage)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, target)
            folders.add(target.parent)
        for folder in folders:
            fsync_folder(folder)
        shutil.rmtree(self.stage)
        self.stage = None
        meta = {**metadata, "formats": self.formats, "deduplicated": self.dedup, "utterances": self.count}
        return atomic_write_text(self.out / METADATA, json.dumps(meta, indent=2) + "\n")

    def abort(self) -> None:
        """Drop everything written so far; ``out_dir`` is left as it was."""
        for f in self._text.values():
            f.close()
        self._text = {}
        if self.stage is not None:
            shutil.rmtree(self.stage, ignore_errors=True)
            self.stage = None

    def __enter__(self) -> TokenWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None or self.stage is not None:
            self.abort()


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def model_metadata(model) -> dict:
    """What a consumer needs to interpret the integers: sizes, rates and the checkpoint's identity."""
    checkpoint = None
    if model.checkpoint is not None:
        checkpoint = {
            "path": str(Path(model.checkpoint).resolve()),
            "sha256": file_sha256(model.checkpoint),
            "step": model.checkpoint_step,
        }
    return {
        "format_version": 1,
        "codebook_size": model.quantizer.codebook_size,
        "dim": model.quantizer.dim,
        "hop_length": model.hop_length,
        "sample_rate": model.sample_rate,
        "frame_rate": model.sample_rate / model.hop_length,
        "checkpoint": checkpoint,
        "audio_vqvae_version": __version__,
    }


# ---- reading ------------------------------------------------------------------------------------
_INT64 = (-(2**63), 2**63 - 1)


def _parse_values(path: Path, lineno: int, text: str) -> list[int]:
    """Space-separated integers of one line; anything else names the file, line and position."""
    values = []
    for i, v in enumerate(text.split()):
        try:
            values.append(int(v))
        except ValueError:
            raise TokenFormatError(
                f"{path}:{lineno}: units must be integers separated by spaces; position {i} is {v[:20]!r}"
            ) from None
        if not _INT64[0] <= values[-1] <= _INT64[1]:
            raise TokenFormatError(f"{path}:{lineno}: unit {v[:30]} at position {i} is out of range (64-bit integers)")
    return values


def _parse_line(path: Path, lineno: int, line: str, sep: str = "|") -> tuple[str, list[int]]:
    """``id|u1 u2 ...`` (``sep`` "|") or ``id<TAB>u1 u2 ...`` (``sep`` tab) -> (id, values)."""
    uid, found, rest = line.partition(sep)
    if not found:
        form = "id|u1 u2 ..." if sep == "|" else "id<TAB>u1 u2 ..."
        raise TokenFormatError(f"{path}:{lineno}: expected '{form}', got {line[:60]!r}")
    return uid, _parse_values(path, lineno, rest)


def _check_integers(key: str, values) -> None:
    """Refuse a JSON list that holds anything but integers (1.5, 2.0, "3", true), naming its position."""
    if not isinstance(values, list):
        raise TokenFormatError(f"{key!r} must be a list of integers, got {type(values).__name__}")
    for i, v in enumerate(values):
        if not isinstance(v, int) or isinstance(v, bool):
            raise TokenFormatError(f"{key}[{i}] is {json.dumps(v)[:20]}, not an integer")
        if not _INT64[0] <= v <= _INT64[1]:
            raise TokenFormatError(f"{key}[{i}] is {str(v)[:30]}, out of range (64-bit integers)")


def _add_unique(seen: set[str], uid: str, path: Path, lineno: int) -> None:
    """Add ``uid`` to ``seen``; an id already there is an error naming the file and line."""
    if uid in seen:
        raise TokenFormatError(f"{path}:{lineno}: duplicate utterance id {uid!r}")
    seen.add(uid)


def _read_named(path: str | Path, sep: str) -> list[tuple[str, Tensor]]:
    path = Path(path)
    if not path.is_file():
        raise InputNotFoundError(f"{path}: units file not found")
    rows, seen = [], set()
    for lineno, line in enumerate(read_utf8_lines(path, TokenFormatError), 1):
        if not line.strip():
            continue
        uid, values = _parse_line(path, lineno, line, sep)
        _add_unique(seen, uid, path, lineno)
        rows.append((uid, torch.tensor(values, dtype=torch.long)))
    return rows


def read_units(path: str | Path) -> list[tuple[str, Tensor]]:
    """Read ``id|u1 u2 ...`` lines as written (units, or durations); ids must be unique.

    Returns:
        (id, (M,) int64) pairs in file order.
    """
    return _read_named(path, "|")


def read_tsv(path: str | Path) -> list[tuple[str, Tensor]]:
    """Read ``id<TAB>u1 u2 ...`` lines (``units.tsv`` or ``durations.tsv``); ids must be unique.

    Returns:
        (id, (M,) int64) pairs in file order.
    """
    return _read_named(path, "\t")


def read_ids(path: str | Path) -> list[str]:
    """``ids.txt``: one utterance id per line, unique, each a valid id."""
    path = Path(path)
    if not path.is_file():
        raise InputNotFoundError(f"{path}: ids file not found (bare units are read with the ids.txt beside them)")
    ids, seen = [], set()
    for lineno, uid in enumerate(read_utf8_lines(path, TokenFormatError), 1):
        try:
            check_id(uid)
        except TokenFormatError as e:
            raise TokenFormatError(f"{path}:{lineno}: {e}") from None
        _add_unique(seen, uid, path, lineno)
        ids.append(uid)
    return ids


def read_bare(path: str | Path, ids: str | Path | None = None) -> list[tuple[str, Tensor]]:
    """Read bare ``u1 u2 ...`` lines (``units.bare.txt`` or ``durations.bare.txt``) with their ids.

    Every line is an utterance (a blank line too: no units), so the file must have as many lines as
    the ids file.

    Args:
        ids: the ids file; default ``ids.txt`` beside ``path``.
    Returns:
        (id, (M,) int64) pairs in file order.
    """
    path = Path(path)
    if not path.is_file():
        raise InputNotFoundError(f"{path}: units file not found")
    ids_path = path.parent / IDS if ids is None else Path(ids)
    names = read_ids(ids_path)
    lines = read_utf8_lines(path, TokenFormatError)
    if len(lines) != len(names):
        raise TokenFormatError(f"{path}: {len(lines)} lines but {len(names)} ids in {ids_path}; they must pair up")
    return [
        (uid, torch.tensor(_parse_values(path, lineno, line), dtype=torch.long))
        for lineno, (uid, line) in enumerate(zip(names, lines), 1)
    ]


def _expand_rows(
    units: list[tuple[str, Tensor]], durations: list[tuple[str, Tensor]], units_path, durations_path
) -> list[tuple[str, Tensor]]:
    if [u for u, _ in units] != [u for u, _ in durations]:
        raise TokenFormatError(f"{durations_path}: ids differ from those of {units_path} (or their order)")
    out = []
    for (uid, u), (_, d) in zip(units, durations):
        try:
            out.append((uid, expand(u, d)))
        except TokenFormatError as e:
            raise TokenFormatError(f"{durations_path}: utterance {uid!r}: {e}") from None
    return out


def read_units_with_durations(units_path: str | Path, durations_path: str | Path) -> list[tuple[str, Tensor]]:
    """De-duplicated units and their run lengths -> (id, (N,) frame codes) pairs.

    Both files are of one text format: ``id|...`` (units.txt), ``id<TAB>...`` (.tsv) or bare (.bare.txt).
    """
    read = _text_reader(Path(units_path))
    return _expand_rows(read(units_path), read(durations_path), units_path, durations_path)


def _text_reader(path: Path):
    """The reader of a units text file, from its name: ``.tsv``, ``.bare.txt``, else ``id|units``."""
    if path.suffix == ".tsv":
        return read_tsv
    if path.name.endswith(".bare.txt"):
        return read_bare
    return read_units


def read_jsonl(path: str | Path) -> list[tuple[str, Tensor]]:
    """``units.jsonl`` -> (id, (N,) frame codes) pairs, expanded by ``durations`` when present."""
    path = Path(path)
    if not path.is_file():
        raise InputNotFoundError(f"{path}: units file not found")
    rows, seen = [], set()
    for lineno, line in enumerate(read_utf8_lines(path, TokenFormatError), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            uid, units = record["id"], record["units"]
            _check_integers("units", units)
            units = torch.tensor(units, dtype=torch.long)
            durations = record.get("durations")
            if durations is not None:
                _check_integers("durations", durations)
            codes = units if durations is None else expand(units, torch.tensor(durations, dtype=torch.long))
        except TokenFormatError as e:
            raise TokenFormatError(f"{path}:{lineno}: {e}") from None
        except (json.JSONDecodeError, KeyError, TypeError, ValueError, RuntimeError, AttributeError) as e:
            raise TokenFormatError(f"{path}:{lineno}: not a units record ({type(e).__name__}: {e})") from None
        _add_unique(seen, uid, path, lineno)
        rows.append((uid, codes))
    return rows


def read_npy_dir(folder: str | Path) -> list[tuple[str, Tensor]]:
    """Every ``<id>.npy`` under a folder (``codes/``; subfolders give ``sub/id``), sorted by id
    -> (id, (N,) int64 codes) pairs. Hidden files and folders (temporaries) are skipped."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputNotFoundError(f"{folder}: folder not found")
    files = sorted(
        (f.relative_to(folder).with_suffix("").as_posix(), f)
        for f in folder.rglob("*.npy")
        if not any(part.startswith(".") for part in f.relative_to(folder).parts)
    )
    if not files:
        hint = f" (integer codes are in {CODES_DIR}/)" if (folder / CODES_DIR).is_dir() else ""
        raise InputNotFoundError(f"{folder}: no .npy files{hint}")
    return [(uid, load_npy(f)) for uid, f in files]


def load_npy(path: str | Path) -> Tensor:
    """One ``<id>.npy`` -> (N,) int64 codes; an array of floats (or anything but integers) is refused.

    Raises:
        TokenFormatError: naming the file, and the position of the first non-integer value.
    """
    try:
        array = np.load(path, allow_pickle=False).reshape(-1)
    except (OSError, ValueError) as e:
        raise TokenFormatError(f"{path}: not a .npy array ({e})") from None
    if not np.issubdtype(array.dtype, np.integer):
        where = ""
        if array.dtype.kind == "f":  # name the first value that is not a whole number, when there is one
            bad = np.flatnonzero(~np.isfinite(array) | (array != np.round(array)))
            where = f"; position {bad[0]} is {array[bad[0]].item()}" if bad.size else ""
        raise TokenFormatError(f"{path}: units must be integers, got a {array.dtype} array{where}")
    if array.dtype == np.uint64 and array.size and int(array.max()) > np.iinfo(np.int64).max:
        raise TokenFormatError(f"{path}: unit {int(array.max())} is too large")
    return torch.from_numpy(array.astype(np.int64))


def read_vectors(path: str | Path) -> Tensor:
    """A ``vectors/<id>.txt`` file -> (N, D) float32."""
    return torch.from_numpy(np.loadtxt(path, dtype=np.float32, ndmin=2))


def codes_from_vectors(vectors: Tensor, codebook: Tensor) -> Tensor:
    """Nearest codebook entry of each (N, D) vector -> (N,) int64 (exact for quantized vectors)."""
    from ..models.quantizer import nearest_codes

    return nearest_codes(vectors.float(), codebook.float().cpu())


def read_metadata(folder: str | Path) -> dict | None:
    """``tokens.json`` of a folder, or None when there is none."""
    path = Path(folder) / METADATA
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise TokenFormatError(f"{path}: not valid JSON ({e.msg})") from None


def read_tokens(path: str | Path, durations: str | Path | None = None) -> list[tuple[str, Tensor]]:
    """Frame codes from any units source: a folder of .npy codes, ``units.jsonl``, or a units text
    file: ``units.txt`` (``id|units``), ``units.tsv`` (``id<TAB>units``) or ``units.bare.txt`` (with
    the ``ids.txt`` beside it).

    A units text file is read with ``durations`` when given, else with its durations file beside it
    (``durations.txt``, ``durations.tsv``, ``durations.bare.txt``) when the folder's ``tokens.json``
    says the units are de-duplicated, else as plain frames.

    Returns:
        (id, (N,) int64 frame codes) pairs.
    """
    path = Path(path)
    if durations is not None and (path.is_dir() or path.suffix == ".jsonl"):
        raise TokenFormatError(f"{path}: durations apply to a units text file, not to .npy files or JSON lines")
    if path.is_dir():
        return read_npy_dir(path)
    if path.suffix == ".jsonl":
        return read_jsonl(path)
    read = _text_reader(path)
    if durations is None:
        meta = read_metadata(path.parent)
        beside = path.parent / {read_tsv: TSV_DURATIONS, read_bare: BARE_DURATIONS}.get(read, DURATIONS)
        if meta and meta.get("deduplicated") and beside.is_file():
            durations = beside
    if durations is None:
        return read(path)
    return _expand_rows(read(path), read(durations), path, durations)


def units_source(path: str | Path) -> Path:
    """What ``read_tokens`` should read for ``path``: a units file as it is, and in an ``encode`` output
    folder its units file (units.txt, units.jsonl, units.tsv or units.bare.txt, in that order) or its
    folder of .npy codes.

    Raises:
        InputNotFoundError: no such file or folder.
        TokenFormatError: a folder with none of these.
    """
    path = Path(path)
    if not path.exists():
        raise InputNotFoundError(f"{path}: no such units file or folder")
    if not path.is_dir():
        return path
    for name in (UNITS, JSONL, TSV_UNITS, BARE_UNITS):
        if (path / name).is_file():
            return path / name
    if (path / CODES_DIR).is_dir():
        return path / CODES_DIR
    if any(path.glob("*.npy")):
        return path
    raise TokenFormatError(f"{path}: no units here ({UNITS}, {JSONL}, {TSV_UNITS}, {BARE_UNITS} or .npy codes)")


def check_code_rows(rows: list[tuple[str, Tensor]], codebook_size: int, source: str | Path) -> None:
    """Every row has units, all in [0, codebook_size); TokenFormatError naming ``source`` and the utterance."""
    if not rows:
        raise TokenFormatError(f"{source}: no utterances")
    for uid, codes in rows:
        if codes.numel() == 0:
            raise TokenFormatError(f"{source}: utterance {uid!r} has no units")
        if int(codes.min()) < 0 or int(codes.max()) >= codebook_size:
            raise TokenFormatError(
                f"{source}: utterance {uid!r} has units outside [0, {codebook_size}) of the codebook "
                f"({int(codes.min())}..{int(codes.max())})"
            )
