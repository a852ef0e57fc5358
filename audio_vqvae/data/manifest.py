"""Corpus manifests: one JSON line per utterance, written and read by the same code so the schema cannot drift."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ..errors import ManifestError
from ..fileio import atomic_write_text, read_utf8_lines

SPLITS = ("train", "valid", "test")


@dataclass
class Utterance:
    """One row of a manifest. ``path`` is absolute, or relative to the manifest's folder."""

    id: str
    path: str
    speaker: str
    duration: float  # seconds
    sample_rate: int
    n_samples: int
    text: str | None = None

    def to_json(self) -> str:
        return json.dumps({k: v for k, v in dataclasses.asdict(self).items() if v is not None}, ensure_ascii=False)


_REQUIRED = [f.name for f in dataclasses.fields(Utterance) if f.default is dataclasses.MISSING]
_TYPES = {"id": str, "path": str, "speaker": str, "duration": (int, float), "sample_rate": int, "n_samples": int}


def write_manifest(path: str | Path, rows: Iterable[Utterance]) -> Path:
    """Write rows as JSON lines (atomically); ids must be unique."""
    path = Path(path)
    rows = list(rows)
    seen: set[str] = set()
    for row in rows:
        if row.id in seen:
            raise ManifestError(f"{path}: duplicate utterance id '{row.id}'")
        seen.add(row.id)
    atomic_write_text(path, "".join(row.to_json() + "\n" for row in rows))
    return path


def read_lines(path: Path) -> list[str]:
    """The lines of a UTF-8 text file (a manifest, speaker list or pairs file); other bytes are a ManifestError."""
    return read_utf8_lines(path, ManifestError)


def read_manifest(path: str | Path, resolve_paths: bool = True) -> list[Utterance]:
    """Read and validate a JSON-lines manifest.

    Args:
        resolve_paths: make relative audio paths absolute, relative to the manifest's folder.
    Raises:
        ManifestError naming the file and line for a missing file, bad JSON, a missing or mistyped
        field, or a duplicate id.
    """
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"{path}: manifest not found")
    rows, seen = [], set()
    names = {f.name for f in dataclasses.fields(Utterance)}
    for lineno, line in enumerate(read_lines(path), 1):
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        try:
            data = json.loads(line)
        except json.JSONDecodeError as e:
            raise ManifestError(f"{where}: not valid JSON ({e.msg})") from None
        if not isinstance(data, dict):
            raise ManifestError(f"{where}: expected a JSON object")
        missing = [k for k in _REQUIRED if k not in data]
        if missing:
            raise ManifestError(f"{where}: missing field(s) {', '.join(missing)}")
        for key, typ in _TYPES.items():
            if not isinstance(data[key], typ) or isinstance(data[key], bool):
                raise ManifestError(f"{where}: field '{key}' has the wrong type ({data[key]!r})")
        row = Utterance(**{k: v for k, v in data.items() if k in names})
        if row.id in seen:
            raise ManifestError(f"{where}: duplicate utterance id '{row.id}'")
        seen.add(row.id)
        if resolve_paths and not os.path.isabs(row.path):
            row.path = str((path.parent / row.path).resolve())
        rows.append(row)
    return rows


def write_speakers(path: str | Path, speakers: Iterable[str]) -> Path:
    """Write the speaker list, one name per line; a speaker's id is its line number from 0."""
    speakers = list(speakers)
    if len(set(speakers)) != len(speakers):
        raise ManifestError(f"{path}: duplicate speaker names")
    path = Path(path)
    atomic_write_text(path, "".join(s + "\n" for s in speakers))
    return path


def read_speakers(path: str | Path) -> list[str]:
    """Read a speaker list written by ``write_speakers``."""
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"{path}: speaker list not found")
    speakers = [s.strip() for s in read_lines(path) if s.strip()]
    if len(set(speakers)) != len(speakers):
        raise ManifestError(f"{path}: duplicate speaker names")
    return speakers
