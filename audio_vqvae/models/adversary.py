"""A speaker adversary on the quantized latents: codes that say what was said, not who said it.

A frame-level speaker classifier reads the quantized latents (the straight-through vectors the
decoders see) through a gradient-reversal layer (Ganin & Lempitsky 2015, "Unsupervised domain
adaptation by backpropagation"). The classifier learns to name the speaker of each frame; the
reversed gradient pushes the encoder to make that impossible. The decoders get the speaker from
their own embedding, so the codes lose nothing they need, and units compared across speakers (ABX
across) get closer. Speaker-adversarial training of VQ-VAE content codes is used for voice
conversion and unit discovery, e.g. by Chorowski et al. 2019 (discussion) and Tjandra et al. 2019.
Used in training only: inference never runs it.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F


class _ReverseGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, scale: float) -> Tensor:
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:
        return -ctx.scale * grad, None


def reverse_gradient(x: Tensor, scale: float = 1.0) -> Tensor:
    """Identity forward; the gradient is multiplied by ``-scale`` on the way back."""
    return _ReverseGradient.apply(x, scale)


class SpeakerAdversary(nn.Module):
    """Frame-wise speaker classifier behind a gradient reversal: 1x1 conv, ReLU, 1x1 conv.

    Args:
        dim: D, the latent dimension.
        n_speakers: classes.
        hidden: hidden channels.
    """

    def __init__(self, dim: int, n_speakers: int, hidden: int = 256):
        super().__init__()
        self.net = nn.Sequential(nn.Conv1d(dim, hidden, 1), nn.ReLU(), nn.Conv1d(hidden, n_speakers, 1))

    def forward(self, latents: Tensor, speaker: Tensor) -> tuple[Tensor, Tensor]:
        """Cross-entropy and accuracy of naming each frame's speaker.

        Args:
            latents: (B, D, N) quantized latents; their gradient comes back reversed.
            speaker: (B,) int64 speaker ids.
        Returns:
            (loss, accuracy): scalars; the loss trains the classifier, and through the reversal
            pushes the encoder the other way; accuracy is detached.
        """
        logits = self.net(reverse_gradient(latents)).float()  # (B, S, N)
        target = speaker.view(-1, 1).expand(-1, logits.size(2))  # (B, N)
        loss = F.cross_entropy(logits, target)
        accuracy = (logits.detach().argmax(1) == target).float().mean()
        return loss, accuracy
