"""YIN f0 and voicing: tones are voiced at their f0, noise and silence are not."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from audio_vqvae.evaluation.metrics.pitch import voicing_summary, yin

SR = 16000


def _harmonic(f0: float, seconds: float, n_harmonics: int = 15) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return 0.1 * sum(np.sin(2 * np.pi * k * f0 * t + k) / k for k in range(1, n_harmonics + 1) if k * f0 < SR / 2)


def _noise(seconds: float, seed: int = 0) -> np.ndarray:
    return 0.1 * np.random.default_rng(seed).standard_normal(int(seconds * SR))


@pytest.mark.parametrize("f0", [120.0, 85.0, 230.0])
def test_harmonic_signal_is_voiced_at_its_f0(f0):
    track = yin(torch.from_numpy(_harmonic(f0, 1.0)), SR)
    assert track.f0.shape == track.voiced.shape == (100,)  # 10 ms frames
    assert track.voiced_fraction > 0.95
    assert track.median_f0 == pytest.approx(f0, rel=0.02)
    assert np.all(np.abs(track.f0[track.voiced] / f0 - 1) < 0.02)  # no octave errors anywhere


def test_noise_and_silence_are_unvoiced():
    assert yin(_noise(1.0), SR).voiced_fraction < 0.02
    silent = yin(np.zeros(SR), SR)
    assert silent.voiced_fraction == 0.0 and silent.median_f0 is None
    # a tone with digital silence and faint noise around it: only the tone is voiced
    x = np.concatenate([np.zeros(SR // 2), _harmonic(120, 0.5), 1e-4 * _noise(0.5, seed=1)])
    track = yin(x, SR)
    assert not track.voiced[:45].any() and not track.voiced[105:].any()
    assert track.voiced[52:98].all()


def test_half_tone_half_noise_is_half_voiced():
    x = np.concatenate([_harmonic(120, 1.5), _noise(1.5)])
    assert yin(x, SR).voiced_fraction == pytest.approx(0.5, abs=0.05)
    summary = voicing_summary([_harmonic(120, 1.0), _noise(1.0)], SR)
    assert summary["voiced"] == pytest.approx(0.5, abs=0.05)
    assert summary["median_f0_hz"] == pytest.approx(120, rel=0.02)


def test_short_input_and_bad_range():
    assert yin(np.zeros(50), SR).voiced_fraction is None
    assert voicing_summary([np.zeros(50)], SR) == {"voiced": None, "median_f0_hz": None}
    with pytest.raises(ValueError, match="fmin"):
        yin(np.zeros(SR), SR, fmin=300, fmax=200)
