"""First-order pre-emphasis of the decoder's waveform domain, and its streaming inverse.

With ``model.pre_emphasis = a`` the WaveNet models ``e_t = x_t - a x_{t-1}`` instead of ``x_t``, and
generated samples are de-emphasised, ``x_t = e_t + a x_{t-1}``. The sampling and mu-law errors of the
decoder, white in the emphasised domain, then come out with the spectral tilt of speech instead of
as a flat hiss over the quiet high bands: the noise shaping of LPCNet (Valin & Skoglund 2019, a =
0.85). The codes, the mel targets and everything the encoder reads stay on the plain waveform.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


def check_coefficient(coefficient: float) -> float:
    """The coefficient itself; outside [0, 1) is a ValueError (the inverse filter would not be stable)."""
    if not 0.0 <= coefficient < 1.0:
        raise ValueError(f"pre_emphasis must be in [0, 1), got {coefficient}")
    return float(coefficient)


def pre_emphasis(wav: Tensor, coefficient: float) -> Tensor:
    """``x_t - a x_{t-1}`` along the last axis, with ``x_{-1} = 0``.

    Args:
        wav: (..., T) float waveform(s).
        coefficient: a in [0, 1); 0 returns ``wav`` itself.
    Returns:
        (..., T), same dtype and device.
    """
    if not check_coefficient(coefficient):
        return wav
    out = wav.clone()
    out[..., 1:] -= coefficient * wav[..., :-1]
    return out


class DeEmphasis:
    """Streaming inverse of ``pre_emphasis``: ``y_t = x_t + a y_{t-1}``, one state per row.

    Successive calls continue each row where the previous call stopped, so filtering a waveform in
    chunks gives exactly what filtering it whole gives (the recursion runs in float64 on the CPU,
    sample by sample, in scipy's ``lfilter``). Outputs are clamped to [-1, 1], the range of the
    mu-law decoder's own output.

    Args:
        coefficient: a in [0, 1); 0 makes every call return its input unchanged.
    """

    def __init__(self, coefficient: float):
        self.coefficient = check_coefficient(coefficient)
        self.state: np.ndarray | None = None  # (B, 1) a times the last output of each row (lfilter's zi)

    def __call__(self, x: Tensor) -> Tensor:
        """(B, n) emphasised samples -> (B, n) waveform, same dtype and device; B fixed across calls."""
        if not self.coefficient:
            return x
        from scipy.signal import lfilter  # scipy comes with librosa; imported here, only when used

        rows = x.detach().to("cpu", torch.float64).numpy()
        if self.state is None:
            self.state = np.zeros((rows.shape[0], 1))
        if self.state.shape[0] != rows.shape[0]:
            raise ValueError(f"DeEmphasis: {rows.shape[0]} rows after {self.state.shape[0]}")
        if rows.shape[1]:
            y, self.state = lfilter([1.0], [1.0, -self.coefficient], rows, axis=-1, zi=self.state)
        else:
            y = rows
        return torch.from_numpy(y).clamp_(-1.0, 1.0).to(x.device, x.dtype)
