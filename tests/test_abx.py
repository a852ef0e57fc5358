"""ABX items follow libri-light's frame rule: spans, dropped short phones, triphone spans."""

from __future__ import annotations

import numpy as np
import pytest

from audio_vqvae.data.alignment import PhoneSegment
from audio_vqvae.evaluation.metrics.abx import abx_error, abx_items, item_frames

FRAME_RATE = 100.0  # 10 ms frames, frame i centred at (i + 1/2) / 100 s


def _alignment() -> list[PhoneSegment]:
    """sil | a ends mid-frame | t shorter than a frame | e | p of 1.4 frames | i | sil."""
    edges = [0.0, 0.05, 0.123, 0.128, 0.206, 0.22, 0.30, 0.35]
    phones = ["sil", "a", "t", "e", "p", "i", "sil"]
    return [PhoneSegment(a, b, p) for a, b, p in zip(edges[:-1], edges[1:], phones)]


def _spans(items) -> dict[str, tuple[int, int]]:
    return {it.phone: (it.start, it.end) for it in items}


def test_phone_items_end_by_floor_and_drop_short_phones():
    items = abx_items([_alignment()], ["s0"], [35], FRAME_RATE)
    # a: [ceil(4.5), floor(11.8)) = [5, 11); the old ceil rule ended it at 12 (frame 11,
    # centred at 115 ms, inside the phone, is left out as libri-light leaves it out).
    # t (5 ms) and p (14 ms, [ceil(20.1), floor(21.5)) = [21, 21)) get no frame and are dropped;
    # the old rule kept t on the frame holding its midpoint.
    assert _spans(items) == {"a": (5, 11), "e": (13, 20), "i": (22, 29)}
    assert [it.context for it in items] == [("sil", "t"), ("t", "p"), ("p", "sil")]


def test_triphone_items_span_the_neighbours_and_clip_to_the_features():
    items = abx_items([_alignment()], ["s0"], [32], FRAME_RATE, span="triphone")
    # each item runs from the previous phone's onset to the next phone's offset, so the short
    # t and p are central phones of long items; i's item (206..350 ms) is clipped to 32 frames.
    assert _spans(items) == {"a": (0, 12), "t": (5, 20), "e": (12, 21), "p": (13, 29), "i": (21, 32)}


@pytest.mark.parametrize(
    ("onset", "offset", "n_frames", "expected"),
    [
        (0.05, 0.123, 35, (5, 11)),  # ends mid-frame
        (0.123, 0.128, 35, (0, 0)),  # shorter than a frame
        (0.2, 0.3, 35, (20, 29)),  # on frame edges: the last frame centred inside is left out
        (0.2, 0.3, 25, (20, 25)),  # clipped to the features
        (0.33, 0.5, 30, (0, 0)),  # past the last frame
        (0.0, 0.0199, 35, (0, 1)),  # a frame at the very start
    ],
)
def test_item_frames_on_hand_made_cases(onset, offset, n_frames, expected):
    assert item_frames(onset, offset, FRAME_RATE, n_frames) == expected


def test_item_frames_invariants_on_random_segments():
    rng = np.random.default_rng(0)
    for _ in range(2000):
        rate = float(rng.choice([50.0, 100.0, 250.0]))
        onset = float(rng.uniform(0, 1))
        frames = float(rng.uniform(0, 4))  # duration in frames
        offset = onset + frames / rate
        start, end = item_frames(onset, offset, rate, 10_000)
        centres = (np.arange(start, end) + 0.5) / rate
        assert np.all(centres >= onset - 1e-9) and np.all(centres <= offset + 1e-9)
        if end > start:  # no earlier frame is centred inside; the last one centred inside is left out
            assert (start - 0.5) / rate < onset
            assert (end + 0.5) / rate <= offset + 1e-9
        if frames < 1:
            assert (start, end) == (0, 0)
        if frames >= 2 + 1e-9:
            assert end > start


def test_bad_span_is_refused():
    with pytest.raises(ValueError, match="span"):
        abx_items([_alignment()], ["s0"], [35], FRAME_RATE, span="word")


def test_separating_features_score_zero_on_both_spans():
    rng = np.random.default_rng(1)
    alignments, speakers, n_frames, labels = [], [], [], []
    for s in range(2):
        for _ in range(6):
            phones = ["sil"] + [p for _ in range(10) for p in (rng.choice(["p", "t"]), rng.choice(["a", "e"]))]
            phones += ["sil"]
            durations = rng.integers(3, 7, len(phones))
            edges = np.concatenate([[0], np.cumsum(durations)])
            alignments.append([PhoneSegment(a / 100, b / 100, p) for a, b, p in zip(edges[:-1], edges[1:], phones)])
            speakers.append(f"s{s}")
            n_frames.append(int(edges[-1]))
            labels.append([p for p, d in zip(phones, durations) for _ in range(d)])
    vocab = sorted({p for x in labels for p in x})
    features = [
        np.eye(len(vocab))[[vocab.index(p) for p in x]] + 0.05 * rng.standard_normal((len(x), 5)) for x in labels
    ]
    for span in ("phone", "triphone"):
        items = abx_items(alignments, speakers, n_frames, FRAME_RATE, span=span)
        result = abx_error(features, items)
        assert result["abx_within_cells"] > 0 and result["abx_across_cells"] > 0
        assert result["abx_within"] < 0.05 and result["abx_across"] < 0.05, (span, result)
