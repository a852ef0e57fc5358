"""Synthetic corpus: determinism, exact alignments, a parallel corpus, plausible spectra, distinct speakers."""

from __future__ import annotations

import numpy as np
import pytest

from audio_vqvae.data.synthetic import (
    PHONES,
    Voice,
    sentences,
    speaker_voices,
    synthesize_corpus,
    synthesize_utterance,
)

SR = 16000


@pytest.fixture(scope="module")
def corpus():
    return list(synthesize_corpus(n_speakers=4, n_sentences=8, sample_rate=SR, seed=0))


def segments(utt, phone, trim_s=0.015):
    """The samples of each `phone` segment, less `trim_s` at either end (boundaries blend on purpose)."""
    out = []
    for start, end, p in utt.phones:
        if p == phone:
            a, b = round(start * SR), round(end * SR)
            m = min(round(trim_s * SR), (b - a) // 4)
            out.append(utt.wav[a + m : b - m].astype(np.float64))
    return out


def energy_above(x, hz, sr=SR):
    power = np.abs(np.fft.rfft(x * np.hanning(len(x)))) ** 2
    return power[np.fft.rfftfreq(len(x), 1 / sr) > hz].sum() / power.sum()


def centroid(x, sr=SR):
    power = np.abs(np.fft.rfft(x * np.hanning(len(x)))) ** 2
    return (np.fft.rfftfreq(len(x), 1 / sr) * power).sum() / power.sum()


def rms(x):
    return float(np.sqrt(np.mean(np.square(x))))


def autocorr_f0(x, sr=SR, fmin=60.0, fmax=400.0):
    """The first autocorrelation peak within 85 % of the highest in [1/fmax, 1/fmin] (avoids octave-down errors)."""
    x = x - x.mean()
    r = np.correlate(x, x, "full")[len(x) - 1 :]
    lo, hi = int(sr / fmax), int(sr / fmin)
    seg = r[lo:hi]
    for i in range(1, len(seg) - 1):
        if seg[i] >= 0.85 * seg.max() and seg[i - 1] <= seg[i] >= seg[i + 1]:
            return sr / (lo + i)
    return sr / (lo + int(np.argmax(seg)))


def test_inventory_and_phonotactics():
    assert 15 <= len(PHONES) <= 20
    assert {p.cls for p in PHONES.values()} == {"vowel", "nasal", "fricative", "stop", "silence"}
    texts = sentences(20, seed=0)
    assert len(texts) == 20
    assert {p for s in texts for p in s} == set(PHONES)  # 20 sentences use the whole inventory
    for s in texts:
        assert s[0] == s[-1] == "sil"
        assert all(a != b for a, b in zip(s[:-1], s[1:], strict=True)), s
        assert any(PHONES[p].cls == "vowel" for p in s)
    assert sentences(5, seed=0) == texts[:5]  # sentence k does not depend on how many were asked for
    assert sentences(20, seed=1) != texts


def test_deterministic_and_seeded(corpus):
    again = list(synthesize_corpus(n_speakers=4, n_sentences=8, sample_rate=SR, seed=0))
    for a, b in zip(corpus, again, strict=True):
        assert a.id == b.id and a.text == b.text and a.phones == b.phones
        assert a.wav.tobytes() == b.wav.tobytes()
    # any slice of the corpus is the same bytes however it was asked for
    small = list(synthesize_corpus(n_speakers=2, n_sentences=3, sample_rate=SR, seed=0))
    by_id = {u.id: u for u in corpus}
    assert all(u.wav.tobytes() == by_id[u.id].wav.tobytes() for u in small)
    other = list(synthesize_corpus(n_speakers=2, n_sentences=3, sample_rate=SR, seed=1))
    assert all(len(a.wav) != len(b.wav) or not np.array_equal(a.wav, b.wav) for a, b in zip(small, other, strict=True))
    assert speaker_voices(4, seed=1) != speaker_voices(4, seed=0)


def test_ids_and_order(corpus):
    assert [u.id for u in corpus[:2]] == ["spk00_000", "spk00_001"]
    assert [(u.speaker, u.sentence) for u in corpus] == [(f"spk{s:02d}", k) for s in range(4) for k in range(8)]
    assert all(u.id == f"{u.speaker}_{u.sentence:03d}" for u in corpus)


def test_alignment_covers_the_utterance_exactly(corpus):
    for u in corpus:
        starts, ends, names = zip(*u.phones, strict=True)
        assert starts[0] == 0.0
        assert abs(ends[-1] - len(u.wav) / SR) <= 1 / SR
        assert all(e == s for e, s in zip(ends[:-1], starts[1:], strict=True)), u.id  # contiguous
        assert all(e > s for s, e in zip(starts, ends, strict=True))
        assert set(names) <= set(PHONES)
        assert names[0] == names[-1] == "sil"
        assert " ".join(names) == u.text


def test_parallel_sentences_and_speaking_rates(corpus):
    texts = [" ".join(s) for s in sentences(8, seed=0)]
    for u in corpus:
        assert u.text == texts[u.sentence]
    voices = speaker_voices(4, seed=0)
    mean_dur = {s: np.mean([len(u.wav) for u in corpus if u.speaker == f"spk{s:02d}"]) / SR for s in range(4)}
    slow, fast = min(range(4), key=lambda s: voices[s].rate), max(range(4), key=lambda s: voices[s].rate)
    assert voices[fast].rate / voices[slow].rate > 1.2
    ratio = mean_dur[slow] / mean_dur[fast]
    assert ratio == pytest.approx(voices[fast].rate / voices[slow].rate, rel=0.15)
    assert all(0.6 < d < 2.5 for d in mean_dur.values())  # about 1-2 s


def test_audio_sanity_and_spectra(corpus):
    vowels = [p for p, ph in PHONES.items() if ph.cls == "vowel"]
    for u in corpus:
        assert u.wav.dtype == np.float32 and u.wav.ndim == 1
        assert np.isfinite(u.wav).all()
        assert 0.5 < np.abs(u.wav).max() <= 0.95
    sil = np.concatenate([x for u in corpus for x in segments(u, "sil", trim_s=0.02)])
    vow = np.concatenate([x for u in corpus for p in vowels for x in segments(u, p)])
    assert rms(sil) < 0.02 * rms(vow)
    s_segs = [x for u in corpus for x in segments(u, "s")]
    assert len(s_segs) >= 4
    assert all(energy_above(x, 4000) > 0.5 for x in s_segs)
    for p in vowels:
        segs = [x for u in corpus for x in segments(u, p)]
        assert segs and all(energy_above(x, 1000) < 0.5 for x in segs), p
    # phones are told apart by their spectra: "iy" (F2 ~2.3 kHz) against "uw" (F2 ~0.9 kHz), "sh" against "s"
    assert np.median([energy_above(x, 1500) for u in corpus for x in segments(u, "iy")]) > 10 * np.median(
        [energy_above(x, 1500) for u in corpus for x in segments(u, "uw")]
    )
    assert np.median([centroid(x) for u in corpus for x in segments(u, "sh")]) < np.median(
        [centroid(x) for x in s_segs]
    )


def test_f0_follows_the_speakers(corpus):
    voices = speaker_voices(4, seed=0)
    vowels = [p for p, ph in PHONES.items() if ph.cls == "vowel"]
    measured = []
    for s, voice in enumerate(voices):
        segs = [x for u in corpus if u.speaker == f"spk{s:02d}" for p in vowels for x in segments(u, p)]
        f0 = np.median([autocorr_f0(x) for x in segs if len(x) >= 0.04 * SR])
        assert f0 == pytest.approx(voice.f0, rel=0.1)
        measured.append(f0)
    assert np.argsort(measured).tolist() == np.argsort([v.f0 for v in voices]).tolist()
    assert max(v.f0 for v in voices) / min(v.f0 for v in voices) > 2  # spread over about 90-250 Hz


def test_formants_scale_with_vocal_tract_length():
    """Same phones, same draws; only the vocal-tract length differs: the longer tract has the lower spectrum."""
    phones = ["sil", "aa", "iy", "eh", "sil"]
    centroids = {}
    for vtl in (0.85, 1.0, 1.15):
        wav, alignment = synthesize_utterance(phones, Voice(f0=120.0, vtl=vtl, rate=1.0, breathiness=0.1), SR, rng=3)
        x = wav[round(alignment[1][0] * SR) : round(alignment[3][1] * SR)].astype(np.float64)  # the three vowels
        centroids[vtl] = centroid(x)
    assert centroids[1.15] < centroids[1.0] < centroids[0.85]
    assert centroids[0.85] / centroids[1.15] > 1.15


def test_voice_parameters_in_range():
    voices = speaker_voices(10, seed=0)
    assert voices[:4] == speaker_voices(4, seed=0)  # speaker i's voice does not depend on n_speakers
    for v in voices:
        assert 85 <= v.f0 <= 255 and 0.85 <= v.vtl <= 1.15 and 0.75 <= v.rate <= 1.3 and 0 < v.breathiness < 0.5
    assert len({round(v.f0) for v in voices}) == 10


def test_other_sample_rate():
    wav, alignment = synthesize_utterance(["sil", "s", "aa", "t", "sil"], speaker_voices(1)[0], sample_rate=8000, rng=0)
    assert wav.dtype == np.float32 and np.isfinite(wav).all() and np.abs(wav).max() <= 0.95
    assert alignment[0][0] == 0.0 and abs(alignment[-1][1] - len(wav) / 8000) <= 1 / 8000
