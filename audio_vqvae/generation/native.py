"""The native sample loop through the front door, with the knobs benchmarks and tests turn.

``generate`` is ``generation.generate`` on the fused C loop (``fastgen``), with its threads, teams
and bf16 weights set; ``generate_with_logits`` also returns every step's logits. Both go through
``generation.generate`` (lengths, order, uniforms, conditioning and chunking are the front door's),
but do not fall back: where the native loop cannot run they raise RuntimeError.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..models.wavenet import WaveNet
from . import fastgen
from . import generate as front_door
from .samplers import NativeSampler


@torch.no_grad()
def generate(
    wavenet: WaveNet,
    latents: Tensor,
    speaker: Tensor,
    lengths: Tensor | None = None,
    temperature: float = 1.0,
    uniforms: Tensor | None = None,
    **options,
) -> Tensor:
    """``generation.generate`` on the native loop: the same samples for the same uniforms.

    Args:
        latents: (B, D, N); speaker: (B,); lengths: (B,) frames, None: all N; temperature: 0 is greedy;
            uniforms: (B, N * hop) numbers in [0, 1), None: drawn from ``generator``.
        **options: ``generator`` and ``chunk_frames`` (as ``generation.generate``'s); ``threads`` (default
            ``torch.get_num_threads()``); ``weight_dtype`` (torch.bfloat16 halves the weight bytes
            streamed per sample; the logits change slightly); ``teams`` (groups the threads form,
            default ``fastgen.default_teams``).
    Returns:
        (B, N * hop) int64 mu-law classes; the start class past each length.
    Raises:
        RuntimeError: the native loop is unavailable or cannot run this model (``fastgen.unsupported``).
    """
    return _run(wavenet, latents, speaker, lengths, temperature, uniforms, keep_logits=False, **options)[0]


@torch.no_grad()
def generate_with_logits(
    wavenet: WaveNet,
    latents: Tensor,
    speaker: Tensor,
    lengths: Tensor | None = None,
    temperature: float = 1.0,
    uniforms: Tensor | None = None,
    **options,
) -> tuple[Tensor, Tensor]:
    """``generate`` (same arguments) that also returns every step's logits.

    Returns:
        (B, N * hop) int64 classes and (B, N * hop, n_classes) float32 logits, zeros past each length.
    """
    return _run(wavenet, latents, speaker, lengths, temperature, uniforms, keep_logits=True, **options)


def _run(
    wavenet: WaveNet,
    latents: Tensor,
    speaker: Tensor,
    lengths: Tensor | None,
    temperature: float,
    uniforms: Tensor | None,
    *,
    keep_logits: bool,
    generator: torch.Generator | None = None,
    chunk_frames: int | None = None,
    threads: int | None = None,
    weight_dtype: torch.dtype = torch.float32,
    teams: int | None = None,
) -> tuple[Tensor, Tensor | None]:
    if not fastgen.available():
        raise RuntimeError(f"native generator unavailable: {fastgen.unavailable_reason()}")
    reason = fastgen.unsupported(wavenet, latents)
    if reason is not None:
        raise RuntimeError(f"audio_vqvae.generation.fastgen: {reason}")
    options = {"threads": threads, "weight_dtype": weight_dtype, "teams": teams, "keep_logits": keep_logits}
    sampler = NativeSampler(wavenet, latents.size(0), temperature, **options)
    classes = front_door(
        wavenet, latents, speaker, lengths, temperature, generator, uniforms, chunk_frames=chunk_frames, sampler=sampler
    )
    if not keep_logits:
        return classes, None
    B, T = classes.shape
    sorted_logits = torch.cat(sampler.logits, 1) if sampler.logits else torch.zeros(B, T, wavenet.n_classes)
    lengths = torch.full((B,), latents.size(-1), dtype=torch.long) if lengths is None else lengths.cpu().long()
    order = torch.argsort(lengths, descending=True, stable=True)  # the order the sampler ran the rows in
    logits = torch.empty_like(sorted_logits)
    logits[order] = sorted_logits
    return classes, logits
