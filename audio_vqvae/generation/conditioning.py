"""The WaveNet's conditioning for a window of frames, and the sample clock that lets chunks resume."""

from __future__ import annotations

import math

from torch import Tensor, nn

from ..models.wavenet import WaveNet


def conditioning_context(wavenet: WaveNet) -> int:
    """Frames on each side that the conditioning of a frame reads: the conditioning convs' paddings summed."""
    return sum(m.padding[0] for m in wavenet.cond_net if isinstance(m, nn.Conv1d))


def conditioning_window(
    wavenet: WaveNet, latents: Tensor, speaker: Tensor, lengths: Tensor, lo: int, hi: int
) -> Tensor:
    """Per-frame, per-layer gate biases of frames ``[lo, hi)``, as ``WaveNet.conditioning`` gives them.

    Reads ``c`` frames of context on each side, ``c`` the total padding of the conditioning convs;
    every conv's input is zeroed past each utterance's length, so a padded row equals the row alone.

    Args:
        latents: (B, D, N) quantized latents; speaker: (B,) ids; lengths: (B,) frames.
    Returns:
        (B, hi - lo, L, G), the layout ``GenerationState.cond`` uses.
    """
    context = conditioning_context(wavenet)
    a, b = max(0, lo - context), min(latents.size(-1), hi + context)
    c = wavenet.conditioning(latents[..., a:b], speaker, (lengths - a).clamp(min=0))  # (B, L, G, b - a)
    return c[..., lo - a : hi - a].permute(0, 3, 1, 2).contiguous()  # (B, hi - lo, L, G)


def clock_period(wavenet: WaveNet) -> int:
    """Samples after which the sample clock may wrap: every ring buffer's length and the hop divide it.

    ``WaveNet.step`` reads layer buffers at ``t % span`` and conditioning at ``t // hop``, so a chunk
    that starts at sample g can run with ``t = g % period`` over a conditioning tensor that begins
    ``(g % period) // hop`` frames early: the buffers see the same positions as in one long pass.
    """
    period = wavenet.hop_length
    for layer in wavenet.layers:
        period = math.lcm(period, (layer.kernel_size - 1) * layer.dilation)
    return period
