"""Log-mel front end encoder: waveform (B, 1, T) to log-mel frames on the code grid, then a conv stack to (B, D, N).

The paper's encoder learns its filters from the raw waveform through six strided convs of kernel 4.
That is slow to train: on 2 CPU cores its codes were still far below an MFCC k-means baseline after
an hour. Chorowski et al. 2019 ("Unsupervised speech representation learning using
WaveNet autoencoders") found spectral inputs (MFCC, filterbanks) to give the WaveNet autoencoder's
codes more phonetic content than the waveform, and van Niekerk et al. 2020 encode log-mel frames.
This encoder takes the same waveform and gives the same frame grid (N = T // hop, frame n centred
on the samples code n covers), so everything downstream is unchanged.
"""

from __future__ import annotations

from torch import Tensor, nn
from torch.nn import functional as F

from .cmn import sliding_mean, window_frames
from .encoder import ChannelLayerNorm, ResidualBlock, check_waveform, length_mask
from .mel import LogMel


class MelEncoder(nn.Module):
    """Log-mel frames (``mel.LogMel``), a kernel-3 conv, residual blocks, a 1x1 projection to D.

    Args:
        out_channels: D, the latent dimension.
        hop_length: samples per frame.
        sample_rate: Hz, for the mel filters.
        n_mels: mel bands of the front end.
        channels: width of the frame-rate conv stack.
        n_residual_layers: residual blocks (kernel 3) after the input conv.
        layer_norm: per-time-step layer norm after the input conv and the residual stack.
        cmn_window_seconds: subtract from each log-mel band its mean over a centred window of this
            many seconds (``cmn.sliding_mean``); None: no normalisation.
    """

    def __init__(
        self,
        out_channels: int = 64,
        hop_length: int = 64,
        sample_rate: int = 16000,
        n_mels: int = 80,
        channels: int = 128,
        n_residual_layers: int = 2,
        layer_norm: bool = True,
        cmn_window_seconds: float | None = None,
    ):
        super().__init__()
        if hop_length < 1 or n_mels < 1 or channels < 1 or n_residual_layers < 0:
            raise ValueError(
                f"MelEncoder needs hop_length, n_mels, channels >= 1 and n_residual_layers >= 0, "
                f"got {hop_length}, {n_mels}, {channels}, {n_residual_layers}"
            )
        self.hop_length = hop_length
        self.front_end = LogMel(sample_rate, hop_length, n_mels)
        self.conv_in = nn.Conv1d(n_mels, channels, 3, padding=1)
        self.norm_in = ChannelLayerNorm(channels) if layer_norm else nn.Identity()
        self.residual = nn.ModuleList(ResidualBlock(channels) for _ in range(n_residual_layers))
        self.out_norm = ChannelLayerNorm(channels) if layer_norm else nn.Identity()
        self.proj = nn.Conv1d(channels, out_channels, 1)
        self.cmn = None if cmn_window_seconds is None else window_frames(cmn_window_seconds, sample_rate / hop_length)
        # Frame n's window spans padded samples [n * hop, n * hop + n_fft), i.e. ``left`` samples before
        # the frame's first sample; each kernel-3 conv adds one frame on each side, the CMN window its half.
        n_fft, frames = self.front_end.n_fft, 1 + n_residual_layers
        left = n_fft // 2 - hop_length // 2
        cmn_left, cmn_right = self.cmn or (0, 0)
        self.context = (
            left + (frames + cmn_left) * hop_length,
            n_fft - left - hop_length + (frames + cmn_right) * hop_length,
        )
        self.receptive_field = self.context[0] + hop_length + self.context[1]
        # A training crop read with this much audio around it (where the utterance has it) gets the frames
        # that encoding the whole utterance gives: with CMN a crop's own mean would not be the window's.
        self.training_context = self.context if self.cmn else (0, 0)

    def forward(self, wav: Tensor, lengths: Tensor | None = None) -> Tensor:
        """Encode a waveform.

        Args:
            wav: (B, 1, T) float waveform; T >= hop_length.
            lengths: (B,) samples of each row of a right-padded batch: each row's first
                ``lengths[b] // hop`` frames then equal encoding it alone.
        Returns:
            z: (B, D, N) latents, N = T // hop_length.
        """
        check_waveform(wav, self.hop_length)
        x = wav[:, 0]  # (B, T)
        mask = None
        if lengths is not None:
            valid = lengths.to(wav.device)
            x = x * length_mask(valid, x.size(-1))[:, 0]  # zeros past each row, as alone
            mask = length_mask(valid // self.hop_length, x.size(-1) // self.hop_length)  # (B, 1, N)
        h = self.front_end(x)  # (B, n_mels, N) float32
        if self.cmn is not None:
            h = h - sliding_mean(h, mask, *self.cmn)
        if mask is not None:
            h = h * mask  # past a row's last frame the conv reads zeros, as its padding would be alone
        h = self.norm_in(self.conv_in(h))  # (B, C, N)
        for block in self.residual:
            h = block(h, mask)
        return self.proj(F.relu(self.out_norm(h)))  # (B, D, N)
