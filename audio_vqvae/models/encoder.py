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


def encoder_context(strides: tuple[int, ...], kernel_sizes: tuple[int, ...], n_residual_layers: int) -> tuple[int, int]:
    """Samples a frame depends on before its first sample and after its last: ``(left, right)``.

    Frame n covers samples ``[n * hop, (n + 1) * hop)`` and depends on exactly
    ``[n * hop - left, (n + 1) * hop + right)``, so ``left + hop + right`` is the receptive field.
    Walks the stack backwards: a kernel-3 residual conv widens a frame range by one each side; a
    strided conv (stride s, kernel k, left padding p) maps output range [lo, hi] to input
    ``[lo * s - p, hi * s - p + k - 1]``. Chunked encoding uses it for an exact overlap.
    """
    lo, hi = -n_residual_layers, n_residual_layers
    for s, k in zip(reversed(strides), reversed(kernel_sizes)):
        p = (k - s) // 2
        lo, hi = lo * s - p, hi * s - p + k - 1
    return -lo, hi - (hop_length(strides) - 1)


def default_channels(n_layers: int, last: int = 128, first: int = 32) -> tuple[int, ...]:
    """Widths of the strided convs: ``last`` for the final one, halved every two layers towards the
    waveform, never below ``first``: (32, 32, 64, 64, 128, 128) for six layers.

    The rate halves at each stride-2 layer, so activations per second shrink with depth and the
    costly high-rate layers stay narrow (bench/encode.py: 0.25 GFLOP per second of audio against
    4.4 for 256 channels everywhere).
    """
    return tuple(max(first, last >> ((n_layers - 1 - i) // 2)) for i in range(n_layers))


def length_mask(lengths: Tensor, size: int) -> Tensor:
    """(B,) valid lengths -> (B, 1, size) float mask, 1 before each length and 0 after."""
    return (torch.arange(size, device=lengths.device) < lengths.unsqueeze(1)).unsqueeze(1).float()


def check_waveform(wav: Tensor, hop: int) -> None:
    """Raise a ValueError unless ``wav`` is (B, 1, T) with T >= hop (every encoder's input contract)."""
    if wav.dim() != 3 or wav.size(1) != 1:
        raise ValueError(f"encoder expects a waveform of shape (B, 1, T), got {tuple(wav.shape)}")
    if wav.size(-1) < hop:
        raise ValueError(f"encoder needs at least hop_length={hop} samples, got {wav.size(-1)}")


class ChannelLayerNorm(nn.Module):
    """Layer normalisation over the channels of each time step: (B, C, L) -> (B, C, L).

    Position-wise, so a frame's value never depends on other frames' statistics and chunked
    encoding stays exact. wav2vec 2.0's "layer_norm" feature extractor (Baevski et al. 2020)
    normalises each conv layer of its raw-waveform encoder the same way.
    """

    def __init__(self, channels: int):
        super().__init__()
        self.norm = nn.LayerNorm(channels)

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(x.transpose(1, 2)).transpose(1, 2)


class ResidualBlock(nn.Module):
    """ReLU, conv k=3, ReLU, conv k=1, added to the input: the paper's residual block (section 4.1)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv3 = nn.Conv1d(channels, channels, 3, padding=1)
        self.conv1 = nn.Conv1d(channels, channels, 1)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """(B, C, N) -> (B, C, N); ``mask`` (B, 1, N) zeroes padded frames where the conv reads them."""
        h = F.relu(x)
        if mask is not None:
            h = h * mask
        return x + self.conv1(F.relu(self.conv3(h)))


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
        channels: output channels of each strided conv (one per stride), or one int for all; the
            residual blocks run at the last width. None: ``default_channels(len(strides))``.
        n_residual_layers: residual blocks after the strided stack.
        layer_norm: normalise each strided conv's output and the residual stack's output over
            channels, per time step (``ChannelLayerNorm``). Without it a fresh encoder's outputs are
            ruled by its biases: the waveform's share shrinks layer by layer, every frame points
            the same way, and the codebook collapses within the first hundred steps.
    """

    def __init__(
        self,
        out_channels: int = 64,
        strides: tuple[int, ...] = (2, 2, 2, 2, 2, 2),
        kernel_sizes: tuple[int, ...] | None = None,
        channels: int | tuple[int, ...] | None = None,
        n_residual_layers: int = 2,
        layer_norm: bool = True,
    ):
        super().__init__()
        strides = tuple(strides)
        kernel_sizes = tuple(kernel_sizes) if kernel_sizes is not None else tuple(2 * s for s in strides)
        if channels is None:
            widths = default_channels(len(strides))
        else:
            widths = (channels,) * len(strides) if isinstance(channels, int) else tuple(channels)
        if not strides or any(s < 1 for s in strides):
            raise ValueError(f"encoder strides must be a non-empty list of positive ints, got {strides}")
        if len(kernel_sizes) != len(strides):
            raise ValueError(f"encoder kernel_sizes {kernel_sizes} must have one entry per stride {strides}")
        if any(k < s for k, s in zip(kernel_sizes, strides)):
            raise ValueError(f"encoder kernel_sizes {kernel_sizes} must be >= their strides {strides}")
        if len(widths) != len(strides) or any(c < 1 for c in widths):
            raise ValueError(f"encoder channels {channels} must be one positive int or one per stride {strides}")
        if n_residual_layers < 0:
            raise ValueError(f"encoder n_residual_layers must be >= 0, got {n_residual_layers}")
        self.strides = strides
        self.kernel_sizes = kernel_sizes
        self.channels = widths
        self.hop_length = hop_length(strides)
        self.receptive_field = encoder_receptive_field(strides, kernel_sizes, n_residual_layers)
        self.context = encoder_context(strides, kernel_sizes, n_residual_layers)  # (left, right) samples
        self.training_context = (0, 0)  # training crops are encoded on their own
        self.pads = [((k - s) // 2, (k - s) - (k - s) // 2) for k, s in zip(kernel_sizes, strides)]
        # The conv pads both sides by the left amount itself (no copy); only an odd k - s needs one more on the right.
        self.convs = nn.ModuleList(
            nn.Conv1d(1 if i == 0 else widths[i - 1], c, k, stride=s, padding=left)
            for i, (c, k, s, (left, _)) in enumerate(zip(widths, kernel_sizes, strides, self.pads))
        )
        self.norms = nn.ModuleList(ChannelLayerNorm(c) if layer_norm else nn.Identity() for c in widths)
        self.residual = nn.Sequential(*(ResidualBlock(widths[-1]) for _ in range(n_residual_layers)))
        self.out_norm = ChannelLayerNorm(widths[-1]) if layer_norm else nn.Identity()
        self.proj = nn.Conv1d(widths[-1], out_channels, 1)

    def forward(self, wav: Tensor, lengths: Tensor | None = None) -> Tensor:
        """Encode a waveform.

        Args:
            wav: (B, 1, T) float waveform in [-1, 1]; T >= hop_length.
            lengths: (B,) samples of each row, for a batch padded on the right. Each layer's input
                is zeroed past the row's length, as the zero padding of an unpadded row would be,
                so row b's first ``lengths[b] // hop_length`` frames equal encoding it alone.
        Returns:
            z: (B, D, N) latents, N = T // hop_length.
        """
        check_waveform(wav, self.hop_length)
        x = wav
        valid = None if lengths is None else lengths.to(wav.device)
        for i, (conv, norm, (left, right)) in enumerate(zip(self.convs, self.norms, self.pads)):
            if i > 0:
                x = F.relu(x, inplace=True)  # x is the previous conv's fresh output
            if valid is not None:
                x = x * length_mask(valid, x.size(-1))
                valid = valid // conv.stride[0]
            if right > left:
                x = F.pad(x, (0, right - left))
            x = norm(conv(x))  # (B, C_i, L // s)
        mask = None if valid is None else length_mask(valid, x.size(-1))
        for block in self.residual:
            x = block(x, mask)
        return self.proj(F.relu(self.out_norm(x)))  # (B, D, N)


def build_encoder(
    out_channels: int,
    sample_rate: int,
    strides: tuple[int, ...] = (2, 2, 2, 2, 2, 2),
    kernel_sizes: tuple[int, ...] | None = None,
    channels: int | tuple[int, ...] | None = None,
    n_residual_layers: int = 2,
    layer_norm: bool = True,
    frontend: str = "waveform",
    n_mels: int = 80,
    cmn_window_seconds: float | None = None,
) -> nn.Module:
    """The encoder an ``EncoderConfig`` describes: ``Encoder`` on the waveform, or ``MelEncoder`` on
    log-mel frames with hop ``prod(strides)`` and the last of ``channels`` as its width (128 if None)."""
    if frontend == "waveform":
        if cmn_window_seconds is not None:
            raise ValueError("cmn_window_seconds needs frontend: log_mel (it normalises log-mel frames)")
        return Encoder(out_channels, strides, kernel_sizes, channels, n_residual_layers, layer_norm)
    if frontend == "log_mel":
        from .mel_encoder import MelEncoder

        width = channels if isinstance(channels, int) else (channels[-1] if channels else default_channels(1)[0])
        return MelEncoder(
            out_channels,
            hop_length(strides),
            sample_rate,
            n_mels,
            width,
            n_residual_layers,
            layer_norm,
            cmn_window_seconds,
        )
    raise ValueError(f"encoder frontend must be 'waveform' or 'log_mel', got {frontend!r}")


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
