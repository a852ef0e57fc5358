"""Strided 1-D convolutional encoder: raw waveform (B, 1, T) to latents (B, D, N), N = T // hop_length."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F


def hop_length(strides: tuple[int, ...] | list[int]) -> int:
    """Samples per latent frame: the product of the strides (64 for the paper's six strides of 2)."""
    return math.prod(strides)


def encoder_receptive_field(strides: tuple[int, ...], kernel_sizes: tuple[int, ...], n_residual_layers: int) -> int:
    """Receptive field of one latent frame in samples, for the layer stack that ``Encoder`` builds.

    Each strided conv widens the field by ``(k - 1) * jump`` where ``jump`` is the product of the
    strides before it; each residual block has one kernel-3 conv at the frame rate.
    """
    field, jump = 1, 1
    for s, k in zip(strides, kernel_sizes):
        field += (k - 1) * jump
        jump *= s
    return field + n_residual_layers * 2 * jump


class ResidualBlock(nn.Module):
    """ReLU, conv k=3, ReLU, conv k=1, added to the input: the paper's residual block (section 4.1)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv3 = nn.Conv1d(channels, channels, 3, padding=1)
        self.conv1 = nn.Conv1d(channels, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv1(F.relu(self.conv3(F.relu(x))))


class Encoder(nn.Module):
    """Strided convolutions on the raw waveform, residual blocks at the frame rate, a 1x1 projection to D.

    Padding: a layer of stride s and kernel k is padded with ``(k - s) // 2`` zeros on the left and
    the rest of ``k - s`` on the right, so it maps L samples to exactly ``L // s`` frames. Nested
    floors compose, so the whole stack maps T samples to ``N = T // hop_length`` frames; trailing
    samples that do not fill a frame are seen by the last frame's receptive field but start no frame.

    Args:
        out_channels: D, the latent dimension (the quantizer's ``dim``).
        strides: stride of each strided conv; their product is the hop length.
        kernel_sizes: kernel of each strided conv; None means ``2 * stride`` (4 for stride 2).
        channels: hidden channels of every layer.
        n_residual_layers: residual blocks after the strided stack.
    """

    def __init__(
        self,
        out_channels: int = 64,
        strides: tuple[int, ...] = (2, 2, 2, 2, 2, 2),
        kernel_sizes: tuple[int, ...] | None = None,
        channels: int = 256,
        n_residual_layers: int = 2,
    ):
        super().__init__()
        strides = tuple(strides)
        kernel_sizes = tuple(kernel_sizes) if kernel_sizes is not None else tuple(2 * s for s in strides)
        if not strides or any(s < 1 for s in strides):
            raise ValueError(f"encoder strides must be a non-empty list of positive ints, got {strides}")
        if len(kernel_sizes) != len(strides):
            raise ValueError(f"encoder kernel_sizes {kernel_sizes} must have one entry per stride {strides}")
        if any(k < s for k, s in zip(kernel_sizes, strides)):
            raise ValueError(f"encoder kernel_sizes {kernel_sizes} must be >= their strides {strides}")
        self.strides = strides
        self.kernel_sizes = kernel_sizes
        self.hop_length = hop_length(strides)
        self.receptive_field = encoder_receptive_field(strides, kernel_sizes, n_residual_layers)
        self.pads = [((k - s) // 2, (k - s) - (k - s) // 2) for k, s in zip(kernel_sizes, strides)]
        self.convs = nn.ModuleList(
            nn.Conv1d(1 if i == 0 else channels, channels, k, stride=s)
            for i, (k, s) in enumerate(zip(kernel_sizes, strides))
        )
        self.residual = nn.Sequential(*(ResidualBlock(channels) for _ in range(n_residual_layers)))
        self.proj = nn.Conv1d(channels, out_channels, 1)

    def forward(self, wav: Tensor) -> Tensor:
        """Encode a waveform.

        Args:
            wav: (B, 1, T) float waveform in [-1, 1]; T >= hop_length.
        Returns:
            z: (B, D, N) latents, N = T // hop_length.
        """
        if wav.dim() != 3 or wav.size(1) != 1:
            raise ValueError(f"encoder expects a waveform of shape (B, 1, T), got {tuple(wav.shape)}")
        if wav.size(-1) < self.hop_length:
            raise ValueError(f"encoder needs at least hop_length={self.hop_length} samples, got {wav.size(-1)}")
        x = wav
        for i, (conv, pad) in enumerate(zip(self.convs, self.pads)):
            if i > 0:
                x = F.relu(x)
            x = conv(F.pad(x, pad))  # (B, C, L // s)
        x = self.residual(x)
        return self.proj(F.relu(x))  # (B, D, N)


def jitter(z: Tensor, probability: float, generator: torch.Generator | None = None) -> Tensor:
    """Time-jitter (Chorowski et al. 2019, section 3.3): each frame is replaced by its left or right
    neighbour with ``probability / 2`` each (edges stay); a regulariser used in training only.

    Args:
        z: (B, D, N) latents.
    Returns:
        (B, D, N) jittered latents.
    """
    B, _, N = z.shape
    u = torch.rand(B, N, device=z.device, generator=generator)
    shift = torch.zeros(B, N, dtype=torch.long, device=z.device)
    shift[u < probability / 2] = -1
    shift[(u >= probability / 2) & (u < probability)] = 1
    index = (torch.arange(N, device=z.device) + shift).clamp(0, N - 1)  # (B, N)
    return torch.gather(z, 2, index.unsqueeze(1).expand_as(z))
