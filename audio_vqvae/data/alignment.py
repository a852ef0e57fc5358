"""Phone alignments: Praat TextGrids (as written by Montreal Forced Aligner), phone tables (one per corpus or
per utterance), frame labels.

Labels are kept as written, except that an empty interval becomes "sil": "sil", "sp" and "spn"
(MFA's silence, short pause and spoken noise) are ordinary labels here, since what counts as
silence is the evaluator's decision, not the reader's.
"""

from __future__ import annotations

import bisect
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import AlignmentError
from ..fileio import atomic_write_text

SILENCE = "sil"  # the label given to empty intervals
TABLE_HEADER = ("id", "start", "end", "phone")


@dataclass(frozen=True)
class PhoneSegment:
    """One phone, from ``start`` to ``end`` seconds (half-open: [start, end))."""

    start: float
    end: float
    phone: str


# Praat text files, long ("xmin = 0", "intervals [1]:") and short (bare values), hold the same
# sequence of values; the long format only adds "name =" labels and "[n]" indices. So both are
# read as one stream of strings ("" escapes a quote), numbers and <flags>, skipping the rest.
_TOKEN = re.compile(
    r'"(?P<string>(?:[^"]|"")*)"'
    r"|\[[^\]\n]*\]"  # "item [1]:", "intervals [3]:": indices, not values
    r"|<(?P<flag>\w+)>"  # <exists>, <absent>
    r"|(?<![\w.])(?P<number>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)(?![\w.])"
)


def _read_text(path: Path) -> str:
    data = path.read_bytes()
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):  # Praat writes UTF-16 when a label needs it
        return data.decode("utf-16")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise AlignmentError(f"{path}: not UTF-8 or UTF-16 text ({e.reason})") from None


class _Tokens:
    """The values of a Praat text file, each with its line number for error messages."""

    def __init__(self, path: Path, text: str):
        self.path = path
        newlines = [m.start() for m in re.finditer("\n", text)]
        self.items: list[tuple[str, str, int]] = []  # (kind, value, line)
        for m in _TOKEN.finditer(text):
            kind = m.lastgroup
            if kind is None:  # an index in brackets
                continue
            value = m.group(kind).replace('""', '"') if kind == "string" else m.group(kind)
            self.items.append((kind, value, bisect.bisect_right(newlines, m.start()) + 1))
        self.pos = 0

    def _next(self, kind: str, what: str) -> str:
        if self.pos >= len(self.items):
            line = self.items[-1][2] if self.items else 1
            raise AlignmentError(f"{self.path}:{line}: file ends where {what} was expected")
        got_kind, value, line = self.items[self.pos]
        if got_kind != kind:
            shown = f'"{value}"' if got_kind == "string" else f"<{value}>" if got_kind == "flag" else value
            raise AlignmentError(f"{self.path}:{line}: expected {what}, found {shown}")
        self.pos += 1
        return value

    def line(self) -> int:
        return self.items[min(self.pos, len(self.items) - 1)][2] if self.items else 1

    def string(self, what: str) -> str:
        return self._next("string", what)

    def number(self, what: str) -> float:
        return float(self._next("number", what))

    def count(self, what: str) -> int:
        line = self.line()
        value = self.number(what)
        if value != int(value) or value < 0:
            raise AlignmentError(f"{self.path}:{line}: {what} must be a whole number, found {value:g}")
        return int(value)

    def flag(self, what: str) -> str:
        return self._next("flag", what)


def read_textgrid(path: str | os.PathLike[str], tier: str = "phones") -> list[PhoneSegment]:
    """Read one interval tier of a Praat TextGrid, long (ooTextFile) or short format.

    Montreal Forced Aligner writes a "words" and a "phones" tier. Empty labels become "sil";
    other labels ("sil", "sp", "spn", stress digits) are kept as written.

    Args:
        path: the .TextGrid file (UTF-8, or UTF-16 with a byte-order mark).
        tier: name of the interval tier to read.
    Returns:
        The tier's intervals in time order.
    Raises:
        AlignmentError: naming the file and line, for a file that is not a TextGrid, a malformed
            value, or a missing tier (the message lists the tiers there are).
    """
    path = Path(path)
    if not path.is_file():
        raise AlignmentError(f"{path}: TextGrid not found")
    tokens = _Tokens(path, _read_text(path))
    file_type, object_class = tokens.string('File type = "ooTextFile"'), tokens.string('Object class = "TextGrid"')
    if file_type != "ooTextFile" or object_class != "TextGrid":
        raise AlignmentError(f"{path}:1: not a Praat TextGrid text file ({file_type!r}, {object_class!r})")
    tokens.number("xmin")
    tokens.number("xmax")
    if tokens.flag("tiers? <exists>") != "exists":
        raise AlignmentError(f"{path}: the TextGrid has no tiers")
    names = []
    for _ in range(tokens.count("the number of tiers")):
        tier_class, name = tokens.string("a tier class"), tokens.string("a tier name")
        names.append(name)
        tokens.number("tier xmin")
        tokens.number("tier xmax")
        n = tokens.count("the number of intervals")
        if tier_class == "IntervalTier":
            segments = []
            for _ in range(n):
                line = tokens.line()
                start, end, label = tokens.number("xmin"), tokens.number("xmax"), tokens.string("a label")
                if not (math.isfinite(start) and math.isfinite(end)) or end < start:
                    raise AlignmentError(f"{path}:{line}: interval ends before it starts ({start} > {end})")
                segments.append(PhoneSegment(start, end, label.strip() or SILENCE))
            if name == tier:
                return segments
        elif tier_class == "TextTier":  # points: (time, mark) pairs
            if name == tier:
                raise AlignmentError(f"{path}: tier '{tier}' is a point tier (TextTier), not an interval tier")
            for _ in range(n):
                tokens.number("a point time")
                tokens.string("a point mark")
        else:
            raise AlignmentError(f"{path}:{tokens.line()}: unknown tier class '{tier_class}'")
    raise AlignmentError(f"{path}: no tier named '{tier}' (tiers: {', '.join(map(repr, names)) or 'none'})")


def read_phone_table(path: str | os.PathLike[str]) -> dict[str, list[PhoneSegment]]:
    """Read a phone table: lines ``utt_id start end phone`` (seconds), tab or whitespace separated.

    Blank lines and lines starting with '#' are skipped; a first line ``id start end phone`` (any
    first word, non-numeric times) is a header. An utterance's lines may come in any order; they
    must not overlap.

    Returns:
        {utterance id: segments in time order}.
    Raises:
        AlignmentError: naming the file and line, for a wrong field count, a time that is not a
            finite number, an end before its start, or overlapping segments.
    """
    path = Path(path)
    if not path.is_file():
        raise AlignmentError(f"{path}: phone table not found")
    rows: dict[str, list[tuple[PhoneSegment, int]]] = {}
    seen_content = False
    for lineno, line in enumerate(_read_text(path).splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields = line.split()
        where = f"{path}:{lineno}"
        if not seen_content and len(fields) == 4 and not _is_number(fields[1]) and not _is_number(fields[2]):
            seen_content = True  # a header line
            continue
        seen_content = True
        if len(fields) != 4:
            raise AlignmentError(f"{where}: expected 4 fields (id start end phone), found {len(fields)}")
        utt, start_text, end_text, phone = fields
        if not (_is_number(start_text) and _is_number(end_text)):
            raise AlignmentError(f"{where}: start and end must be seconds, found {start_text!r} {end_text!r}")
        start, end = float(start_text), float(end_text)
        if start < 0 or end < start:
            raise AlignmentError(f"{where}: bad segment times {start_text} .. {end_text}")
        rows.setdefault(utt, []).append((PhoneSegment(start, end, phone), lineno))
    table = {}
    for utt, items in rows.items():
        items.sort(key=lambda item: (item[0].start, item[0].end))
        for (prev, _), (seg, lineno) in zip(items, items[1:]):
            if seg.start < prev.end - 1e-6:
                raise AlignmentError(
                    f"{path}:{lineno}: segment {seg.start}..{seg.end} of '{utt}' overlaps {prev.start}..{prev.end}"
                )
        table[utt] = [seg for seg, _ in items]
    return table


def read_segment_table(path: str | os.PathLike[str]) -> list[PhoneSegment]:
    """Read one utterance's alignment: lines ``start end phone [more columns, ignored]`` (seconds).

    A line holding a tab is split at tabs (so a column may be empty), any other line at
    whitespace. Blank lines and lines starting with '#' are skipped; a first line whose first two
    fields are not numbers is a header (e.g. ``start end phone native espeak``). An empty phone
    becomes "sil". Lines may come in any order; segments must not overlap.

    Returns:
        The segments in time order (empty for a file without segments).
    Raises:
        AlignmentError: naming the file and line, for fewer than 3 fields, a time that is not a
            finite number, an end before its start, a phone holding whitespace, or overlapping segments.
    """
    path = Path(path)
    if not path.is_file():
        raise AlignmentError(f"{path}: alignment table not found")
    rows: list[tuple[PhoneSegment, int]] = []
    seen_content = False
    for lineno, line in enumerate(_read_text(path).splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields = [f.strip() for f in line.split("\t")] if "\t" in line else line.split()
        where = f"{path}:{lineno}"
        if not seen_content and len(fields) >= 2 and not _is_number(fields[0]) and not _is_number(fields[1]):
            seen_content = True  # a header line
            continue
        seen_content = True
        if len(fields) < 3:
            raise AlignmentError(f"{where}: expected 3 fields (start end phone), found {len(fields)}")
        start_text, end_text, phone = fields[:3]
        if not (_is_number(start_text) and _is_number(end_text)):
            raise AlignmentError(f"{where}: start and end must be seconds, found {start_text!r} {end_text!r}")
        start, end = float(start_text), float(end_text)
        if start < 0 or end < start:
            raise AlignmentError(f"{where}: bad segment times {start_text} .. {end_text}")
        if len(phone.split()) > 1:
            raise AlignmentError(f"{where}: phone {phone!r} holds whitespace")
        rows.append((PhoneSegment(start, end, phone or SILENCE), lineno))
    rows.sort(key=lambda item: (item[0].start, item[0].end))
    for (prev, _), (seg, lineno) in zip(rows, rows[1:]):
        if seg.start < prev.end - 1e-6:
            raise AlignmentError(f"{path}:{lineno}: segment {seg.start}..{seg.end} overlaps {prev.start}..{prev.end}")
    return [seg for seg, _ in rows]


def _is_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def _seconds(x: float) -> str:
    return repr(round(float(x), 9))  # shortest exact text: sample-accurate at any rate (1/16000 s = 0.0000625)


def write_phone_table(path: str | os.PathLike[str], alignments: Mapping[str, Sequence[PhoneSegment]]) -> Path:
    """Write alignments as a tab-separated table with a header ``id start end phone`` (atomically).

    Utterances are written in the mapping's order; ``read_phone_table`` reads the file back.

    Raises:
        ValueError: an id or label is empty or holds whitespace (it could not be read back).
    """
    path = Path(path)
    lines = ["\t".join(TABLE_HEADER)]
    for utt, segments in alignments.items():
        for seg in segments:
            for name in (utt, seg.phone):
                if not name or len(name.split()) != 1 or name != name.strip():
                    raise AlignmentError(f"{path}: cannot write label {name!r} of '{utt}': empty or has whitespace")
            lines.append(f"{utt}\t{_seconds(seg.start)}\t{_seconds(seg.end)}\t{seg.phone}")
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path


def frame_labels(segments: Sequence[PhoneSegment], n_frames: int, frame_rate: float, fill: str = SILENCE) -> list[str]:
    """The phone at the centre of each frame: frame n covers [n / frame_rate, (n + 1) / frame_rate).

    With the encoder's hop H at rate sr, frame_rate = sr / H and frame n is code n. A centre on a
    boundary belongs to the later segment; a centre outside every segment (past the end of a
    short alignment, or in a gap) gets ``fill``.

    Args:
        segments: non-overlapping segments (any order).
        n_frames: frames wanted (N).
        frame_rate: frames per second.
        fill: label of uncovered frames.
    Returns:
        N labels.
    """
    if frame_rate <= 0:
        raise ValueError(f"frame_rate must be positive, got {frame_rate}")
    ordered = sorted(segments, key=lambda s: s.start)
    starts = [s.start for s in ordered]
    labels = []
    for n in range(n_frames):
        t = (n + 0.5) / frame_rate
        i = bisect.bisect_right(starts, t) - 1
        labels.append(ordered[i].phone if i >= 0 and t < ordered[i].end else fill)
    return labels
