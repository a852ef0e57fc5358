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


def _sampler(wavenet: WaveNet, latents: Tensor, temperature: float, **options) -> NativeSampler:
    if not fastgen.available():
        raise RuntimeError(f"native generator unavailable: {fastgen.unavailable_reason()}")
    reason = fastgen.unsupported(wavenet, latents)
    if reason is not None:
        raise RuntimeError(f"audio_vqvae.generation.fastgen: {reason}")
    return NativeSampler(wavenet, latents.size(0), temperature, **options)


@torch.no_grad()
def generate_with_logits(
    wavenet: WaveNet,
    latents: Tensor,
    speaker: Tensor,
    lengths: Tensor | None = None,
    temperature: float = 1.0,
    uniforms: Tensor | None = None,
    generator: torch.Generator | None = None,
    threads: int | None = None,
    *,
    weight_dtype: torch.dtype = torch.float32,
    teams: int | None = None,
    chunk_frames: int | None = None,
) -> tuple[Tensor, Tensor]:
    """``generate`` that also returns every step's logits.

    Returns:
        (B, N * hop) int64 classes and (B, N * hop, n_classes) float32 logits, zeros past each length.
    """
    sampler = _sampler(
        wavenet, latents, temperature, threads=threads, weight_dtype=weight_dtype, teams=teams, keep_logits=True
    )
    classes = front_door(
        wavenet, latents, speaker, lengths, temperature, generator, uniforms, chunk_frames=chunk_frames, sampler=sampler
    )
    B, T = classes.shape
    sorted_logits = torch.cat(sampler.logits, 1) if sampler.logits else torch.zeros(B, T, wavenet.n_classes)
    lengths = torch.full((B,), latents.size(-1), dtype=torch.long) if lengths is None else lengths.cpu().long()
    order = torch.argsort(lengths, descending=True, stable=True)  # the order the sampler ran the rows in
    logits = torch.empty_like(sorted_logits)
    logits[order] = sorted_logits
    return classes, logits


@torch.no_grad()
def generate(
    wavenet: WaveNet,
    latents: Tensor,
    speaker: Tensor,
    lengths: Tensor | None = None,
    temperature: float = 1.0,
    uniforms: Tensor | None = None,
    generator: torch.Generator | None = None,
    threads: int | None = None,
    *,
    weight_dtype: torch.dtype = torch.float32,
    teams: int | None = None,
    chunk_frames: int | None = None,
) -> Tensor:
    """``generation.generate`` on the native loop: the same samples for the same uniforms.

    Args:
        latents: (B, D, N); speaker: (B,); lengths: (B,) frames, None: all N; temperature: 0 is greedy;
            uniforms, generator, chunk_frames: as ``generation.generate``'s.
        threads: CPU threads (default ``torch.get_num_threads()``).
        weight_dtype: torch.bfloat16 halves the weight bytes streamed per sample (the logits change slightly).
        teams: how many groups the threads form (default ``fastgen.default_teams``).
    Returns:
        (B, N * hop) int64 mu-law classes; the start class past each length.
    Raises:
        RuntimeError: the native loop is unavailable or cannot run this model (``fastgen.unsupported``).
    """
    sampler = _sampler(wavenet, latents, temperature, threads=threads, weight_dtype=weight_dtype, teams=teams)
    return front_door(
        wavenet, latents, speaker, lengths, temperature, generator, uniforms, chunk_frames=chunk_frames, sampler=sampler
    )
