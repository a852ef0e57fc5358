"""Sliding-window mean normalisation of log-mel frames: cepstral mean normalisation (CMN) over a window.

Subtracting each band's mean over the surrounding frames removes what is constant over seconds:
the channel, and much of the voice (spectral tilt, level, formant averages). This is
Kaldi's ``apply-cmvn-sliding`` (means only, centred window). In the log-mel domain a per-band
mean is the same operation as CMN on cepstra, since the DCT is linear. A code then has less of the
speaker to carry. The speaker-conditioned decoders are given the speaker anyway, so they do not
need it.

The window is centred and cut at the utterance's ends: frame n is normalised by the mean of the
valid frames in ``[n - left, n + right]``, so a waveform encoded in windows with this much extra
context gives the same frames as encoding it whole.
"""

from __future__ import annotations

import torch
from torch import Tensor


def window_frames(seconds: float, frame_rate: float) -> tuple[int, int]:
    """``(left, right)`` frames of a centred window of ``seconds`` (at least one frame: the frame itself)."""
    if not seconds > 0:
        raise ValueError(f"cmn_window_seconds must be > 0 (or null for no normalisation), got {seconds}")
    n = max(1, round(seconds * frame_rate))
    return (n - 1) // 2, n // 2


def sliding_mean(x: Tensor, mask: Tensor | None, left: int, right: int) -> Tensor:
    """Mean of each channel over the valid frames of a centred window.

    Args:
        x: (B, C, N) frames.
        mask: (B, 1, N) 1 for valid frames, 0 for padding; None: all valid.
        left, right: frames before and after frame n in its window.
    Returns:
        (B, C, N) float32: ``mean(x[..., m] for valid m in [n - left, n + right])``; 0 where no
        frame of the window is valid. Sums run in float64 (cumulative sums over an hour of frames).
    """
    B, C, N = x.shape
    weights = torch.ones(B, 1, N, dtype=torch.float64, device=x.device) if mask is None else mask.double()
    zero = x.new_zeros(B, C + 1, 1, dtype=torch.float64)
    # Column k of ``sums`` is the sum of frames [0, k): prefix sums of the weighted frames and of the weights.
    sums = torch.cat([zero, torch.cat([x.double() * weights, weights], 1).cumsum(-1)], -1)  # (B, C + 1, N + 1)
    n = torch.arange(N, device=x.device)
    hi = (n + right + 1).clamp(max=N)
    lo = (n - left).clamp(min=0)
    window = sums[..., hi] - sums[..., lo]  # (B, C + 1, N)
    return (window[:, :C] / window[:, C:].clamp_min(1.0)).float()
