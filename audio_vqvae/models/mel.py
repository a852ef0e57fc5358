"""Log-mel frames on the code grid, and a speaker-conditioned mel decoder: an auxiliary reconstruction target.

A WaveNet decoder can model much of the waveform from its own past samples, so early in training the
encoder gets little gradient through it and its codes carry little content (the posterior collapse the
VQ-VAE paper set out to avoid). A small non-autoregressive decoder that must rebuild the log-mel
spectrogram from the codes and the speaker alone has no such shortcut: every frame's spectral envelope
has to come from the codes, while the speaker embedding supplies what is common to a voice. It is the
reconstruction target of the VQ-VAE systems for acoustic unit discovery in van Niekerk et al. 2020
("Vector-quantized neural networks for acoustic unit discovery in the ZeroSpeech 2020 challenge"),
used here beside the WaveNet's waveform likelihood.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ..data.spectrum import _mel_basis, fft_size, mel_power

LOG_FLOOR = 1e-5  # mel power floor before the log (-50 dB): silence does not dominate an L1 loss


class LogMel(nn.Module):
    """Batched natural-log mel power frames, frame n centred on sample (n + 1/2) * hop: the samples code n reads.

    The same grid as ``data.spectrum.log_mel_frames``, on any device and batched.

    Args:
        sample_rate: Hz.
        hop_length: samples per frame (the encoder's hop).
        n_mels: mel bands.
        win_length: analysis window in samples; None: 25 ms, or the hop if longer. FFT size: next power of two.
    """

    def __init__(self, sample_rate: int = 16000, hop_length: int = 64, n_mels: int = 80, win_length: int | None = None):
        super().__init__()
        self.hop_length = hop_length
        self.win_length = win_length or max(round(0.025 * sample_rate), hop_length)
        self.n_fft = fft_size(self.win_length)
        basis = _mel_basis(sample_rate, self.n_fft, n_mels, 0.0, sample_rate / 2)  # (n_mels, n_fft // 2 + 1)
        self.register_buffer("basis", basis, persistent=False)
        self.register_buffer("window", torch.hann_window(self.win_length), persistent=False)

    def forward(self, wav: Tensor) -> Tensor:
        """(B, T) waveform -> (B, n_mels, N) float32 ``ln(mel power + 1e-5)``, N = T // hop_length."""
        N = wav.size(-1) // self.hop_length
        with torch.autocast(device_type=wav.device.type, enabled=False):
            mel = mel_power(wav.float(), self.hop_length, N, self.win_length, self.window, self.basis)
        return torch.log(mel + LOG_FLOOR)  # (B, n_mels, N)


class MelDecoder(nn.Module):
    """Quantized latents and a speaker to log-mel frames: conv in, residual conv blocks, 1x1 conv out.

    Non-causal and non-autoregressive: frame n sees the codes within ``n_layers * (kernel_size - 1) / 2``
    frames of it plus the speaker embedding, which is added to every block's input.

    Args:
        in_channels: D, the latent dimension.
        n_mels: output bands.
        channels: width of the conv stack.
        n_layers: residual blocks (ReLU, conv k, ReLU, conv 1).
        kernel_size: odd kernel of the convs.
        n_speakers, speaker_dim: speaker embedding table.
    """

    def __init__(
        self,
        in_channels: int = 64,
        n_mels: int = 80,
        channels: int = 256,
        n_layers: int = 3,
        kernel_size: int = 5,
        n_speakers: int = 1,
        speaker_dim: int = 64,
    ):
        super().__init__()
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"mel decoder kernel_size must be odd, got {kernel_size}")
        if n_layers < 0 or channels < 1 or n_mels < 1:
            raise ValueError(
                f"mel decoder needs n_layers >= 0, channels >= 1, n_mels >= 1 (got {n_layers}, {channels}, {n_mels})"
            )
        pad = kernel_size // 2
        self.n_mels = n_mels
        self.conv_in = nn.Conv1d(in_channels, channels, kernel_size, padding=pad)
        self.speaker_embedding = nn.Embedding(n_speakers, speaker_dim)
        self.speaker_proj = nn.Linear(speaker_dim, channels)
        self.blocks = nn.ModuleList(
            nn.Sequential(
                nn.ReLU(),
                nn.Conv1d(channels, channels, kernel_size, padding=pad),
                nn.ReLU(),
                nn.Conv1d(channels, channels, 1),
            )
            for _ in range(n_layers)
        )
        self.conv_out = nn.Conv1d(channels, n_mels, 1)

    def forward(self, latents: Tensor, speaker: Tensor) -> Tensor:
        """(B, D, N) latents and (B,) speaker ids -> (B, n_mels, N) log-mel frames."""
        s = self.speaker_proj(self.speaker_embedding(speaker)).unsqueeze(-1)  # (B, C, 1)
        x = self.conv_in(latents) + s  # (B, C, N)
        for block in self.blocks:
            x = x + block(x + s)
        return self.conv_out(F.relu(x))
