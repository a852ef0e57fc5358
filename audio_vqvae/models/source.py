"""The excitation of a neural source-filter model: sines at f0 and its harmonics where voiced, noise where not.

NSF's source module (Wang, Takaki & Yamagishi 2019, "Neural source-filter waveform models for
statistical parametric speech synthesis", section 3.1): a per-sample f0 (the frame's, held for its
hop) drives a phase that runs on across frames; harmonic k is ``A sin(2 pi k phase + phi_k)`` plus
Gaussian noise of std ``sigma`` where the frame is voiced and below Nyquist, and noise of std ``A / 3``
elsewhere (A = 0.1, sigma = 0.003 as in the paper). The phase offsets phi_k are random in training
and 0 at generation. The source carries its phase and its noise stream across pieces, so a stream
cut into pieces of any size gives the excitation of one pass.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


class NoiseStream:
    """Standard Gaussian noise (B, C, n), drawn in blocks of ``block`` samples whatever ``n`` is asked for,
    so that any split of a stream into pieces gives the same numbers."""

    def __init__(
        self,
        batch: int,
        channels: int,
        device: torch.device | str,
        generator: torch.Generator | None = None,
        block: int = 4096,
    ):
        self.shape, self.device, self.generator, self.block = (batch, channels), device, generator, block
        self.buffer = torch.zeros(batch, channels, 0, device=device)

    def take(self, n: int) -> Tensor:
        """The next ``n`` samples of every row and channel: (B, C, n)."""
        while self.buffer.size(-1) < n:
            fresh = torch.randn(*self.shape, self.block, device=self.device, generator=self.generator)
            self.buffer = torch.cat([self.buffer, fresh], -1)
        out, self.buffer = self.buffer[..., :n], self.buffer[..., n:]
        return out


class HarmonicSource:
    """The excitation of a batch, piece by piece (see the module docstring).

    Args:
        batch: B.
        harmonics: H, sines at f0, 2 f0, ..., H f0 (each its own channel).
        hop_length: samples per f0 frame.
        sample_rate: Hz.
        device: where the excitation is made.
        generator: draws the noise (and the random phases); None: the global generator.
        random_phase: a random phase offset per row and harmonic (training); False: 0 (generation).
        sine_amplitude, noise_std: A and sigma.
    """

    def __init__(
        self,
        batch: int,
        harmonics: int,
        hop_length: int,
        sample_rate: int,
        device: torch.device | str = "cpu",
        generator: torch.Generator | None = None,
        random_phase: bool = False,
        sine_amplitude: float = 0.1,
        noise_std: float = 0.003,
    ):
        self.hop_length, self.sample_rate = hop_length, sample_rate
        self.sine_amplitude, self.noise_std = sine_amplitude, noise_std
        self.k = torch.arange(1, harmonics + 1, device=device, dtype=torch.float64).view(1, -1, 1)  # (1, H, 1)
        self.offset = (
            torch.rand(batch, harmonics, 1, device=device, generator=generator, dtype=torch.float64)
            if random_phase
            else torch.zeros(batch, harmonics, 1, device=device, dtype=torch.float64)
        )
        self.phase = torch.zeros(batch, 1, device=device, dtype=torch.float64)  # cycles, in [0, 1)
        self.noise = NoiseStream(batch, harmonics, device, generator)

    def __call__(self, f0: Tensor) -> Tensor:
        """The excitation of the next frames.

        Args:
            f0: (B, n) Hz of each frame, 0 where unvoiced.
        Returns:
            (B, H, n * hop) float32 excitation.
        """
        f = f0.detach().to(torch.float64).repeat_interleave(self.hop_length, -1)  # (B, T) Hz per sample
        phase = self.phase + torch.cumsum(f / self.sample_rate, -1)  # (B, T) cycles
        self.phase = phase[:, -1:] % 1.0
        cycles = (self.k * (phase % 1.0).unsqueeze(1) + self.offset) % 1.0  # (B, H, T)
        f = f.unsqueeze(1)  # (B, 1, T)
        voiced = (f > 0) & (self.k * f < self.sample_rate / 2)  # (B, H, T)
        sines = torch.sin(2 * math.pi * cycles).float() * self.sine_amplitude
        noise = self.noise.take(f0.size(-1) * self.hop_length)  # (B, H, T)
        std = torch.where(voiced, self.noise_std, self.sine_amplitude / 3)
        return torch.where(voiced, sines, 0.0) + noise * std.float()
