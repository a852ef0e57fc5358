"""f0 and voicing of a recording with YIN: is a conversion voiced at all, and at what pitch.

YIN (de Cheveigné & Kawahara 2002, "YIN, a fundamental frequency estimator for speech and
music"), steps 2 to 5 of the paper, on frames of ``frame_ms`` every ``hop_ms``:

- the difference function ``d(tau) = sum_{j<W} (x_j - x_{j+tau})^2`` over an integration window
  of W samples, from the frame's autocorrelation by FFT;
- its cumulative mean normalised form ``d'(tau) = d(tau) tau / sum_{k=1}^{tau} d(k)``,
  ``d'(0) = 1``, which stays near 1 for noise and dips towards 0 at the period of a periodic
  signal;
- the absolute threshold: the first lag in [sr / fmax, sr / fmin] where d' falls below
  ``threshold``, then down to the bottom of that dip; a frame with no such dip is **unvoiced**
  (where the paper falls back on the global minimum, we want a voicing decision);
- parabolic interpolation of d' around the chosen lag, f0 = sr / lag.

A frame more than ``silence_db`` below the recording's loudest frame (or digitally silent) is
unvoiced whatever its d': low-level noise and room tone are not voice. Whisper-like output, the
WaveNet decoder's failure after short trainings, shows as a small voiced share.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor


@dataclass(frozen=True)
class PitchTrack:
    """Per-frame YIN output: ``f0`` (N,) Hz, NaN where unvoiced; ``voiced`` (N,) bool; ``hop_s`` frame step."""

    f0: np.ndarray
    voiced: np.ndarray
    hop_s: float

    @property
    def voiced_fraction(self) -> float | None:
        """Share of voiced frames; None for a recording shorter than one frame."""
        return float(self.voiced.mean()) if self.voiced.size else None

    @property
    def median_f0(self) -> float | None:
        """Median f0 (Hz) over voiced frames; None when none is voiced."""
        return float(np.median(self.f0[self.voiced])) if self.voiced.any() else None


def yin(
    wav: Tensor | np.ndarray,
    sample_rate: int,
    *,
    fmin: float = 60.0,
    fmax: float = 500.0,
    threshold: float = 0.15,
    frame_ms: float = 25.0,
    hop_ms: float = 10.0,
    silence_db: float = -40.0,
) -> PitchTrack:
    """YIN f0 and voicing decision of each frame (see the module docstring).

    Args:
        wav: (T,) waveform.
        sample_rate: Hz.
        fmin, fmax: f0 search range in Hz (lags sr / fmax .. sr / fmin).
        threshold: absolute threshold on the cumulative mean normalised difference (0.1-0.2 in
            the paper).
        frame_ms: integration window W; each frame reads W + sr / fmin samples.
        hop_ms: frame step.
        silence_db: frames whose energy is this far below the loudest frame's are unvoiced.
    Returns:
        A ``PitchTrack`` with N = T // hop frames, frame n starting at sample n * hop.
    """
    if not 0 < fmin < fmax < sample_rate / 2:
        raise ValueError(f"need 0 < fmin < fmax < sample_rate / 2, got fmin={fmin}, fmax={fmax}")
    x = torch.as_tensor(wav).detach().to("cpu", torch.float64).reshape(-1).numpy()
    hop = max(1, round(sample_rate * hop_ms / 1000))
    W = max(2, round(sample_rate * frame_ms / 1000))
    tau_min, tau_max = max(2, int(sample_rate / fmax)), int(np.ceil(sample_rate / fmin))
    n = x.size // hop
    if n == 0:
        return PitchTrack(np.zeros(0), np.zeros(0, dtype=bool), hop / sample_rate)
    L = W + tau_max + 1
    frames = np.lib.stride_tricks.sliding_window_view(np.pad(x, (0, L)), L)[: n * hop : hop]  # (N, L)

    # d(tau) = e(0) + e(tau) - 2 r(tau): window energies and cross-correlation of x[:W] with x.
    n_fft = 1 << (2 * L - 1).bit_length()
    r = np.fft.irfft(np.fft.rfft(frames, n_fft) * np.conj(np.fft.rfft(frames[:, :W], n_fft)), n_fft)
    r = r[:, : tau_max + 1]  # (N, tau_max + 1)
    sq = np.concatenate([np.zeros((n, 1)), np.cumsum(frames**2, axis=1)], axis=1)  # (N, L + 1)
    energy = sq[:, W : W + tau_max + 1] - sq[:, : tau_max + 1]  # (N, tau_max + 1), e(tau)
    d = np.maximum(energy[:, :1] + energy - 2 * r, 0.0)  # (N, tau_max + 1)

    cumulative = np.cumsum(d[:, 1:], axis=1)  # (N, tau_max)
    taus = np.arange(1, tau_max + 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        cmnd = np.where(cumulative > 0, d[:, 1:] * taus / cumulative, 1.0)  # (N, tau_max), d'(1..tau_max)
    cmnd = np.concatenate([np.ones((n, 1)), cmnd], axis=1)  # (N, tau_max + 1), d'(0) = 1

    f0 = np.full(n, np.nan)
    frame_energy = energy[:, 0]  # e(0): the integration window's energy
    loud = frame_energy > max(frame_energy.max(), 1e-20) * 10 ** (silence_db / 10)
    below = cmnd[:, tau_min : tau_max + 1] < threshold  # (N, lags)
    for i in np.flatnonzero(below.any(axis=1) & loud):
        tau = tau_min + int(np.argmax(below[i]))
        while tau < tau_max and cmnd[i, tau + 1] < cmnd[i, tau]:  # to the bottom of the dip
            tau += 1
        shift = 0.0
        if tau_min <= tau < tau_max:
            a, b, c = cmnd[i, tau - 1], cmnd[i, tau], cmnd[i, tau + 1]
            if a - 2 * b + c > 0:
                shift = 0.5 * (a - c) / (a - 2 * b + c)
        f0[i] = sample_rate / (tau + shift)
    return PitchTrack(f0, ~np.isnan(f0), hop / sample_rate)


def pooled_voicing(tracks: Sequence[PitchTrack]) -> tuple[float | None, float | None]:
    """(voiced frames / frames, median f0 in Hz over all voiced frames) of several tracks, frames pooled;
    None without frames, or without a voiced one for the f0."""
    voiced = np.concatenate([t.voiced for t in tracks]) if tracks else np.zeros(0, dtype=bool)
    f0 = np.concatenate([t.f0[t.voiced] for t in tracks]) if tracks else np.zeros(0)
    return (float(voiced.mean()) if voiced.size else None), (float(np.median(f0)) if f0.size else None)


def voicing_summary(wavs: list[Tensor | np.ndarray], sample_rate: int) -> dict[str, float | None]:
    """``pooled_voicing`` of ``yin`` on several recordings, as ``voiced`` and ``median_f0_hz``."""
    voiced, median_f0 = pooled_voicing([yin(w, sample_rate) for w in wavs])
    return {"voiced": voiced, "median_f0_hz": median_f0}
