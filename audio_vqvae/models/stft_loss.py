"""Multi-resolution STFT loss (Yamamoto et al. 2020, Parallel WaveGAN, section 2.3): spectral convergence
plus L1 log-magnitude distance, averaged over several analysis resolutions."""

from __future__ import annotations

import torch
from torch import Tensor

# (FFT size, hop, window) at 16 kHz: 16, 32 and 64 ms windows, as Parallel WaveGAN's at 24 kHz scaled.
RESOLUTIONS: tuple[tuple[int, int, int], ...] = ((256, 64, 256), (512, 128, 512), (1024, 256, 1024))


def stft_magnitude(x: Tensor, n_fft: int, hop: int, win: int) -> Tensor:
    """(B, T) waveform -> (B, n_fft // 2 + 1, frames) magnitudes, floored at 1e-7 (float32)."""
    window = torch.hann_window(win, device=x.device)
    spec = torch.stft(x.float(), n_fft, hop, win, window, return_complex=True)
    return spec.abs().clamp(min=1e-7)


def multi_resolution_stft_loss(
    prediction: Tensor, target: Tensor, resolutions: tuple[tuple[int, int, int], ...] = RESOLUTIONS
) -> Tensor:
    """Spectral convergence ``||S_t - S_p||_F / ||S_t||_F`` plus ``mean |log S_t - log S_p|``, averaged
    over ``resolutions``.

    Args:
        prediction, target: (B, T) waveforms.
    Returns:
        () float32 loss.
    """
    with torch.autocast(device_type=prediction.device.type, enabled=False):
        total = prediction.new_zeros((), dtype=torch.float32)
        for n_fft, hop, win in resolutions:
            p, t = stft_magnitude(prediction, n_fft, hop, win), stft_magnitude(target, n_fft, hop, win)
            convergence = torch.linalg.norm(t - p) / torch.linalg.norm(t).clamp(min=1e-7)
            total = total + convergence + (t.log() - p.log()).abs().mean()
        return total / len(resolutions)
