"""A WaveNet that voices: a neural source-filter model (Wang, Takaki & Yamagishi 2019) on WaveNet layers.

The autoregressive mu-law WaveNet has to discover periodicity from its own past samples, and on a
CPU budget it does not: its conversions are noise under the right envelope. Here the periodicity is
given. A source (``source.HarmonicSource``) makes sines at f0 and its harmonics where the frame is
voiced and noise where it is not; the WaveNet's dilated causal convs and gated units, conditioned on
the frame features (codes, predicted log-mel, f0 and voicing) and the speaker, filter that excitation
into the waveform in one pass, with no sampling loop. It is trained with the multi-resolution STFT
loss (``stft_loss``) against the real waveform, given the real f0 (YIN, ``pitch.yin_f0``); at
generation the f0 comes from the f0 decoder's prediction for the chosen speaker.

With ``lpc_order`` > 0 the layers' output is instead the excitation of per-frame all-pole filters
from log-mel frames (``lpc.ExcitationFilter``, which the VQ-VAE applies: the real frames' filters in
training, the mel decoder's predicted frames' at generation), as in ExcitNet and LPCNet, so the
formants need not be learnt by the layers.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .source import HarmonicSource
from .wavenet import GatedStack

F0_REFERENCE_HZ = 100.0  # log f0 features and predictions are ln(f0 / this)


def f0_features(f0: Tensor) -> Tensor:
    """(B, N) Hz (0 unvoiced) -> (B, 2, N): the voicing flag and ``ln(f0 / 100 Hz)`` (0 where unvoiced)."""
    voiced = f0 > 0
    log_f0 = torch.where(voiced, torch.log(f0.clamp(min=1.0) / F0_REFERENCE_HZ), 0.0)
    return torch.stack([voiced.float(), log_f0.float()], 1)


def f0_from_prediction(prediction: Tensor) -> Tensor:
    """The f0 decoder's (B, 2, N) output (voicing logit, ln(f0 / 100 Hz)) -> (B, N) Hz, 0 where unvoiced."""
    voiced = prediction[:, 0] > 0
    return torch.where(voiced, F0_REFERENCE_HZ * torch.exp(prediction[:, 1].float().clamp(-5, 5)), 0.0)


def f0_loss(prediction: Tensor, f0: Tensor) -> Tensor:
    """Voicing cross-entropy plus the L1 error of ln f0 on voiced frames.

    Args:
        prediction: (B, 2, N) voicing logit and ln(f0 / 100 Hz).
        f0: (B, N) Hz of the real frames, 0 where unvoiced.
    Returns:
        () float32 loss.
    """
    target = f0_features(f0)  # (B, 2, N)
    voiced = target[:, 0]
    bce = nn.functional.binary_cross_entropy_with_logits(prediction[:, 0].float(), voiced)
    l1 = ((prediction[:, 1].float() - target[:, 1]).abs() * voiced).sum() / voiced.sum().clamp(min=1.0)
    return bce + l1


class SourceFilterWaveNet(GatedStack):
    """WaveNet layers filtering a harmonic-plus-noise excitation into the waveform, in one causal pass.

    Args:
        harmonics: H, sines at f0 .. H f0 in the excitation (each its own input channel).
        sample_rate: Hz (the source's phase runs at it).
        lpc_order: 0: the output is the waveform. p > 0: the output is the unit-level excitation of
            an order-p all-pole filter from the frames' log-mel (``lpc.ExcitationFilter``; ExcitNet,
            LPCNet), which the owner applies, in training too: the loss is on the filtered waveform.
        **stack: ``GatedStack``'s sizes; ``cond_in_channels`` includes the 2 f0 features.
    """

    def __init__(self, harmonics: int = 8, sample_rate: int = 16000, lpc_order: int = 0, **stack):
        if harmonics < 1:
            raise ValueError(f"source-filter WaveNet needs harmonics >= 1, got {harmonics}")
        if lpc_order < 0:
            raise ValueError(f"lpc_order must be >= 0, got {lpc_order}")
        super().__init__(("source_proj", lambda R: nn.Conv1d(harmonics, R, 1)), **stack)
        self.harmonics, self.sample_rate, self.lpc_order = harmonics, sample_rate, lpc_order
        S = self.skip_channels
        self.head = nn.Sequential(nn.ReLU(), nn.Conv1d(S, S, 1), nn.ReLU(), nn.Conv1d(S, 1, 1))
        # The excitation also reaches the output through one linear mix, as NSF's filter blocks add their
        # input to their output: harmonics pass from the first step on, and the layers learn the filter.
        self.source_skip = nn.Conv1d(harmonics, 1, 1)

    def source(
        self, batch: int, device: torch.device | str, generator: torch.Generator | None = None, training: bool = False
    ) -> HarmonicSource:
        """A new excitation stream for ``batch`` rows (random phase offsets in training)."""
        return HarmonicSource(
            batch, self.harmonics, self.hop_length, self.sample_rate, device, generator, random_phase=training
        )

    def forward(self, excitation: Tensor, features: Tensor, speaker: Tensor, lengths: Tensor | None = None) -> Tensor:
        """The waveform (with ``lpc_order``, its LPC excitation): output t depends on ``excitation[..., :t + 1]``
        only (causal).

        Args:
            excitation: (B, H, T) from ``source``, T = N * hop.
            features: (B, D, N) frame features, the f0 features included.
            speaker: (B,) int64 speaker ids.
            lengths: (B,) frames of each utterance (see ``GatedStack.conditioning``); None: all N.
        Returns:
            (B, T) waveform.
        """
        N = features.size(-1)
        if excitation.size(-1) != N * self.hop_length:
            raise ValueError(
                f"excitation has {excitation.size(-1)} samples; {N} frames x hop {self.hop_length} "
                f"= {N * self.hop_length} expected"
            )
        cond = self.conditioning(features, speaker, lengths).unsqueeze(-1)  # (B, L, G, N, 1)
        return self.run(excitation, [cond[:, i] for i in range(len(self.layers))])

    def run(self, excitation: Tensor, cond: list[Tensor]) -> Tensor:
        """The layers on (B, H, T) excitation with per-layer conditioning (B, G, T) or (B, G, N, 1): (B, T)."""
        excitation = excitation.to(self.source_proj.weight.dtype)
        x = self.source_proj(excitation)  # (B, R, T)
        return (self.head(self.skips(x, cond)) + self.source_skip(excitation)).squeeze(1)

    @property
    def context_frames(self) -> int:
        """Whole frames of past excitation that cover the receptive field: a piece resumes from them."""
        return math.ceil((self.receptive_field - 1) / self.hop_length)
