"""WaveNet generation, one front door: ``generate`` (a whole batch) and ``stream`` (chunk by chunk).

Everything every backend shares is here, once: lengths and the longest-first order (utterances
leave the batch as they finish); the uniform numbers of inverse-CDF sampling (``UniformStream``);
the conditioning of each chunk, cut from blocks of ``COND_BLOCK`` frames on a fixed grid
(``conditioning_window``; a padded row gets the conditioning of the row alone); the start class past
each length; and the choice of sample loop with its fallback (``samplers.make_sampler``). So one
seed gives the same samples, to the last bit, in one pass and in chunks of any size. The loops
themselves are the PyTorch reference, the native C loop on the CPU and CUDA-graph replays on a GPU;
each resumes across chunks, so memory is O(B * chunk_frames) for any length, at the same speed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
from torch import Tensor

from ..models.wavenet import WaveNet
from .conditioning import clock_period, conditioning_context, conditioning_window
from .samplers import BACKENDS, Sampler, make_sampler
from .uniforms import UniformStream

# Frames per block of the conditioning's fixed grid: a chunk's conditioning is cut from these blocks.
COND_BLOCK = 250

__all__ = [
    "COND_BLOCK",
    "BACKENDS",
    "clock_period",
    "conditioning_context",
    "conditioning_window",
    "generate",
    "stream",
]


@torch.no_grad()
def stream(
    wavenet: WaveNet,
    window: Callable[[int, int], Tensor],
    speaker: Tensor,
    n_frames: int,
    lengths: Tensor | None = None,
    *,
    chunk_frames: int | None = None,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
    uniforms: Tensor | None = None,
    backend: str = "auto",
    sampler: Sampler | None = None,
) -> Iterator[tuple[int, Tensor]]:
    """Autoregressive sampling of a batch, ``chunk_frames`` frames at a time, caches carried across chunks.

    Args:
        window: ``window(a, b)`` gives the latents of frames [a, b) of every row, (B, D, b - a) (zeros
            or anything past a row's length: it is masked). Called once per block of ``COND_BLOCK``
            frames, with a few frames of context on each side (``conditioning_context``).
        speaker: (B,) int64 speaker ids.
        n_frames: N, frames of the longest row.
        lengths: (B,) frames of each row; None: all N.
        chunk_frames: frames per chunk (memory is O(B * chunk_frames)); None: all N in one chunk.
        temperature: softmax temperature; 0 is greedy (argmax) decoding.
        generator: random-number generator for the uniforms (``UniformStream``).
        uniforms: (B, N * hop) numbers in [0, 1) to sample with instead of drawing them.
        backend: "auto", "torch", "native" or "graph" (``samplers.make_sampler``).
        sampler: a sampler built for this batch to use instead (``generation.native`` sets the native
            loop's threads and reads its logits this way).
    Yields:
        ``(first_frame, classes)``: classes (B, n * hop) int64 for frames [first_frame, first_frame + n),
        rows in the caller's order; the start class past each row's length.
    """
    wavenet.check_speakers(speaker)  # every loop fails on a bad id before any work
    B, N, hop = speaker.size(0), n_frames, wavenet.hop_length
    chunk_frames = N if chunk_frames is None else chunk_frames
    if chunk_frames < 1:
        raise ValueError(f"chunk_frames must be >= 1, got {chunk_frames}")
    lengths = torch.full((B,), N, dtype=torch.long) if lengths is None else lengths.cpu().long()
    if (
        uniforms is not None
        and temperature > 0
        and (uniforms.dim() != 2 or uniforms.size(0) != B or uniforms.size(1) < N * hop)
    ):
        raise ValueError(f"uniforms must have shape ({B}, {N * hop}), got {tuple(uniforms.shape)}")
    if B == 0 or N == 0:
        return
    probe = window(0, 1)  # (B, D, 1): the latents' device and dtype
    device = probe.device
    order = torch.argsort(lengths, descending=True, stable=True)
    n_samples = (lengths[order] * hop).tolist()  # one host copy, before the loop
    order_dev = order.to(device)
    speaker, lengths_dev = speaker.to(device)[order_dev], lengths[order].to(device)
    if sampler is None:
        sampler = make_sampler(wavenet, backend, B, min(chunk_frames, N), temperature, device, probe.dtype)
    draws = UniformStream(B, device, generator)
    context = conditioning_context(wavenet)
    start = wavenet.n_classes // 2
    blocks: dict[int, Tensor] = {}  # the conditioning of the last block used, (B, n, L, G)

    def conditioning(first: int, last: int) -> Tensor:
        """(B, last - first, L, G) for sorted rows, from blocks of COND_BLOCK frames on a fixed grid: the
        same convs on the same windows whatever the chunks, so the same numbers to the last bit."""
        pieces = []
        for k in range(first // COND_BLOCK, (last - 1) // COND_BLOCK + 1):
            lo, hi = k * COND_BLOCK, min(N, (k + 1) * COND_BLOCK)
            if k not in blocks:
                blocks.clear()
                a, b = max(0, lo - context), min(N, hi + context)
                latents = window(a, b)[order_dev]  # (B, D, b - a), longest first
                blocks[k] = conditioning_window(wavenet, latents, speaker, lengths_dev - a, lo - a, hi - a)
            pieces.append(blocks[k][:, max(first, lo) - lo : min(last, hi) - lo])
        return torch.cat(pieces, 1)  # a new tensor: the native loop adds its biases to it in place

    for first in range(0, N, chunk_frames):
        last = min(N, first + chunk_frames)
        n = (last - first) * hop
        if temperature <= 0:
            u = None
        elif uniforms is None:  # drawn in the caller's row order, whatever the chunking
            u = draws.take(n)[order_dev]
        else:
            u = uniforms[:, first * hop : last * hop].to(device)[order_dev]
        classes = sampler.run(conditioning(first, last), u, first * hop, n_samples)  # (B, n), longest first
        past = torch.arange(first * hop, last * hop, device=device) >= lengths_dev.unsqueeze(1) * hop
        classes = classes.masked_fill(past, start)  # every sampler runs on the latents' device
        out = torch.empty_like(classes)
        out[order_dev] = classes
        yield first, out


def generate(
    wavenet: WaveNet,
    latents: Tensor,
    speaker: Tensor,
    lengths: Tensor | None = None,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
    uniforms: Tensor | None = None,
    backend: str = "auto",
    chunk_frames: int | None = None,
    sampler: Sampler | None = None,
) -> Tensor:
    """Autoregressive sampling with cached layer inputs, many utterances in one batch.

    Utterances run longest first, and each leaves the batch once its samples are done. Sampling is
    inverse-CDF with one uniform number per sample (given, or drawn from ``generator``), so backends
    fed the same numbers draw the same samples, and so do one pass and chunks of any size.

    Args:
        latents: (B, D, N) latents (the WaveNet's conditioning input); anything past a length is masked.
        speaker: (B,) int64 speaker ids.
        lengths: (B,) frames of each utterance; None: all N.
        temperature: softmax temperature; 0 is greedy (argmax) decoding.
        generator: random-number generator for the uniforms.
        uniforms: (B, N * hop) numbers in [0, 1) to use instead of drawing them.
        backend: "auto" (CUDA graphs on a GPU, the native loop on the CPU, else PyTorch), "torch",
            "native" or "graph"; see ``samplers.make_sampler``.
        chunk_frames: frames generated per chunk (bounds the conditioning's memory); None: one pass.
        sampler: see ``stream``.
    Returns:
        (B, N * hop) int64 mu-law classes; samples past an utterance's length are the start class.
    """
    if latents.dim() != 3:
        raise ValueError(f"latents must have shape (B, D, N), got {tuple(latents.shape)}")
    if speaker.dim() != 1 or speaker.size(0) != latents.size(0):
        raise ValueError(f"speaker must have shape ({latents.size(0)},), got {tuple(speaker.shape)}")
    B, _, N = latents.shape
    pieces = [
        classes
        for _, classes in stream(
            wavenet,
            lambda a, b: latents[..., a:b],
            speaker,
            N,
            lengths,
            chunk_frames=chunk_frames,
            temperature=temperature,
            generator=generator,
            uniforms=uniforms,
            backend=backend,
            sampler=sampler,
        )
    ]
    if not pieces:
        return torch.full((B, N * wavenet.hop_length), wavenet.n_classes // 2, dtype=torch.long, device=latents.device)
    return pieces[0] if len(pieces) == 1 else torch.cat(pieces, 1)
