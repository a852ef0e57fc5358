"""Tests for audio_vqvae.data.resample: soxr's aliasing and lengths, and the block stream equal to one call."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import soxr
import torch

from audio_vqvae.data.resample import Resampler, resample, resampled_length


def tone(freq: float, rate: int, n: int) -> np.ndarray:
    return (0.5 * np.sin(2 * np.pi * freq * np.arange(n) / rate)).astype(np.float32)


def level_db(x: np.ndarray, reference: float = 0.5) -> float:
    """RMS of ``x`` relative to that of a sine of amplitude ``reference``, in dB."""
    return 20 * np.log10(np.sqrt(np.mean(x.astype(np.float64) ** 2)) / (reference / np.sqrt(2)) + 1e-300)


def test_a_tone_above_the_new_nyquist_rate_is_removed_and_one_below_is_kept():
    """48 -> 16 kHz: a 9 kHz tone (above 8 kHz) is attenuated by at least 60 dB (-146.5 dB with
    soxr, -16.8 dB with torchaudio); a 1 kHz tone passes within 0.1 dB."""
    n = 48000
    for freq, low, high in [(9000.0, -np.inf, -60.0), (1000.0, -0.1, 0.1)]:
        y = resample(torch.from_numpy(tone(freq, 48000, n)), 48000, 16000).numpy()
        assert y.shape == (resampled_length(n, 48000, 16000),) == (16000,)
        assert low <= level_db(y[500:-500]) <= high, freq  # away from the edges (the filter's ramp)


def test_aliasing_of_an_upsampled_tone_and_a_44100_hz_source():
    """44.1 -> 16 kHz: a 10 kHz tone (above 8 kHz) is attenuated by at least 60 dB, with a rate ratio
    that is not an integer."""
    y = resample(torch.from_numpy(tone(10000.0, 44100, 44100)), 44100, 16000).numpy()
    assert level_db(y[500:-500]) <= -60.0


@pytest.mark.parametrize("orig, new", [(48000, 16000), (22050, 16000), (8000, 16000), (44100, 16000), (32000, 16000)])
def test_output_length_is_n_times_new_over_old_rounded_half_up(orig, new):
    for n in [1, 2, 3, 5, 7, 100, 481, 4801, 22050 * 3 + 7]:
        expected = int(np.floor(n * new / orig + 0.5))
        assert resampled_length(n, orig, new) == expected
        assert resample(torch.zeros(n), orig, new).numel() == expected
        assert len(soxr.resample(np.zeros(n, np.float32), orig, new, quality="HQ")) == expected


def test_resample_shapes_dtypes_and_identity():
    x = torch.randn(2, 3, 480)
    assert resample(x, 16000, 16000) is x
    y = resample(x, 48000, 16000)
    assert y.shape == (2, 3, 160) and y.dtype == torch.float32
    # rows are resampled independently: each equals resampling it alone
    assert torch.allclose(y[1, 2], resample(x[1, 2], 48000, 16000), atol=1e-6)
    assert resample(x.double(), 48000, 16000).dtype == torch.float64
    assert resample(torch.zeros(2, 0), 48000, 16000).shape == (2, 0)
    with pytest.raises(ValueError, match="positive"):
        resample(x, 0, 16000)


@pytest.mark.parametrize("orig, new", [(48000, 16000), (44100, 16000), (8000, 16000)])
def test_streaming_equals_one_call_across_block_boundaries(orig, new):
    """Blocks of random sizes (1 sample to 3 s) give exactly the samples of one call on the whole signal."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal(orig * 7 + 13).astype(np.float32) * 0.1
    whole = resample(torch.from_numpy(x), orig, new).numpy()
    stream, pieces, start = Resampler(orig, new), [], 0
    while start < len(x):
        size = int(rng.choice([1, 17, 1000, 4096, orig // 3, 3 * orig]))
        block = x[start : start + size]
        start += size
        pieces.append(stream(block, last=start >= len(x)))
    joined = np.concatenate(pieces)
    assert joined.shape == whole.shape == (resampled_length(len(x), orig, new),)
    np.testing.assert_allclose(joined, whole, rtol=0, atol=1e-6)


def test_equal_rates_pass_blocks_through():
    block = np.arange(5, dtype=np.float32)
    assert Resampler(16000, 16000)(block, last=True) is block


def test_resampling_needs_no_torchaudio(monkeypatch):
    monkeypatch.setitem(sys.modules, "torchaudio", None)  # makes `import torchaudio` raise ImportError
    assert resample(torch.zeros(480), 48000, 16000).numel() == 160
