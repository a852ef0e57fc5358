"""Linear prediction from log-mel frames: Levinson-Durbin, the streaming all-pole filter, the noise vocoder."""

from __future__ import annotations

import numpy as np
import torch

from audio_vqvae.models.lpc import (
    AllPoleFilter,
    envelope_transplant,
    levinson,
    lpc_from_log_mel,
    noise_vocoder,
    prediction_error,
)
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
    out = noise_vocoder(mel, log_mel, hop, sr, torch.Generator().manual_seed(0))
    ratio = float(out[0, 2000:-2000].pow(2).mean() / wav[2000 : out.size(1) - 2000].pow(2).mean())
    assert 0.5 < ratio < 2.0, ratio


def test_prediction_error_is_what_the_all_pole_filter_inverts():
    torch.manual_seed(1)
    hop, n, p = 16, 9, 5
    x = torch.randn(2, n * hop) * 0.1
    a = torch.randn(2, n, p) * 0.2
    e = prediction_error(x, a, hop)
    assert torch.allclose(AllPoleFilter(hop)(e, a), x, atol=1e-5)


def test_envelope_transplant_takes_the_resonance_of_the_other_spectrogram():
    """Noise with a 1 kHz resonance given the log-mel of a 3 kHz one peaks at 3 kHz, at that level."""
    sr, hop = 16000, 64
    low = torch.from_numpy(ar_process([0.97 * np.exp(2j * np.pi * 1000 / sr)], sr, seed=1)).float()
    high = torch.from_numpy(ar_process([0.97 * np.exp(2j * np.pi * 3000 / sr)], sr, seed=2)).float()
    front = LogMel(sr, hop, 80)
    n = sr // hop * hop
    out = envelope_transplant(low[:n].view(1, -1), front(high[:n].view(1, -1)), front, hop, sr)
    spectrum = np.abs(np.fft.rfft(out[0].numpy())) ** 2
    freqs = np.fft.rfftfreq(out.size(1), 1 / sr)
    band = lambda f: spectrum[(freqs > f - 200) & (freqs < f + 200)].mean()  # noqa: E731
    assert band(3000) > 10 * band(1000)
    ratio = float(out[0, 2000:-2000].pow(2).mean() / high[2000 : n - 2000].pow(2).mean())
    assert 0.5 < ratio < 2.0, ratio


def test_lpc_of_a_batch_is_the_lpc_of_each_utterance():
    """Leading dimensions are batch dimensions: (B, n_mels, N) gives each row what (n_mels, N) gives it."""
    front = LogMel(16000, 64, 80)
    wav = torch.from_numpy(
        np.stack(
            [ar_process([0.9 * np.exp(2j * np.pi * f / 16000)], 2560, seed=i) for i, f in enumerate((500, 2000, 4000))]
        )
    ).float()
    log_mel = front(wav)  # (3, 80, 40)
    a, gain = lpc_from_log_mel(log_mel, front.basis, front.window)
    assert a.shape == (3, 40, 16) and gain.shape == (3, 40)
    for b in range(3):
        a_b, gain_b = lpc_from_log_mel(log_mel[b], front.basis, front.window)
        assert torch.allclose(a[b], a_b) and torch.allclose(gain[b], gain_b)
