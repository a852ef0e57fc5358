"""Batched YIN f0 and voicing on any device: the source-filter decoder's pitch, and the voicing metric's.

YIN (de Cheveigné & Kawahara 2002), steps 2 to 5 of the paper, on frames every ``hop`` samples:

- the difference function ``d(tau) = sum_{j<W} (x_j - x_{j+tau})^2`` over an integration window
  of W samples, from the frame's autocorrelation by FFT;
- its cumulative mean normalised form ``d'(tau) = d(tau) tau / sum_{k=1}^{tau} d(k)``, ``d'(0) = 1``,
  which stays near 1 for noise and dips towards 0 at the period of a periodic signal;
- the absolute threshold: the first lag in [sr / fmax, sr / fmin] where d' falls below ``threshold``,
  then down to the bottom of that dip; a frame with no such dip is **unvoiced** (where the paper
  falls back on the global minimum, we want a voicing decision);
- parabolic interpolation of d' around the chosen lag, f0 = sr / lag.

A frame more than ``silence_db`` below the row's loudest frame (or digitally silent) is unvoiced
whatever its d'. Computed in float64 whatever the input's dtype.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F


def yin_f0(
    wav: Tensor,
    sample_rate: int,
    hop: int,
    *,
    fmin: float = 60.0,
    fmax: float = 500.0,
    threshold: float = 0.15,
    frame_ms: float = 25.0,
    silence_db: float = -40.0,
    center: bool = False,
) -> Tensor:
    """f0 of each frame, 0 where unvoiced.

    Args:
        wav: (B, T) or (T,) waveforms.
        sample_rate: Hz.
        hop: samples between frames.
        fmin, fmax: f0 search range in Hz (lags sr / fmax .. sr / fmin).
        threshold: absolute threshold on the cumulative mean normalised difference (0.1-0.2 in the paper).
        frame_ms: integration window W; each frame reads W + sr / fmin samples.
        silence_db: frames whose energy is this far below the row's loudest frame are unvoiced.
        center: frame n's samples are centred on sample (n + 1/2) * hop (the span code n covers);
            False: they start at sample n * hop.
    Returns:
        (B, N) or (N,) float64 f0 in Hz, N = T // hop; 0 for unvoiced frames.
    """
    if not 0 < fmin < fmax < sample_rate / 2:
        raise ValueError(f"need 0 < fmin < fmax < sample_rate / 2, got fmin={fmin}, fmax={fmax}")
    if hop < 1:
        raise ValueError(f"hop must be >= 1, got {hop}")
    single = wav.dim() == 1
    x = wav.detach().reshape(1 if single else wav.size(0), -1).to(torch.float64)  # (B, T)
    B, T = x.shape
    W = max(2, round(sample_rate * frame_ms / 1000))
    tau_min, tau_max = max(2, int(sample_rate / fmax)), int(-(-sample_rate // fmin))
    n = T // hop
    if n == 0:
        out = x.new_zeros(B, 0)
        return out[0] if single else out
    L = W + tau_max + 1
    left = max(0, L // 2 - hop // 2) if center else 0
    x = F.pad(x, (left, L))
    frames = x.unfold(1, L, hop)[:, :n]  # (B, N, L)

    # d(tau) = e(0) + e(tau) - 2 r(tau): window energies and cross-correlation of x[:W] with x.
    n_fft = 1 << (2 * L - 1).bit_length()
    spec = torch.fft.rfft(frames, n_fft) * torch.fft.rfft(frames[..., :W], n_fft).conj()
    r = torch.fft.irfft(spec, n_fft)[..., : tau_max + 1]  # (B, N, tau_max + 1)
    sq = F.pad(torch.cumsum(frames**2, -1), (1, 0))  # (B, N, L + 1)
    energy = sq[..., W : W + tau_max + 1] - sq[..., : tau_max + 1]  # (B, N, tau_max + 1), e(tau)
    d = (energy[..., :1] + energy - 2 * r).clamp(min=0.0)

    cumulative = torch.cumsum(d[..., 1:], -1)  # (B, N, tau_max)
    taus = torch.arange(1, tau_max + 1, device=x.device, dtype=x.dtype)
    safe = torch.where(cumulative > 0, cumulative, torch.ones_like(cumulative))
    cmnd = torch.where(cumulative > 0, d[..., 1:] * taus / safe, torch.ones_like(cumulative))
    cmnd = F.pad(cmnd, (1, 0), value=1.0)  # (B, N, tau_max + 1), d'(0) = 1

    frame_energy = energy[..., 0]  # (B, N), e(0): the integration window's energy
    floor = frame_energy.amax(-1, keepdim=True).clamp(min=1e-20) * 10 ** (silence_db / 10)
    loud = frame_energy > floor
    lags = cmnd[..., tau_min : tau_max + 1]  # (B, N, lags)
    below = lags < threshold
    voiced = below.any(-1) & loud
    idx = torch.arange(lags.size(-1), device=x.device)
    first = below.to(torch.uint8).argmax(-1, keepdim=True)  # (B, N, 1)
    # the bottom of the dip: the first lag at or after ``first`` whose successor is not lower
    stop = F.pad(lags[..., 1:] >= lags[..., :-1], (0, 1), value=True)
    tau = tau_min + (stop & (idx >= first)).to(torch.uint8).argmax(-1)  # (B, N)

    inner = tau < tau_max
    t = tau.clamp(max=tau_max - 1).unsqueeze(-1)
    a, b, c = (cmnd.gather(-1, t + k).squeeze(-1) for k in (-1, 0, 1))
    curvature = a - 2 * b + c
    shift = torch.where(inner & (curvature > 0), 0.5 * (a - c) / torch.where(curvature > 0, curvature, 1.0), 0.0)
    f0 = torch.where(voiced, sample_rate / (tau + shift), 0.0)
    return f0[0] if single else f0
