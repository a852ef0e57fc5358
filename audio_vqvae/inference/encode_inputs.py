"""What ``encode`` reads: audio files, folders of them, JSON-lines manifests, and fairseq/textlesslib TSV manifests.

Each source gives (audio path, utterance id) pairs:

- a file: its name without the last extension (``a.b c.wav`` -> ``a.b c``);
- a folder, searched recursively for the audio extensions ``prepare folder`` accepts (hidden files
  and folders skipped): the path relative to the folder without the last extension, ``/`` between
  the parts (``spk1/ch2/utt 3``), as DAC and EnCodec keep relative paths; per-file outputs then
  go in matching subfolders (``codes/spk1/ch2/utt 3.npy``);
- a JSON-lines manifest (``prepare``'s): each row's id;
- a fairseq / textlesslib TSV manifest (``wav2vec_manifest.py``): a first line holding the root
  folder, then ``relative_path<TAB>n_samples`` per line; ids as for a folder (the relative path
  without its extension). A relative root is relative to the current folder, as fairseq reads it.

A manifest is told apart by its first line: a JSON manifest's starts with ``{``, a TSV's is a folder.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path, PurePosixPath

from ..data.manifest import read_lines, read_manifest
from ..errors import InputNotFoundError, ManifestError, TokenFormatError, UsageError
from .tokens import check_id, id_from_path


def audio_suffixes() -> frozenset[str]:
    """The audio extensions ``prepare folder`` accepts (every format libsndfile reads here)."""
    from ..data.corpora.folder import AUDIO_SUFFIXES

    return AUDIO_SUFFIXES


def folder_inputs(folder: str | Path) -> list[tuple[Path, str]]:
    """Every audio file under ``folder`` (recursive, sorted) with its relative-path id."""
    folder = Path(folder)
    suffixes = audio_suffixes()
    found = []
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if path.suffix.lower() in suffixes and not any(p.startswith(".") for p in rel.parts) and path.is_file():
            found.append((path, id_from_path(path, folder)))
    if not found:
        raise InputNotFoundError(f"{folder}: no audio files found in this folder or below ({', '.join(_shown())})")
    return found


def _shown() -> list[str]:
    common = [".wav", ".flac", ".ogg", ".mp3", ".opus"]
    return [s for s in common if s in audio_suffixes()] + ["..."]


def read_tsv_manifest(path: str | Path) -> list[tuple[Path, str]]:
    """A fairseq / textlesslib TSV manifest -> (audio path, id) pairs.

    Raises:
        ManifestError: naming the file and line, for a missing root, a line that is not
            ``relative_path<TAB>n_samples``, an absolute or ``..`` path, or a duplicate id.
    """
    path = Path(path)
    lines = read_lines(path)
    if not lines or not lines[0].strip():
        raise ManifestError(f"{path}:1: expected the root folder on the first line (fairseq TSV manifest)")
    root = Path(lines[0].strip())
    rows, seen = [], set()
    for lineno, line in enumerate(lines[1:], 2):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) < 2 or not fields[0].strip() or not fields[1].strip().isdigit():
            raise ManifestError(f"{path}:{lineno}: expected 'relative_path<TAB>n_samples', got {line[:80]!r}")
        rel = PurePosixPath(fields[0].strip().replace("\\", "/"))
        if rel.is_absolute() or ".." in rel.parts:
            raise ManifestError(f"{path}:{lineno}: {rel} must be a path relative to the root {root}")
        try:
            uid = check_id(rel.with_suffix("").as_posix())
        except TokenFormatError as e:
            raise ManifestError(f"{path}:{lineno}: {e}") from None
        if uid in seen:
            raise ManifestError(f"{path}:{lineno}: duplicate utterance id {uid!r}")
        seen.add(uid)
        rows.append((root / rel, uid))
    if not rows:
        raise ManifestError(f"{path}: no utterances")
    return rows


def manifest_inputs(path: str | Path) -> list[tuple[Path, str]]:
    """(audio path, id) pairs of a JSON-lines or a TSV manifest, told apart by the first line."""
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"{path}: manifest not found")
    first = next((line for line in read_lines(path) if line.strip()), "")
    if not first.lstrip().startswith("{"):
        return read_tsv_manifest(path)
    rows = read_manifest(path)
    if not rows:
        raise ManifestError(f"{path}: no utterances")
    return [(Path(r.path), check_id(r.id)) for r in rows]


def encode_inputs(files: Sequence[str | Path] = (), manifest: str | Path | None = None) -> tuple[list[Path], list[str]]:
    """The audio paths and ids to encode: from files and folders, or from a manifest.

    Returns:
        (sources, ids), in order; ids are unique.
    Raises:
        UsageError: both or neither given, or two inputs with one id (naming both).
    """
    if manifest is not None:
        if files:
            raise UsageError("give either a --manifest or files, not both")
        pairs = manifest_inputs(manifest)
    elif files:
        pairs = []
        for f in files:
            if Path(f).is_dir():
                pairs += folder_inputs(f)
            else:
                pairs.append((Path(f), id_from_path(f)))
    else:
        raise UsageError("nothing to encode: give files, folders or a --manifest")
    where: dict[str, Path] = {}
    for source, uid in pairs:
        if uid in where:
            raise UsageError(f"{source}: utterance id '{uid}' is also that of {where[uid]}; rename one")
        where[uid] = source
    return [s for s, _ in pairs], [u for _, u in pairs]
