"""ABX phone discriminability within and across speakers, on phone or triphone items (libri-light / ZeroSpeech ABX).

Follows Schatz et al. 2013 ("Evaluating speech features with the Minimal-Pair ABX task") as the
ZeroSpeech benchmarks run it: libri-light's ``eval/ABX_src`` (Kahn et al. 2020,
https://github.com/facebookresearch/libri-light) and its rework libri-light-abx2
(https://github.com/zerospeech/libri-light-abx2), whose item rules this module copies:

- An **item** is one phone token with its context: (previous phone, next phone) and the speaker.
  Tokens at an utterance's edges have no context and are left out, and so are non-speech centres
  (``SILENCE_PHONES``); contexts may be silence. Its time span is either the phone alone
  (``span="phone"``, the default: "on-phone" items of libri-light-abx2, Hallap, Dupoux & Dunbar
  2023, the ZeroSpeech ABX since 2023) or the whole triphone from the previous phone's onset to
  the next phone's offset (``span="triphone"``: the items of libri-light's ``ABX_data`` item
  files, which ZeroSpeech 2021 and most published libri-light ABX figures score).
- **Frames of an item**, exactly as libri-light does (``eval/ABX_src/abx_iterators.py``,
  ``ABXFeatureLoader.loadFromFileData``, and ``zrc_abx2``'s ``_start_end_indices``): with f frames
  per second, onset t_on and offset t_off, the frames [ceil(f t_on - 1/2), floor(f t_off - 1/2)),
  clipped to the utterance. Frame i is centred at (i + 1/2) / f, so these are the frames centred
  in [t_on, t_off], less the last one (libri-light slices ``features[start:end]`` with an end it
  computed as inclusive; see fastabx's "Slicing features" note). An item left with no frame is
  dropped, as there: always one shorter than a frame, sometimes one of one to two frames (never
  one of two frames or more), and one past the features' end. Published
  figures use f = 100 Hz (CPC, 10 ms) or 50 Hz (HuBERT, 20 ms); ours is sample_rate / hop.
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
  of libri-light-abx2 (with ``span="phone"``), harder, and the only kind a small corpus can
  score when no context holds two different phones.

So ``span="triphone"`` with ``context="within"`` is libri-light's / ZeroSpeech 2021's ABX, and
``span="phone"`` with ``context="within"`` or ``"any"`` is libri-light-abx2's within- and
any-context ABX; other settings (DTW, distance, averaging, caps) are the same in all of them.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ...data.alignment import PhoneSegment
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


def item_frames(onset: float, offset: float, frame_rate: float, n_frames: int) -> tuple[int, int]:
    """Frames [start, end) of an item from ``onset`` to ``offset`` seconds, by libri-light's rule.

    ``start = max(0, ceil(f onset - 1/2))`` and ``end = min(n_frames, floor(f offset - 1/2))``
    with f = ``frame_rate`` (see the module docstring). Returns (0, 0) when that leaves no frame,
    and the item is then dropped.
    """
    start = max(0, math.ceil(frame_rate * onset - 0.5))
    end = min(n_frames, math.floor(frame_rate * offset - 0.5))
    if start >= n_frames or end <= start:
        return 0, 0
    return start, end


def abx_items(
    alignments: Sequence[Sequence[PhoneSegment]],
    speakers: Sequence[str],
    n_frames: Sequence[int],
    frame_rate: float,
    *,
    silence_phones: Sequence[str] = SILENCE_PHONES,
    span: str = "phone",
) -> list[ABXItem]:
    """Triphone items of a set of utterances.

    Args:
        alignments: each utterance's phone segments (contiguous phones make the contexts).
        speakers: each utterance's speaker.
        n_frames: each utterance's number of feature frames N.
        frame_rate: frames per second.
        silence_phones: labels that are never a central phone.
        span: "phone" (the central phone's frames) or "triphone" (from the previous phone's
            onset to the next phone's offset); see the module docstring.
    Returns:
        The items, in utterance and time order; items left without a frame are dropped.
    """
    if not len(alignments) == len(speakers) == len(n_frames):
        raise ValueError("alignments, speakers and n_frames must have one entry per utterance")
    if span not in ("phone", "triphone"):
        raise ValueError(f"span must be 'phone' or 'triphone', got {span!r}")
    items = []
    for u, (segments, speaker, n) in enumerate(zip(alignments, speakers, n_frames)):
        ordered = sorted(segments, key=lambda s: s.start)
        for prev, seg, nxt in zip(ordered, ordered[1:], ordered[2:]):
            if is_silence(seg.phone, silence_phones):
                continue
            onset, offset = (prev.start, nxt.end) if span == "triphone" else (seg.start, seg.end)
            start, end = item_frames(onset, offset, frame_rate, n)
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
