"""ABX phone discriminability within and across speakers, on triphone items (ZeroSpeech / libri-light ABX).

Follows Schatz et al. 2013 ("Evaluating speech features with the Minimal-Pair ABX task") as the
ZeroSpeech 2021 benchmark runs it (the libri-light ``eval_ABX.py``, Kahn et al. 2020):

- An **item** is one phone token with its context: (previous phone, next phone), the speaker, and
  the frames whose centres fall inside the phone (at least the frame holding its midpoint).
  Tokens at an utterance's edges have no context and are left out, and so are non-speech centres
  (``SILENCE_PHONES``); contexts may be silence.
- A **triplet** (A, B, X): A and X are the same phone, B another phone, all in the same context.
  It is correct when d(A, X) < d(B, X) and half-correct on a tie; the ABX error is 1 - score.
- d is the mean frame distance along the DTW path (``dtw.dtw``, path-length normalised) with the
  angular cosine distance ``arccos(cos(a, b)) / pi`` (0 for equal directions, 1/2 for orthogonal,
  so one-hot codes give 0 or 1/2 per frame pair).
- **within**: A, B and X from one speaker (X != A); **across**: A and B from one speaker, X from
  another.
- **Averaging**, as libri-light does: the error of each cell (context, speaker, phone pair, and
  for across the X speaker) is averaged over contexts (and X speakers), then over speakers, then
  over ordered phone pairs. Each item set of a cell is capped at ``max_size_group`` items and
  across-speaker cells at ``max_x_across`` X speakers per (context, speaker, phone pair), both
  drawn at random with ``seed`` (libri-light's own speed-ups, defaults 10 and 5).
- ``context="any"`` ignores the context (A, B, X need not share neighbours): the "any-context" ABX
  of Hallap, Dupoux & Dunbar 2023 (ZeroSpeech's libri-light-abx2), harder, and the only kind
  a small corpus can score when no context holds two different phones.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ..alignment import PhoneSegment
from .dtw import dtw_mean
from .units import SILENCE_PHONES, is_silence


@dataclass(frozen=True)
class ABXItem:
    """One phone token: utterance index, frames [start, end), phone, (previous, next) phone, speaker."""

    utterance: int
    start: int
    end: int
    phone: str
    context: tuple[str, str]
    speaker: str


def phone_frames(segment: PhoneSegment, frame_rate: float, n_frames: int) -> tuple[int, int]:
    """Frames [start, end) whose centres (n + 1/2) / frame_rate lie in the segment, as ``frame_labels`` assigns them.

    A phone shorter than a frame still gets the frame that holds its midpoint; the range is
    clipped to [0, n_frames) and may be empty only when the phone lies past the last frame.
    """
    start = max(0, math.ceil(segment.start * frame_rate - 0.5))
    end = min(n_frames, math.ceil(segment.end * frame_rate - 0.5))
    if end <= start:
        mid = int((segment.start + segment.end) / 2 * frame_rate)
        start, end = (mid, mid + 1) if 0 <= mid < n_frames else (0, 0)
    return start, end


def abx_items(
    alignments: Sequence[Sequence[PhoneSegment]],
    speakers: Sequence[str],
    n_frames: Sequence[int],
    frame_rate: float,
    *,
    silence_phones: Sequence[str] = SILENCE_PHONES,
) -> list[ABXItem]:
    """Triphone items of a set of utterances.

    Args:
        alignments: each utterance's phone segments (contiguous phones make the contexts).
        speakers: each utterance's speaker.
        n_frames: each utterance's number of feature frames N.
        frame_rate: frames per second.
        silence_phones: labels that are never a central phone.
    Returns:
        The items, in utterance and time order.
    """
    if not len(alignments) == len(speakers) == len(n_frames):
        raise ValueError("alignments, speakers and n_frames must have one entry per utterance")
    items = []
    for u, (segments, speaker, n) in enumerate(zip(alignments, speakers, n_frames)):
        ordered = sorted(segments, key=lambda s: s.start)
        for prev, seg, nxt in zip(ordered, ordered[1:], ordered[2:]):
            if is_silence(seg.phone, silence_phones):
                continue
            start, end = phone_frames(seg, frame_rate, n)
            if end > start:
                items.append(ABXItem(u, start, end, seg.phone, (prev.phone, nxt.phone), speaker))
    return items


def _pair_distances(
    features: Sequence[Tensor], items: Sequence[ABXItem], pairs: list[tuple[int, int]], chunk: int = 512
) -> dict[tuple[int, int], float]:
    """DTW angular distance of each item pair, batched over pairs of similar lengths."""
    segs = []
    for it in items:
        x = torch.as_tensor(features[it.utterance][it.start : it.end], dtype=torch.float32)
        segs.append(x / x.norm(dim=1, keepdim=True).clamp(min=1e-8))  # (L, F), unit rows
    lengths = np.array([s.size(0) for s in segs])
    order = sorted(range(len(pairs)), key=lambda i: (lengths[pairs[i][0]], lengths[pairs[i][1]]))
    out: dict[tuple[int, int], float] = {}
    for c in range(0, len(order), chunk):
        batch = [pairs[i] for i in order[c : c + chunk]]
        a = torch.nn.utils.rnn.pad_sequence([segs[i] for i, _ in batch], batch_first=True)  # (P, La, F)
        b = torch.nn.utils.rnn.pad_sequence([segs[j] for _, j in batch], batch_first=True)  # (P, Lb, F)
        dist = torch.bmm(a, b.transpose(1, 2)).clamp(-1.0, 1.0).acos() / math.pi  # (P, La, Lb)
        d = dtw_mean(dist.numpy(), lengths[[i for i, _ in batch]], lengths[[j for _, j in batch]])
        out.update(zip(batch, d.tolist()))
    return out


def _cell_error(dist: dict, xs: list[int], As: list[int], Bs: list[int]) -> float | None:
    """1 - mean over (A, B, X) of [d(A, X) < d(B, X)] + 1/2 [tie], leaving out X == A (within-speaker cells)."""
    key = lambda i, j: (i, j) if i < j else (j, i)  # noqa: E731
    dxa = np.array([[dist[key(x, a)] if x != a else np.nan for a in As] for x in xs])  # (nX, nA)
    dxb = np.array([[dist[key(x, b)] for b in Bs] for x in xs])  # (nX, nB)
    dxa, dxb = dxa[:, :, None], dxb[:, None, :]  # (nX, nA, 1), (nX, 1, nB)
    valid = ~np.isnan(dxa) & np.ones_like(dxb, dtype=bool)
    if not valid.any():
        return None
    score = np.where(dxa < dxb, 1.0, np.where(dxa == dxb, 0.5, 0.0))
    return 1.0 - float(score[valid].mean())


def abx_error(
    features: Sequence[Tensor | np.ndarray],
    items: Sequence[ABXItem],
    *,
    modes: Sequence[str] = ("within", "across"),
    context: str = "within",
    max_size_group: int | None = 10,
    max_x_across: int | None = 5,
    seed: int = 0,
) -> dict[str, float | int | None]:
    """ABX error rates of per-frame features on triphone items (see the module docstring).

    Args:
        features: (N_i, F) features of each utterance (code vectors, one-hot codes, MFCCs, ...).
        items: from ``abx_items`` on the same utterances.
        modes: "within" and/or "across" (speaker conditions).
        context: "within" (A, B, X share their context, ZeroSpeech 2021) or "any" (context ignored).
        max_size_group: most items per (context, phone, speaker) set; None: all.
        max_x_across: most X speakers per across-speaker (context, speaker, phone pair); None: all.
        seed: seed of those random caps.
    Returns:
        ``abx_within`` / ``abx_across``: error in [0, 1], or None when no cell exists (no context
        holds two phones, or, within, no phone twice in a context for one speaker);
        ``abx_within_cells`` / ``abx_across_cells``: cells scored.
    """
    unknown = set(modes) - {"within", "across"}
    if unknown:
        raise ValueError(f"unknown ABX mode(s) {sorted(unknown)}; use 'within' and/or 'across'")
    if context not in ("within", "any"):
        raise ValueError(f"context must be 'within' or 'any', got {context!r}")
    rng = np.random.default_rng(seed)
    groups: dict[tuple, list[int]] = defaultdict(list)  # (context, phone, speaker) -> item indices
    for i, it in enumerate(items):
        groups[(it.context if context == "within" else ("*", "*"), it.phone, it.speaker)].append(i)
    if max_size_group is not None:
        for k, v in groups.items():
            if len(v) > max_size_group:
                groups[k] = sorted(rng.choice(v, max_size_group, replace=False).tolist())
    by_context: dict[tuple, dict[str, dict[str, list[int]]]] = defaultdict(lambda: defaultdict(dict))
    for (context, phone, speaker), idx in sorted(groups.items()):
        by_context[context][phone][speaker] = idx

    cells: dict[str, list[tuple[tuple, list[int], list[int], list[int]]]] = {"within": [], "across": []}
    for phones in by_context.values():
        for a, a_speakers in phones.items():
            for b, b_speakers in phones.items():
                if a == b:
                    continue
                for s, A in a_speakers.items():
                    if s not in b_speakers:
                        continue
                    if "within" in modes and len(A) >= 2:
                        cells["within"].append(((s, a, b), A, A, b_speakers[s]))
                    if "across" in modes:
                        others = [sx for sx in a_speakers if sx != s]
                        if max_x_across is not None and len(others) > max_x_across:
                            others = rng.choice(others, max_x_across, replace=False).tolist()
                        for sx in others:
                            cells["across"].append(((s, a, b), a_speakers[sx], A, b_speakers[s]))

    needed = {
        (min(x, y), max(x, y)) for mode in modes for _, X, A, B in cells[mode] for x in X for y in [*A, *B] if x != y
    }
    dist = _pair_distances([torch.as_tensor(f) for f in features], items, sorted(needed))

    result: dict[str, float | int | None] = {}
    for mode in ("within", "across"):
        if mode not in modes:
            continue
        per_speaker_pair: dict[tuple, list[float]] = defaultdict(list)  # (s, a, b) -> errors over contexts
        n_cells = 0
        for key, X, A, B in cells[mode]:
            err = _cell_error(dist, X, A, B)
            if err is not None:
                per_speaker_pair[key].append(err)
                n_cells += 1
        per_pair: dict[tuple, list[float]] = defaultdict(list)  # (a, b) -> errors over speakers
        for (_, a, b), errs in per_speaker_pair.items():
            per_pair[(a, b)].append(float(np.mean(errs)))
        result[f"abx_{mode}"] = float(np.mean([np.mean(v) for v in per_pair.values()])) if per_pair else None
        result[f"abx_{mode}_cells"] = n_cells
    return result
