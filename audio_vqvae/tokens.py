"""Discrete units on disk: de-duplication, utterance ids, and the formats downstream tools read.

Formats, all in one output folder, each written by the same code that reads it back:

- ``npy/<id>.npy``: the frame codes of one utterance, int16 (int32 when K > 32768).
- ``units.txt``: one line per utterance, ``id|u1 u2 u3 ...`` (fairseq / textlesslib). De-duplicated
  units have their run lengths in ``durations.txt``, same ids in the same order, ``id|d1 d2 ...``.
- ``units.jsonl``: one JSON object per line, ``{"id", "units"}``, plus ``"durations"`` when de-duplicated.
- ``vectors/<id>.txt``: one frame per line, space-separated floats (ZeroSpeech 2019/2021 layout):
  the codebook vectors of the codes, or the encoder's outputs before quantization.
- ``tokens.json``: what the integers mean (codebook size, hop, frame rate, sample rate, checkpoint).

Utterance ids: a file's id is its name without the last extension (``a.b c.wav`` -> ``a.b c``).
Dots and spaces are fine everywhere. Rejected, with an error naming the id: empty ids, ``.``/``..``,
``/`` or ``\\`` (ids are file names), ``|`` (the units separator), control characters such as
newlines and tabs, and leading or trailing whitespace (text formats would not keep it visibly).
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

from . import __version__
from .errors import InputNotFoundError, TokenFormatError
from .fileio import atomic_write, atomic_write_text, fsync_folder, read_utf8_lines, temp_path

METADATA = "tokens.json"
UNITS = "units.txt"
DURATIONS = "durations.txt"
JSONL = "units.jsonl"
NPY_DIR = "npy"
VECTORS_DIR = "vectors"
FORMATS = ("npy", "units", "jsonl", "vectors")


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
    """Return ``uid`` if every format can hold it; raise TokenFormatError naming it otherwise."""
    bad = None
    if not uid or uid in (".", ".."):
        bad = "not a usable name"
    elif "/" in uid or "\\" in uid:
        bad = "'/' and '\\' cannot appear (ids are file names)"
    elif "|" in uid:
        bad = "'|' cannot appear (units files separate the id with it)"
    elif any(ord(ch) < 32 or ord(ch) == 127 for ch in uid):
        bad = "control characters (newline, tab, ...) cannot appear"
    elif uid != uid.strip():
        bad = "leading or trailing whitespace is not allowed"
    if bad:
        raise TokenFormatError(f"utterance id {uid!r}: {bad}")
    return uid


def id_from_path(path: str | os.PathLike[str]) -> str:
    """Utterance id of an audio file: its name without the last extension."""
    return check_id(Path(path).stem)


# ---- writing ------------------------------------------------------------------------------------
def output_paths(out_dir: str | Path, ids: Iterable[str], formats: Iterable[str], dedup: bool) -> list[Path]:
    """Every file an encode run will write, metadata included, so existing ones can be refused first."""
    out = Path(out_dir)
    formats = list(formats)
    paths = [out / METADATA]
    if "units" in formats:
        paths += [out / UNITS] + ([out / DURATIONS] if dedup else [])
    if "jsonl" in formats:
        paths.append(out / JSONL)
    ids = list(ids)
    if "npy" in formats:
        paths += [out / NPY_DIR / f"{uid}.npy" for uid in ids]
    if "vectors" in formats:
        paths += [out / VECTORS_DIR / f"{uid}.txt" for uid in ids]
    return paths


def units_line(uid: str, values: Iterable[int]) -> str:
    """``id|v1 v2 ...``"""
    return f"{uid}|{' '.join(str(int(v)) for v in values)}"


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
        dedup: de-duplicate units in ``units.txt`` and ``units.jsonl`` (durations written alongside).
        codebook_size: K, for the .npy integer type.
    """

    def __init__(self, out_dir: str | Path, formats: Iterable[str], dedup: bool, codebook_size: int):
        self.out = Path(out_dir)
        self.formats = list(dict.fromkeys(formats))
        unknown = [f for f in self.formats if f not in FORMATS]
        if unknown or not self.formats:
            raise TokenFormatError(
                f"unknown token format(s) {', '.join(unknown) or '(none)'}; known: {', '.join(FORMATS)}"
            )
        self.dedup = dedup
        self.codebook_size = codebook_size
        self.count = 0
        self.out.mkdir(parents=True, exist_ok=True)
        for name in (UNITS, DURATIONS, JSONL):  # fixed temporary names of older versions, never written now
            (self.out / f".{name}.partial").unlink(missing_ok=True)
        self.stage: Path | None = temp_path(self.out / "tokens")
        self.stage.mkdir()
        names = []
        if "units" in self.formats:
            names += [UNITS] + ([DURATIONS] if dedup else [])
        if "jsonl" in self.formats:
            names.append(JSONL)
        self._text = {n: open(self.stage / n, "w", encoding="utf-8") for n in names}

    def add(self, tokens: Tokens) -> None:
        uid = check_id(tokens.id)
        codes = tokens.codes.reshape(-1).long().cpu()
        if "npy" in self.formats:
            save_npy(self.stage / NPY_DIR / f"{uid}.npy", codes, self.codebook_size)
        if "vectors" in self.formats:
            if tokens.latents is None:
                raise TokenFormatError(f"utterance {uid!r}: the vectors format needs latents")
            save_vectors(self.stage / VECTORS_DIR / f"{uid}.txt", tokens.latents)
        units, durations = deduplicate(codes) if self.dedup else (codes, None)
        if UNITS in self._text:
            self._text[UNITS].write(units_line(uid, units.tolist()) + "\n")
        if DURATIONS in self._text:
            self._text[DURATIONS].write(units_line(uid, durations.tolist()) + "\n")
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


def _parse_line(path: Path, lineno: int, line: str) -> tuple[str, list[int]]:
    uid, sep, rest = line.partition("|")
    if not sep:
        raise TokenFormatError(f"{path}:{lineno}: expected 'id|u1 u2 ...', got {line[:60]!r}")
    values = []
    for i, v in enumerate(rest.split()):
        try:
            values.append(int(v))
        except ValueError:
            raise TokenFormatError(
                f"{path}:{lineno}: units must be integers separated by spaces; position {i} is {v[:20]!r}"
            ) from None
        if not _INT64[0] <= values[-1] <= _INT64[1]:
            raise TokenFormatError(f"{path}:{lineno}: unit {v[:30]} at position {i} is out of range (64-bit integers)")
    return uid, values


def _check_integers(key: str, values) -> None:
    """Refuse a JSON list that holds anything but integers (1.5, 2.0, "3", true), naming its position."""
    if not isinstance(values, list):
        raise TokenFormatError(f"{key!r} must be a list of integers, got {type(values).__name__}")
    for i, v in enumerate(values):
        if not isinstance(v, int) or isinstance(v, bool):
            raise TokenFormatError(f"{key}[{i}] is {json.dumps(v)[:20]}, not an integer")
        if not _INT64[0] <= v <= _INT64[1]:
            raise TokenFormatError(f"{key}[{i}] is {str(v)[:30]}, out of range (64-bit integers)")


def read_units(path: str | Path) -> list[tuple[str, Tensor]]:
    """Read ``id|u1 u2 ...`` lines as written (units, or durations); ids must be unique.

    Returns:
        (id, (M,) int64) pairs in file order.
    """
    path = Path(path)
    if not path.is_file():
        raise InputNotFoundError(f"{path}: units file not found")
    rows, seen = [], set()
    for lineno, line in enumerate(read_utf8_lines(path, TokenFormatError), 1):
        if not line.strip():
            continue
        uid, values = _parse_line(path, lineno, line)
        if uid in seen:
            raise TokenFormatError(f"{path}:{lineno}: duplicate utterance id {uid!r}")
        seen.add(uid)
        rows.append((uid, torch.tensor(values, dtype=torch.long)))
    return rows


def read_units_with_durations(units_path: str | Path, durations_path: str | Path) -> list[tuple[str, Tensor]]:
    """De-duplicated units and their run lengths -> (id, (N,) frame codes) pairs."""
    units, durations = read_units(units_path), read_units(durations_path)
    if [u for u, _ in units] != [u for u, _ in durations]:
        raise TokenFormatError(f"{durations_path}: ids differ from those of {units_path} (or their order)")
    out = []
    for (uid, u), (_, d) in zip(units, durations):
        try:
            out.append((uid, expand(u, d)))
        except TokenFormatError as e:
            raise TokenFormatError(f"{durations_path}: utterance {uid!r}: {e}") from None
    return out


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
        if uid in seen:
            raise TokenFormatError(f"{path}:{lineno}: duplicate utterance id {uid!r}")
        seen.add(uid)
        rows.append((uid, codes))
    return rows


def read_npy_dir(folder: str | Path) -> list[tuple[str, Tensor]]:
    """Every ``<id>.npy`` in a folder, sorted by id -> (id, (N,) int64 codes) pairs."""
    folder = Path(folder)
    files = sorted(folder.glob("*.npy"))
    if not files:
        raise InputNotFoundError(f"{folder}: no .npy files")
    return [(f.stem, load_npy(f)) for f in files]


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
    from .quantizer import nearest_codes

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
    """Frame codes from any units source: a folder of .npy files, ``units.jsonl``, or ``units.txt``.

    A units text file is read with ``durations`` when given, else with ``durations.txt`` beside it
    when the folder's ``tokens.json`` says the units are de-duplicated, else as plain frames.

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
    if durations is None:
        meta = read_metadata(path.parent)
        if meta and meta.get("deduplicated") and (path.parent / DURATIONS).is_file():
            durations = path.parent / DURATIONS
    return read_units(path) if durations is None else read_units_with_durations(path, durations)
