"""The standard mel-cepstral distortion: SPTK-style mel-cepstra, c0 excluded, DTW, dB."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.signal import lfilter

from audio_vqvae.evaluation.metrics.spectral import (
    _freqt_matrix,
    mcd_frames,
    mcep_alpha,
    mel_cepstral_distortion,
    mel_cepstrum,
    reconstruction_metrics,
)

SR = 16000


def _voice(f0: float, formants: tuple[float, ...], seconds: float, seed: int = 0) -> torch.Tensor:
    """A buzzy vowel: pulse train at f0 through two-pole resonators, plus a little noise."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    x = np.zeros(n)
    x[:: int(SR / f0)] = 1.0
    for f in formants:
        r, theta = 0.97, 2 * np.pi * f / SR
        x = lfilter([1.0], [1.0, -2 * r * np.cos(theta), r * r], x)
    x = 0.3 * x / np.abs(x).max() + 1e-3 * rng.standard_normal(n)
    return torch.from_numpy(x.astype(np.float32))


def _reference_mcd(c_ref: np.ndarray, c_other: np.ndarray, use_dtw: bool) -> float:
    """The formula written out: 10 / ln 10 * sqrt(2 * sum_{d=1}^{24} (c_d - c'_d)^2), mean over aligned frames."""
    a, b = c_ref[:, 1:25], c_other[:, 1:25]
    frame_mcd = 10 / math.log(10) * np.sqrt(2 * ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1))  # (N, M)
    if not use_dtw:
        n = min(len(a), len(b))
        return float(np.mean(np.diag(frame_mcd[:n, :n])))
    n, m = frame_mcd.shape  # plain O(N M) DTW: steps (1, 0), (0, 1), (1, 1), path-length normalised
    cost, length = np.full((n + 1, m + 1), np.inf), np.zeros((n + 1, m + 1))
    cost[0, 0] = 0.0
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            prev = min(
                (cost[i - 1, j - 1], 0, i - 1, j - 1), (cost[i, j - 1], 1, i, j - 1), (cost[i - 1, j], 2, i - 1, j)
            )
            cost[i, j] = prev[0] + frame_mcd[i - 1, j - 1]
            length[i, j] = length[prev[2], prev[3]] + 1
    return float(cost[n, m] / length[n, m])


def test_identical_signals_give_zero():
    x = _voice(120, (700, 1200), 0.5)
    assert mel_cepstral_distortion(x, x, SR) == 0.0
    assert mel_cepstral_distortion(x, x, SR, use_dtw=False) == 0.0
    assert reconstruction_metrics(x, x, SR)["mcd"] == 0.0


def test_matches_the_formula_on_the_same_cepstra():
    x, y = _voice(120, (700, 1200), 0.3), _voice(200, (400, 2200), 0.36, seed=1)
    cx, cy = mel_cepstrum(x, SR), mel_cepstrum(y, SR)
    assert cx.shape == (len(x) // 80, 25) and cy.shape == (len(y) // 80, 25)  # 5 ms frames, order 24
    for use_dtw in (False, True):
        expected = _reference_mcd(cx, cy, use_dtw)
        assert mel_cepstral_distortion(x, y, SR, use_dtw=use_dtw) == pytest.approx(expected, rel=1e-9)
        assert mcd_frames(cx, cy, use_dtw=use_dtw) == pytest.approx(expected, rel=1e-9)
    assert 2.0 < mel_cepstral_distortion(x, y, SR) < 30.0  # different vowels: several dB


def test_symmetric_and_gain_invariant():
    x, y = _voice(120, (700, 1200), 0.4), _voice(180, (500, 1800), 0.5, seed=2)
    assert mel_cepstral_distortion(x, y, SR) == pytest.approx(mel_cepstral_distortion(y, x, SR), rel=1e-9)
    assert mel_cepstral_distortion(x, y, SR, use_dtw=False) == pytest.approx(
        mel_cepstral_distortion(y, x, SR, use_dtw=False), rel=1e-9
    )
    assert mel_cepstral_distortion(x, 0.25 * x, SR, use_dtw=False) < 0.01  # c0 (gain) is excluded


def test_dtw_aligns_different_lengths():
    a, b = _voice(120, (700, 1200), 0.25), _voice(150, (350, 2300), 0.25, seed=3)
    x = torch.cat([a, b])  # vowel A then vowel B
    stretched = torch.cat([_voice(120, (700, 1200), 0.45, seed=4), _voice(150, (350, 2300), 0.3, seed=5)])
    swapped = torch.cat([_voice(150, (350, 2300), 0.45, seed=4), _voice(120, (700, 1200), 0.3, seed=5)])
    aligned = mel_cepstral_distortion(x, stretched, SR)
    assert aligned < 0.5 * mel_cepstral_distortion(x, stretched, SR, use_dtw=False)
    assert aligned < 0.5 * mel_cepstral_distortion(x, swapped, SR)


def test_cepstra_use_sptk_convention():
    # A one-pole filter 1 / (1 - a z^-1) has ln H(z) = sum_m a^m / m z^-m: with alpha = 0 the
    # cepstrum of noise through it must give c_m = a^m / m (the convention MCD's constant assumes),
    # not half of it.
    rng = np.random.default_rng(0)
    x = lfilter([1.0], [1.0, -0.5], rng.standard_normal(4 * SR)) * 0.05
    c = mel_cepstrum(x, SR, alpha=0.0).mean(0)
    assert c[1] == pytest.approx(0.5, abs=0.02) and c[2] == pytest.approx(0.125, abs=0.02)


def test_freqt_warps_the_spectrum():
    # The warped cepstrum describes the same log spectrum on the all-pass-warped frequency axis.
    alpha = 0.42
    rng = np.random.default_rng(0)
    c = np.zeros(513)
    c[:20] = rng.standard_normal(20) / np.arange(1, 21)
    mc = _freqt_matrix(513, 80, alpha) @ c
    w = np.linspace(0, np.pi, 50)
    warped = w + 2 * np.arctan(alpha * np.sin(w) / (1 - alpha * np.cos(w)))
    log_spectrum = np.cos(np.outer(w, np.arange(513))) @ c
    assert np.allclose(np.cos(np.outer(warped, np.arange(81))) @ mc, log_spectrum, atol=1e-6)
    assert np.allclose(_freqt_matrix(513, 24, 0.0), np.eye(25, 513))


def test_alpha_per_sample_rate():
    assert mcep_alpha(16000) == 0.42 and mcep_alpha(22050) == 0.45  # SPTK's table
    assert mcep_alpha(11025) == pytest.approx(0.36, abs=0.02)  # fitted to the mel scale between 8 and 16 kHz
    assert mcep_alpha(8000) < mcep_alpha(11025) < mcep_alpha(16000)


def test_too_short_is_refused():
    with pytest.raises(ValueError, match="at least one analysis frame"):
        mel_cepstral_distortion(torch.zeros(10), torch.zeros(1000), SR)
