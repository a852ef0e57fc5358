"""Metrics on cases with known answers, and both evaluation entry points end to end on a tiny model."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from audio_vqvae import VQVAE, preset
from audio_vqvae.data.alignment import PhoneSegment
from audio_vqvae.data.spectrum import deltas
from audio_vqvae.data.synthetic import synthesize_corpus
from audio_vqvae.evaluation.evaluate import (
    ConversionPair,
    evaluate_conversion,
    evaluate_units,
    format_conversion_report,
    format_units_report,
)
from audio_vqvae.evaluation.metrics import (
    SpeakerClassifier,
    abx_error,
    abx_items,
    add_white_noise,
    bitrate,
    dtw,
    log_mel_frames,
    mel_cepstral_distortion,
    mfcc_frames,
    phone_mapping_accuracy,
    purity_and_pnmi,
    reconstruction_metrics,
    train_speaker_classifier,
)

SR = 16000


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One intra-op thread for this module, restored after: the tensors here are tiny, and on a busy
    2-core machine OpenMP threads waiting for each other made single tests up to 30x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def corpus():
    """The built-in synthetic corpus: 3 speakers x 8 parallel sentences with exact phone alignments."""
    return list(synthesize_corpus(n_speakers=3, n_sentences=8))


@pytest.fixture(scope="module")
def tiny_model():
    cfg = preset("tiny")
    cfg.decoder.n_speakers = 3
    torch.manual_seed(0)
    return VQVAE.from_config(cfg).eval()


def _items(utterances):
    return [(u.id, torch.from_numpy(u.wav), u.speaker) for u in utterances]


def _alignments(utterances):
    return {u.id: [PhoneSegment(a, b, p) for a, b, p in u.phones] for u in utterances}


# ------------------------------------------------------------------------------------------ frame units


def _skewed_phones(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    names = np.array([f"p{i}" for i in range(10)])
    weights = np.array([10, 6, 5, 4, 3, 3, 2, 2, 1, 1], dtype=float)
    return names[rng.choice(10, n, p=weights / weights.sum())]


def test_units_equal_to_phones_are_perfect():
    train, held = _skewed_phones(5000, 0), _skewed_phones(5000, 1)
    to_unit = {f"p{i}": 7 * i + 3 for i in range(10)}  # any relabelling of the phones
    acc = phone_mapping_accuracy([to_unit[p] for p in train], train, [to_unit[p] for p in held], held)
    assert acc["phone_accuracy"] == 1.0
    assert acc["majority_phone"] == "p0"
    assert acc["majority_phone_accuracy"] == pytest.approx(10 / 37, abs=0.02)
    scores = purity_and_pnmi([to_unit[p] for p in held], held)
    assert scores["pnmi"] == pytest.approx(1.0)
    assert scores["phone_purity"] == pytest.approx(1.0)
    assert scores["cluster_purity"] == pytest.approx(1.0)


def test_random_units_give_baseline_levels():
    train, held = _skewed_phones(50_000, 0), _skewed_phones(50_000, 1)
    rng = np.random.default_rng(2)
    acc = phone_mapping_accuracy(rng.integers(0, 20, train.size), train, rng.integers(0, 20, held.size), held)
    assert acc["phone_accuracy"] == pytest.approx(acc["majority_phone_accuracy"], abs=0.01)
    scores = purity_and_pnmi(rng.integers(0, 20, held.size), held)
    assert scores["pnmi"] < 0.01
    assert scores["phone_purity"] == pytest.approx(10 / 37, abs=0.02)  # every unit's best phone is p0
    assert scores["cluster_purity"] < 0.1  # each phone spread over 20 units


def test_unseen_unit_maps_to_majority_phone():
    acc = phone_mapping_accuracy([0, 0, 1], ["a", "a", "b"], [2, 2, 1], ["a", "b", "b"])
    assert acc["phone_accuracy"] == pytest.approx(2 / 3)  # unit 2 (unseen) -> "a"; unit 1 -> "b"


def test_bitrate_of_known_distributions():
    uniform = bitrate([[0, 0, 1, 1], [2, 2, 3, 3]], duration=2.0)
    assert uniform["entropy_bits"] == pytest.approx(2.0)
    assert uniform["bitrate"] == pytest.approx(8 / 2.0 * 2.0)
    assert uniform["symbols_used"] == 4
    deduplicated = bitrate([[0, 0, 1, 1], [2, 2, 3, 3]], duration=2.0, deduplicate=True)
    assert deduplicated["n_symbols"] == 4
    assert deduplicated["bitrate"] == pytest.approx(4 / 2.0 * 2.0)
    skewed = bitrate([[5, 5, 6, 7]], duration=0.5)  # p = 1/2, 1/4, 1/4: H = 1.5 bits
    assert skewed["entropy_bits"] == pytest.approx(1.5)
    assert skewed["bitrate"] == pytest.approx(4 / 0.5 * 1.5)
    assert bitrate([[3, 3, 3]], duration=1.0)["bitrate"] == 0.0


# ------------------------------------------------------------------------------------------------ DTW


def test_dtw_matches_a_direct_implementation_with_ties():
    def reference(d):  # the textbook recursion and libri-light's backtracking rule
        N, M = d.shape
        c = np.full((N + 1, M + 1), np.inf)
        c[0, 0] = 0.0
        for i in range(1, N + 1):
            for j in range(1, M + 1):
                c[i, j] = d[i - 1, j - 1] + min(c[i - 1, j], c[i - 1, j - 1], c[i, j - 1])
        i, j, length = N, M, 1
        while i > 1 and j > 1:
            up, left, diag = c[i - 1, j], c[i, j - 1], c[i - 1, j - 1]
            i, j = (i - 1, j - 1) if diag <= left and diag <= up else (i, j - 1) if left <= up else (i - 1, j)
            length += 1
        return c[N, M], length + (i - 1) + (j - 1)

    rng = np.random.default_rng(0)
    d = rng.integers(0, 3, (40, 7, 9)).astype(float)  # small integers: many ties
    n, m = rng.integers(1, 8, 40), rng.integers(1, 10, 40)
    cost, length = dtw(d, n, m)
    for p in range(40):
        want_cost, want_length = reference(d[p, : n[p], : m[p]])
        assert cost[p] == pytest.approx(want_cost)
        assert length[p] == want_length


# ------------------------------------------------------------------------------------------------ ABX


def _triphone_corpus(n_speakers=3, n_utts=4, seed=0):
    """Alternating consonant-vowel utterances at 100 frames/s: (alignments, speakers, frame labels)."""
    rng = np.random.default_rng(seed)
    alignments, speakers, labels = [], [], []
    for s in range(n_speakers):
        for _ in range(n_utts):
            phones = ["sil"] + [p for _ in range(12) for p in (rng.choice(["p", "t"]), rng.choice(["a", "e", "i"]))]
            phones += ["sil"]
            frames = rng.integers(3, 7, len(phones))
            edges = np.concatenate([[0], np.cumsum(frames)])
            alignments.append([PhoneSegment(a / 100, b / 100, p) for a, b, p in zip(edges[:-1], edges[1:], phones)])
            speakers.append(f"s{s}")
            labels.append([p for p, f in zip(phones, frames) for _ in range(f)])
    return alignments, speakers, labels


def test_abx_separating_features_near_zero_and_noise_near_half():
    alignments, speakers, labels = _triphone_corpus()
    items = abx_items(alignments, speakers, [len(x) for x in labels], 100.0)
    assert items and all(it.phone != "sil" for it in items)
    vocab = sorted({p for x in labels for p in x})
    rng = np.random.default_rng(1)
    one_hot = [np.eye(len(vocab))[[vocab.index(p) for p in x]] for x in labels]
    separating = [f + 0.1 * rng.standard_normal(f.shape) for f in one_hot]
    good = abx_error(separating, items)
    assert good["abx_within_cells"] > 20 and good["abx_across_cells"] > 20
    assert good["abx_within"] < 0.02 and good["abx_across"] < 0.02
    noise = [rng.standard_normal((len(x), 8)) for x in labels]
    bad = abx_error(noise, items)
    assert bad["abx_within"] == pytest.approx(0.5, abs=0.08)
    assert bad["abx_across"] == pytest.approx(0.5, abs=0.08)
    ties = abx_error([np.ones((len(x), 3)) for x in labels], items)  # every distance equal: each triplet scores 1/2
    assert ties["abx_within"] == 0.5 and ties["abx_across"] == 0.5


def test_abx_without_cells_is_none():
    alignments = [[PhoneSegment(0.0, 0.1, "sil"), PhoneSegment(0.1, 0.2, "a"), PhoneSegment(0.2, 0.3, "sil")]]
    items = abx_items(alignments, ["s0"], [30], 100.0)
    result = abx_error([np.ones((30, 2))], items)
    assert result["abx_within"] is None and result["abx_across"] is None


# ------------------------------------------------------------------------------------------- spectral


def _tone_segments(durations, tones=(0, 1, 2, 3, 4), seed=0):
    """Stationary harmonic segments, tone k of the list for segment k (f0 and spectral tilt), phase-continuous."""
    rng = np.random.default_rng(seed)
    f0s, tilts = [110, 180, 260, 140, 220], [0.5, 1.5, 1.0, 2.0, 0.8]
    parts, phase = [], 0.0
    for tone, dur in zip(tones, durations):
        t = np.arange(int(dur * SR)) / SR
        f0, tilt = f0s[tone], tilts[tone]
        x = sum(np.sin(2 * np.pi * h * f0 * t + h * phase) / h**tilt for h in range(1, 30) if h * f0 < 7000)
        phase += 2 * np.pi * f0 * len(t) / SR
        parts.append(x)
    x = np.concatenate(parts)
    x = 0.5 * x / np.abs(x).max() + 1e-4 * rng.standard_normal(x.size)
    return torch.from_numpy(x.astype(np.float32))


def test_mcd_is_zero_on_itself_and_grows_with_distortion(corpus):
    x = torch.from_numpy(corpus[0].wav)
    assert mel_cepstral_distortion(x, x, SR) == 0.0
    assert mel_cepstral_distortion(x, 0.5 * x, SR, use_dtw=False) < 0.05  # c0 (gain) is excluded
    g = torch.Generator().manual_seed(0)
    noise = torch.randn(x.shape, generator=g)
    mcds = [mel_cepstral_distortion(x, x + 10 ** (-snr / 20) * x.std() * noise, SR) for snr in (30, 20, 10, 0)]
    assert all(a < b for a, b in zip(mcds, mcds[1:])), mcds
    assert mcds[0] > 0.1
    recon = reconstruction_metrics(x, x, SR)
    assert recon == {"mcd": 0.0, "log_mel_distance_db": 0.0}
    assert reconstruction_metrics(x, x + 0.1 * x.std() * noise, SR)["log_mel_distance_db"] > 0.5


def test_dtw_aligns_a_time_stretched_copy():
    durations = [0.12, 0.08, 0.15, 0.1, 0.09]
    x = _tone_segments(durations)
    stretched = _tone_segments([1.5 * d for d in durations])
    shuffled = _tone_segments(durations, tones=(3, 0, 4, 1, 2), seed=1)  # same tones, another order
    aligned = mel_cepstral_distortion(x, stretched, SR)
    assert aligned < 1.5
    assert mel_cepstral_distortion(x, stretched, SR, use_dtw=False) > 2 * aligned
    assert mel_cepstral_distortion(x, shuffled, SR) > 2 * aligned


def test_frames_sit_on_the_code_grid():
    # Silence, then a tone from sample 1280 = 20 hops to the end (2560): frame n (25 ms = 400
    # samples, centred on (n + 1/2) * 64) reads [64 n - 168, 64 n + 232), so frames 0-16 see only
    # silence, 17-22 part of the tone, 23-36 all of it, and 37-39 run past the end.
    t = torch.arange(1280) / SR
    x = torch.cat([torch.zeros(1280), 0.5 * torch.sin(2 * math.pi * 440 * t)])
    energy = log_mel_frames(x, SR, 64).exp().sum(1)  # (40,)
    assert energy.shape == (40,)
    floor = energy[0]
    assert torch.all(energy[:17] == floor) and torch.all(energy[17:] > 1e3 * floor)
    assert torch.all(energy[17:24].diff() > 0) and torch.allclose(energy[23:37], energy[23], rtol=0.02)
    assert torch.all(energy[36:].diff() < 0) and energy[39] < 0.9 * energy[36]
    frames = mfcc_frames(x, SR, 64)
    assert frames.shape == (40, 39) and torch.isfinite(frames).all()
    assert mfcc_frames(x, SR, 320, n_frames=7).shape == (7, 39)


def test_mfccs_are_the_orthonormal_dct_of_log_mels_and_deltas_the_htk_regression():
    import librosa.feature
    import scipy.fft

    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.standard_normal(4000).astype(np.float32)) * torch.linspace(0, 1, 4000)  # rising level
    log_mel = log_mel_frames(x, SR, 160)  # (25, 40)
    c = mfcc_frames(x, SR, 160, with_deltas=False)  # (25, 13)
    expected = scipy.fft.dct(log_mel.double().numpy(), type=2, norm="ortho", axis=1)[:, :13]
    np.testing.assert_allclose(c.numpy(), expected, rtol=0, atol=1e-4)
    assert torch.equal(mfcc_frames(x, SR, 160, with_deltas=False, include_c0=False), c[:, 1:])
    # as many coefficients as mel bands: orthonormal, so each frame keeps its energy
    full = mfcc_frames(x, SR, 160, n_mfcc=40, with_deltas=False).double()
    torch.testing.assert_close(full.square().sum(1), log_mel.double().square().sum(1), rtol=1e-5, atol=0)

    # deltas: HTK's regression over +-2 frames with the edge frames repeated, written out here, and
    # librosa's delta with mode "nearest" (its default "interp" fits the edges instead)
    d = deltas(c)
    p = torch.cat([c[:1], c[:1], c, c[-1:], c[-1:]])  # (N + 4, 13)
    torch.testing.assert_close(d, (p[3:-1] - p[1:-3] + 2 * (p[4:] - p[:-4])) / 10, rtol=0, atol=1e-4)
    np.testing.assert_allclose(d.numpy(), librosa.feature.delta(c.numpy(), width=5, mode="nearest", axis=0), atol=1e-5)
    feats = mfcc_frames(x, SR, 160)  # (25, 39): c, deltas, deltas of deltas
    assert torch.equal(feats[:, :13], c) and torch.equal(feats[:, 13:26], d) and torch.equal(feats[:, 26:], deltas(d))
    ramp = torch.arange(10.0)[:, None] * torch.tensor([[1.0, -3.0]])  # (10, 2), slopes 1 and -3
    torch.testing.assert_close(deltas(ramp)[2:-2], torch.tensor([[1.0, -3.0]]).expand(6, 2))
    assert deltas(ramp[:1]).abs().max() == 0 and deltas(ramp[:0]).shape == (0, 2)  # one frame, no frames


# -------------------------------------------------------------------------------------------- speaker


def test_speaker_classifier_separates_the_synthetic_speakers(corpus):
    clf, info = train_speaker_classifier([torch.from_numpy(u.wav) for u in corpus], [u.speaker for u in corpus], SR)
    assert info["n_speakers"] == 3 and info["n_held_out"] == 6
    assert info["held_out_accuracy"] >= 5 / 6
    assert clf.predict([torch.from_numpy(corpus[9].wav)]) == [corpus[9].speaker]
    assert info["held_out_accuracy_noisy"] >= 5 / 6  # learned from noisy copies: white noise at 10 dB is no trouble


def test_noise_augmentation_is_what_keeps_noisy_speech_with_its_speaker(corpus):
    wavs, speakers = [torch.from_numpy(u.wav) for u in corpus], [u.speaker for u in corpus]
    clean_only, info = train_speaker_classifier(wavs, speakers, SR, noise_snrs_db=())
    assert info["held_out_accuracy"] >= 5 / 6 and info["held_out_accuracy_noisy"] <= 0.5
    g = torch.Generator().manual_seed(5)
    noisy = add_white_noise(wavs[0], 10.0, g)
    assert abs(10 * math.log10(wavs[0].pow(2).mean() / (noisy - wavs[0]).pow(2).mean()) - 10.0) < 0.3


def _softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def _penalised_softmax_regression(z: np.ndarray, y: np.ndarray, n_classes: int, l2: float) -> np.ndarray:
    """Reference: minimise mean cross-entropy + l2 ||W||^2 (bias free) directly; returns (B, S) posteriors."""
    from scipy.optimize import minimize

    B, E = z.shape
    onehot = np.eye(n_classes)[y]

    def loss_and_grad(theta):
        w, b = theta[: n_classes * E].reshape(n_classes, E), theta[n_classes * E :]
        p = _softmax(z @ w.T + b)
        err = (p - onehot) / B
        loss = -np.sum(onehot * np.log(p)) / B + l2 * np.sum(w * w)
        return loss, np.concatenate([(err.T @ z + 2 * l2 * w).ravel(), err.sum(0)])

    theta = np.zeros(n_classes * (E + 1))
    fit = minimize(loss_and_grad, theta, jac=True, method="L-BFGS-B", options={"maxiter": 2000, "gtol": 1e-10})
    w, b = fit.x[: n_classes * E].reshape(n_classes, E), fit.x[n_classes * E :]
    return _softmax(z @ w.T + b)


@pytest.mark.parametrize("n_speakers", [2, 3])
def test_speaker_classifier_is_the_penalised_softmax_optimum(n_speakers):
    # overlapping classes, so the optimum is finite and every posterior is informative
    rng = np.random.default_rng(n_speakers)
    centres = rng.standard_normal((n_speakers, 6))
    y = np.arange(40) % n_speakers
    x = torch.from_numpy(centres[y] + 1.5 * rng.standard_normal((40, 6)))  # (B, E)
    labels = [f"s{i}" for i in y]
    l2 = 1e-2
    clf = SpeakerClassifier.fit_embeddings(x, labels, SR, l2=l2)
    assert clf.speakers == [f"s{i}" for i in range(n_speakers)] and clf.weight.shape == (n_speakers, 6)
    z = ((x - clf.mean) / clf.std).numpy()  # standardised with the training statistics
    np.testing.assert_allclose(z.mean(0), 0, atol=1e-12)
    p = clf.predict_proba_embeddings(x).numpy()  # (B, S)
    # the gradient of the promised objective vanishes at the fit (two speakers included: one logit there)
    err = (p - np.eye(n_speakers)[y]) / len(y)
    assert np.abs(err.T @ z + 2 * l2 * clf.weight.numpy()).max() < 1e-4 and np.abs(err.sum(0)).max() < 1e-4
    assert np.abs(p - _penalised_softmax_regression(z, y, n_speakers, l2)).max() < 1e-4
    again = SpeakerClassifier.fit_embeddings(x, labels, SR, l2=l2)  # deterministic
    assert torch.equal(again.weight, clf.weight) and torch.equal(again.bias, clf.bias)


# ----------------------------------------------------------------------------------------- end to end


UNIT_KEYS = {
    "phone_accuracy",
    "majority_phone_accuracy",
    "phone_purity",
    "cluster_purity",
    "pnmi",
    "abx_within",
    "abx_across",
    "bitrate",
    "bitrate_dedup",
    "codes_used",
}


def test_evaluate_units_end_to_end(corpus, tiny_model):
    train = [u for u in corpus if u.sentence < 6]
    held = [u for u in corpus if u.sentence >= 6]
    alignments = _alignments(corpus)
    unaligned = ("no_alignment", torch.zeros(800), "spk00")
    result = evaluate_units(tiny_model, _items(train), _items(held) + [unaligned], alignments)
    json.dumps(result)  # JSON-ready
    assert UNIT_KEYS <= set(result["model"]) and set(result["model"]) == set(result["baseline"])
    assert result["frame_rate_hz"] == SR / 64 and result["codebook_size"] == 32 and result["n_unaligned"] == 1
    for system in ("model", "baseline"):
        metrics = result[system]
        assert 0 <= metrics["phone_accuracy"] <= 1 and 0 <= metrics["pnmi"] <= 1
        assert 0 < metrics["codes_used"] <= 32
        assert 0 <= metrics["bitrate_dedup"] <= metrics["bitrate"] <= 250 * 5  # 250 codes/s, at most 5 bits each
        assert metrics["abx_across"] is None or 0 <= metrics["abx_across"] <= 1
    base = result["baseline"]  # MFCC k-means on formant speech must beat guessing the majority phone
    assert base["phone_accuracy"] > base["majority_phone_accuracy"] + 0.1
    assert base["pnmi"] > 0.2 and base["bitrate"] > 0
    report = format_units_report(result)
    assert "phone accuracy" in report and "PNMI" in report and "ABX:" in report and "baseline" in report
    seconds = sum(u.wav.size for u in held) / SR
    segments = [[p for _, _, p in u.phones] for u in held]  # no phone follows itself in the synthetic sentences
    assert all(a != b for s in segments for a, b in zip(s, s[1:]))
    assert result["phone_rate"] == pytest.approx(sum(map(len, segments)) / seconds)
    assert "runs per second" in report and f"{result['phone_rate']:.1f} phones per second" in report
    runs, rate = result["model"]["symbol_rate_dedup"], result["model"]["symbol_rate"]
    assert 0 < runs <= rate == pytest.approx(SR / 64, rel=0.01)
    assert result["abx_context"] == "within"

    options = {"exclude_silence": True, "abx_context": "any", "abx_representation": "onehot"}
    other = evaluate_units(tiny_model, _items(train), _items(held), alignments, **options)
    assert other["silence"] == "excluded" and other["n_eval_frames"] < result["n_eval_frames"]
    assert other["model"]["majority_phone"] != "sil"
    assert other["model"]["abx_within_cells"] > 0 and other["model"]["abx_across_cells"] > 0
    assert 0 <= other["model"]["abx_within"] <= 1
    assert (
        other["baseline"]["abx_within"] < 0.25 and other["baseline"]["abx_across"] < 0.25
    )  # MFCC units separate phones


def test_evaluate_conversion_end_to_end(corpus, tiny_model):
    by_id = {u.id: u for u in corpus}
    crop = 3200  # 0.2 s: the tiny model decodes a few thousand samples per second on a CPU
    plan = [("spk00_006", "spk01"), ("spk01_007", "spk02"), ("spk02_006", "spk00")]
    pairs, reconstructions = [], []
    for uid, target in plan:
        source = torch.from_numpy(by_id[uid].wav[:crop])
        codes = tiny_model.encode(source)
        speaker = int(target[-2:])
        converted = tiny_model.decode(codes, speaker, temperature=0).reshape(-1)
        parallel = torch.from_numpy(by_id[f"{target}_{uid[-3:]}"].wav[:crop])
        pairs.append(ConversionPair(converted, source, by_id[uid].speaker, target, parallel))
        reconstructions.append((source, converted))
    pairs[-1] = tuple(pairs[-1])[:4]  # a plain 4-tuple: no parallel target
    real = _items([u for u in corpus if u.sentence < 6])
    result = evaluate_conversion(tiny_model, pairs, real, reconstructions=reconstructions)
    json.dumps(result)
    speaker, content = result["speaker"], result["content"]
    assert speaker["classifier_accuracy"] >= 5 / 6 and speaker["speakers"] == ["spk00", "spk01", "spk02"]
    assert 0 <= speaker["target_rate"] <= 1 and 0 <= speaker["source_rate"] <= 1 and speaker["n_source_known"] == 3
    assert content["n_frames"] == 3 * crop // 64 and 0 <= content["code_agreement"] <= 1
    assert 0 < content["code_agreement_chance"] <= 1
    assert content["n_parallel"] == 2 and content["mcd_target"] > 0 and content["mcd_source_target"] > 0
    assert result["reconstruction"]["n"] == 3 and math.isfinite(result["reconstruction"]["mcd"])
    assert [p["predicted_speaker"] in speaker["speakers"] for p in result["pairs"]] == [True] * 3
    assert "classified as target" in format_conversion_report(result)
    with pytest.raises(ValueError, match="spk09"):
        evaluate_conversion(tiny_model, [(pairs[0][0], pairs[0][1], "spk00", "spk09")], real)
