"""Linear prediction from log-mel frames: Levinson-Durbin, the streaming all-pole filter, the noise vocoder."""

from __future__ import annotations

import numpy as np
import torch

from audio_vqvae.models.lpc import AllPoleFilter, levinson, lpc_from_log_mel, noise_vocoder
from audio_vqvae.models.mel import LogMel


def ar_process(poles: list[complex], n: int, seed: int = 0) -> np.ndarray:
    """White noise through the all-pole filter with these poles (and their conjugates)."""
    from scipy.signal import lfilter

    den = np.real(np.poly([p for q in poles for p in (q, np.conj(q))]))
    return lfilter([1.0], den, np.random.default_rng(seed).standard_normal(n)) * 0.01


def test_levinson_solves_the_normal_equations():
    rng = np.random.default_rng(0)
    x = rng.standard_normal(4000)
    x = np.convolve(x, [1.0, 0.6, -0.3, 0.2])
    p = 6
    r = np.array([x[: len(x) - k] @ x[k:] for k in range(p + 1)])
    a, err = levinson(torch.from_numpy(r).unsqueeze(0), p)
    toeplitz = np.array([[r[abs(i - j)] for j in range(p)] for i in range(p)])
    want = np.linalg.solve(toeplitz, -r[1:])
    assert np.allclose(a[0].numpy(), want, atol=1e-9)
    assert np.isclose(float(err[0]), r[0] + want @ r[1:], rtol=1e-9)


def test_the_all_pole_filter_inverts_the_prediction_error_filter_in_pieces():
    """x -> A(z) x (a filter per frame) -> 1 / A(z) gives x back, and filtering in pieces gives the same."""
    torch.manual_seed(0)
    hop, n, p = 32, 12, 4
    x = torch.randn(2, n * hop, dtype=torch.float64)
    a = torch.randn(2, n, p, dtype=torch.float64) * 0.2
    padded = torch.nn.functional.pad(x, (p, 0))
    e = x.clone()
    for t in range(n * hop):
        frame = t // hop
        e[:, t] += (a[:, frame] * padded[:, t : t + p].flip(-1)).sum(-1)
    whole = AllPoleFilter(hop)(e.float(), a.float())
    assert torch.allclose(whole.double(), x, atol=1e-4)
    stream = AllPoleFilter(hop)
    pieces = torch.cat(
        [stream(e[:, : 5 * hop].float(), a[:, :5].float()), stream(e[:, 5 * hop :].float(), a[:, 5:].float())], 1
    )
    assert torch.equal(pieces, whole)


def test_lpc_from_log_mel_finds_the_resonance_and_the_level():
    """An AR(2) process with a resonance at 1 kHz: the filter from its log-mel peaks there, and white
    noise through it has about the process's power."""
    sr, hop = 16000, 64
    pole = 0.97 * np.exp(2j * np.pi * 1000 / sr)
    wav = torch.from_numpy(ar_process([pole], sr)).float()
    log_mel = LogMel(sr, hop, 80)
    mel = log_mel(wav.view(1, -1))  # (1, 80, N)
    a, gain = lpc_from_log_mel(mel, log_mel.basis, log_mel.window, 16, sr)
    freqs = np.linspace(0, sr / 2, 513)
    z = np.exp(-2j * np.pi * freqs / sr)
    middle = a[0, a.size(1) // 2].double().numpy()
    response = 1 / np.abs(1 + sum(c * z ** (k + 1) for k, c in enumerate(middle)))
    assert abs(freqs[response.argmax()] - 1000) < 150
    out = noise_vocoder(mel, log_mel.basis, log_mel.window, hop, sr, torch.Generator().manual_seed(0))
    ratio = float(out[0, 2000:-2000].pow(2).mean() / wav[2000 : out.size(1) - 2000].pow(2).mean())
    assert 0.5 < ratio < 2.0, ratio
