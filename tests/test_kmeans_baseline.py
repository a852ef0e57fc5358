"""The MFCC k-means baseline (``metrics.features``): the standard frames (checked against a second implementation),
scikit-learn's k-means, deterministic, independent of the model, and saved so that fairseq/textlesslib's
``joblib.load(path).predict(frames)`` gives the units scored."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import joblib
import numpy as np
import pytest
import torch
from trained_tiny import trained_checkpoint

from audio_vqvae import VQVAE, preset
from audio_vqvae.data.alignment import PhoneSegment, frame_labels
from audio_vqvae.data.synthetic import synthesize_corpus
from audio_vqvae.errors import EvaluationError, OutputExistsError
from audio_vqvae.evaluation.evaluate import evaluate_units, fit_baseline
from audio_vqvae.evaluation.metrics import KMeansUnits, baseline_frames, bitrate, cmvn, mfcc_frames, purity_and_pnmi
from audio_vqvae.evaluation.metrics.features import delta_width

ROOT = Path(__file__).resolve().parents[1]


def _blobs(seed: int = 0) -> tuple[list[torch.Tensor], np.ndarray]:
    """4 blobs at the corners of a square whose sides differ in scale by 1e6: (frames of 2 "utterances", blob ids)."""
    rng = np.random.default_rng(seed)
    corners = np.array([[0, 0], [1, 0], [0, 1], [1, 1]]) * [1000.0, 0.001]
    blob = rng.integers(0, 4, 400)
    x = corners[blob] + rng.standard_normal((400, 2)) * [20.0, 0.00002]
    return [torch.from_numpy(x[:250]).float(), torch.from_numpy(x[250:]).float()], blob


def _scored_units(predict, utterances, model: VQVAE) -> tuple[list[np.ndarray], list[str]]:
    """Units of ``predict`` on the MFCC frames of each (waveform, phone segments) on the model's code grid,
    and the frames' phones."""
    units, phones = [], []
    sr, hop = model.sample_rate, model.hop_length
    for wav, segments in utterances:
        n = wav.numel() // hop  # frames = codes
        units.append(predict(baseline_frames(wav, sr, hop, n_frames=n).numpy()))
        phones += frame_labels(segments, n, sr / hop)
    return units, phones


def _htk_deltas(x: np.ndarray, w: int) -> np.ndarray:
    """HTK book eq. 5.16 written out: sum_k k (x[n+k] - x[n-k]) / (2 sum_k k^2), the edge frames repeated."""
    padded = np.concatenate([np.repeat(x[:1], w, 0), x, np.repeat(x[-1:], w, 0)])
    n = len(x)
    num = sum(k * (padded[w + k : w + k + n] - padded[w - k : w - k + n]) for k in range(1, w + 1))
    return num / (2 * sum(k * k for k in range(1, w + 1)))


@pytest.mark.parametrize("hop, width", [(64, 10), (160, 4), (320, 2)])
def test_baseline_frames_are_the_standard_mfccs_deltas_over_40_ms_and_cmvn(hop, width):
    """A second implementation in numpy of the standard build: c0..c12, deltas and delta-deltas by HTK's regression
    over +-40 ms (librosa's 9 frames at 10 ms), then each dimension standardised over the utterance."""
    (u,) = synthesize_corpus(n_speakers=1, n_sentences=1)
    wav, sr = torch.from_numpy(u.wav), 16000
    assert delta_width(sr, hop) == width
    c = mfcc_frames(wav, sr, hop, with_deltas=False).double().numpy()  # (N, 13)
    assert c.shape[1] == 13
    d = _htk_deltas(c, width)
    x = np.concatenate([c, d, _htk_deltas(d, width)], 1)
    expected = (x - x.mean(0)) / x.std(0)
    got = baseline_frames(wav, sr, hop).double().numpy()
    np.testing.assert_allclose(got, expected, atol=2e-4)
    np.testing.assert_allclose(got.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(got.std(0), 1, atol=1e-4)
    flat = cmvn(torch.ones(5, 2))  # a dimension that does not move is 0, not NaN
    assert torch.equal(flat, torch.zeros(5, 2))


def test_kmeans_units_are_deterministic(tmp_path):
    frames, blob = _blobs()
    frames = [cmvn(f) for f in frames]
    km = KMeansUnits.fit(frames, 4, seed=3)
    units = torch.cat([km.assign(f) for f in frames]).numpy()
    # normalised per utterance, the 1e-3-wide side separates blobs as well as the 1000-wide one: one unit per blob
    assert all(len(set(units[blob == b])) == 1 for b in range(4)) and len(set(units)) == 4
    assert km.centroids.shape == (4, 2) and torch.equal(km.vectors(torch.tensor([2, 0])), km.centroids[[2, 0]])
    again = KMeansUnits.fit(frames, 4, seed=3)
    np.testing.assert_array_equal(again.model.cluster_centers_, km.model.cluster_centers_)
    assert km.n_fit_frames == 400 and KMeansUnits.fit(frames, 4, max_frames=100).n_fit_frames == 100
    with pytest.raises(OutputExistsError, match="folder"):
        km.save(tmp_path)
    assert not any(p.name.endswith(".tmp") for p in tmp_path.iterdir())


def test_kmeans_baseline_needs_nothing_of_the_model():
    code = (
        "import json, sys, torch\n"
        "from audio_vqvae.evaluation.metrics.features import KMeansUnits\n"
        "km = KMeansUnits.fit([torch.randn(50, 3)], 4)\n"
        "km.assign(torch.randn(7, 3))\n"
        "print(json.dumps([m for m in sys.modules if m.startswith('audio_vqvae.')]))\n"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    loaded = set(json.loads(out.stdout.strip().splitlines()[-1]))
    assert not loaded & {"audio_vqvae.models.quantizer", "audio_vqvae.models.vqvae", "audio_vqvae.models.encoder"}, (
        loaded
    )


def test_saved_baseline_predicts_the_units_the_evaluation_scored(tmp_path):
    corpus = list(synthesize_corpus(n_speakers=2, n_sentences=4))
    cfg = preset("tiny")
    cfg.decoder.n_speakers = 2
    torch.manual_seed(0)
    model = VQVAE.from_config(cfg).eval()
    alignments = {u.id: [PhoneSegment(a, b, p) for a, b, p in u.phones] for u in corpus}
    items = [(u.id, torch.from_numpy(u.wav), u.speaker) for u in corpus]
    train, held = items[::2], items[1::2]
    path = tmp_path / "baseline" / "mfcc_km.joblib"
    result = evaluate_units(model, train, held, alignments, save_baseline=path)

    km = joblib.load(path)  # what fairseq's quantize_with_kmeans.py and textlesslib's KMeansQuantizer do
    assert km.n_clusters == result["codebook_size"] == model.quantizer.codebook_size
    km.verbose = False  # textlesslib's KMeansQuantizer sets this, then reads n_clusters as its vocab_size
    units, phones = _scored_units(km.predict, [(w, alignments[u]) for u, w, _ in held], model)
    scores = purity_and_pnmi(np.concatenate(units), phones)
    base = result["baseline"]
    assert scores["pnmi"] == pytest.approx(base["pnmi"], abs=1e-12) and base["pnmi"] > 0.2
    assert scores["phone_purity"] == pytest.approx(base["phone_purity"], abs=1e-12)
    assert bitrate(units, result["eval_seconds"])["bitrate"] == pytest.approx(base["bitrate"], rel=1e-12)

    # a baseline fitted once (bench/learn.py scores every checkpoint against one) gives the same report
    once = fit_baseline(train, model.sample_rate, model.hop_length, model.quantizer.codebook_size)
    assert evaluate_units(model, train, held, alignments, baseline=once) == result
    with pytest.raises(ValueError, match="the baseline has K = 4"):
        evaluate_units(model, train, held, alignments, baseline=fit_baseline(train, 16000, model.hop_length, 4))

    with pytest.raises(EvaluationError, match="at least K = 32 training frames"):  # 0.1 s: 25 frames
        evaluate_units(model, [(train[0][0], train[0][1][:1600], train[0][2])], held, alignments)


def test_evaluate_units_save_baseline_option(synthetic_corpus, tmp_path_factory):
    from audio_vqvae.cli.evaluate import unit_inputs

    tmp = tmp_path_factory.mktemp("baseline_cli")
    ckpt = trained_checkpoint(synthetic_corpus, tmp)
    saved, report = tmp / "km" / "mfcc.joblib", tmp / "units.json"
    args = ["evaluate", "units", "--ckpt", str(ckpt), "--data", str(synthetic_corpus), "--out", str(report),
            "--abx-context", "any", "--max-utterances", "6", "--save-baseline", str(saved)]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run(
        [sys.executable, "-m", "audio_vqvae", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(report.read_text())
    model = VQVAE.load(ckpt)
    _, eval_items, alignments = unit_inputs(model, synthetic_corpus, max_utterances=6)
    utterances = [(wav, alignments[uid]) for uid, wav, _ in eval_items]
    units, phones = _scored_units(joblib.load(saved).predict, utterances, model)
    scores = purity_and_pnmi(np.concatenate(units), phones)
    assert scores["pnmi"] == pytest.approx(result["baseline"]["pnmi"], abs=1e-12)
