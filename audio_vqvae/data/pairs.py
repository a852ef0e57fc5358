"""Conversion pairs: utterances picked round robin over the speakers, and the lines of pairs files."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..errors import InputNotFoundError
from .manifest import Utterance, read_lines


def round_robin(rows: Sequence[Utterance], limit: int | None = None) -> list[Utterance]:
    """At most ``limit`` rows (None: all), one per speaker in turn, speakers in name order (deterministic).

    Each speaker's rows are taken in the order given, so every speaker is in as soon as ``limit`` allows.
    """
    by_speaker: dict[str, list[Utterance]] = {}
    for row in rows:
        by_speaker.setdefault(row.speaker, []).append(row)
    queues = [by_speaker[s][::-1] for s in sorted(by_speaker)]  # reversed: pop() takes the first
    picked: list[Utterance] = []
    while queues and (limit is None or len(picked) < limit):
        for queue in queues:
            if queue and (limit is None or len(picked) < limit):
                picked.append(queue.pop())
        queues = [q for q in queues if q]
    return picked


def spread(rows: Sequence[Utterance], limit: int | None) -> list[Utterance]:
    """All rows in their order when they fit in ``limit`` (or it is None), else ``round_robin``'s ``limit``."""
    if limit is None or len(rows) <= limit:
        return list(rows)
    return round_robin(rows, limit)


def choose_pairs(
    rows: Sequence[Utterance], speakers: Sequence[str], n_sources: int = 4, n_targets: int = 1
) -> list[tuple[Utterance, str]]:
    """Held-out sources spread over the speakers, each converted to the next ``n_targets`` speakers.

    Deterministic: sources are taken round-robin over speakers in id order; targets follow the source
    speaker cyclically in ``speakers`` order (never the source speaker itself).

    Returns:
        (source row, target speaker) pairs, ``n_sources * n_targets`` at most.
    """
    pairs = []
    for row in round_robin(sorted(rows, key=lambda r: r.id), n_sources):
        others = [s for s in speakers if s != row.speaker]
        start = speakers.index(row.speaker) if row.speaker in speakers else 0
        others = sorted(others, key=lambda s: (speakers.index(s) - start) % len(speakers))
        pairs += [(row, target) for target in others[:n_targets]]
    return pairs


def pair_fields(path: Path) -> list[tuple[int, str, list[str]]]:
    """(line number, line, fields) of each line of a pairs file that is not blank or a ``#`` comment.

    Fields are separated by tabs when the line has one (so paths may hold spaces), else by white space.

    Raises:
        InputNotFoundError: no such file. ManifestError: bytes that are not UTF-8.
    """
    if not path.is_file():
        raise InputNotFoundError(f"{path}: pairs file not found")
    out = []
    for lineno, line in enumerate(read_lines(path), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        out.append((lineno, line, [f.strip() for f in line.split("\t")] if "\t" in line else line.split()))
    return out
