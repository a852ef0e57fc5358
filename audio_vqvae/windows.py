"""Exact chunked encoding: windows that overlap by the encoder's context, batched across utterances.

A frame's code depends on a finite span of samples (``Encoder.context``), so a long waveform can be
cut into windows of ``chunk_frames`` frames, each extended by that context (rounded up to whole
frames) on both sides, and the frames in the middle of each window are exactly those of encoding
the whole waveform at once. Windows start on a frame boundary, so every strided layer sees the
same sample grid as the whole-file pass. Memory is O(batch of windows), not O(file): an hour of
audio needs its waveform (4 bytes a sample) and its codes, nothing that grows with the encoder.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from .model import VQVAE

# Defaults sized for CPU caches: 16 s of padded audio per pass ran ~1.5x faster than 40 s on 2 cores
# (bench/encode.py); on a GPU, larger passes (--batch-seconds) fill the device better.
CHUNK_SECONDS = 4.0
BATCH_SECONDS = 16.0


@dataclass(frozen=True)
class Window:
    """Samples ``[start, end)`` of utterance ``index`` are encoded to give its frames ``[first, last)``."""

    index: int
    start: int
    end: int
    first: int
    last: int


@dataclass
class Encoded:
    """Codes of one utterance, and optionally its latents, all frames in order.

    Attributes:
        index: position of the utterance in the input sequence.
        codes: (N,) int64.
        latents: (N, D) float32: encoder outputs (``"continuous"``) or their codebook vectors
            (``"quantized"``); None when not asked for.
    """

    index: int
    codes: Tensor
    latents: Tensor | None = None


def plan_windows(index: int, n_samples: int, hop: int, context: tuple[int, int], chunk_frames: int) -> list[Window]:
    """Windows covering all ``n_samples // hop`` frames of one utterance, ``chunk_frames`` frames each.

    Args:
        context: (left, right) samples a frame depends on outside its own hop (``Encoder.context``).
    Returns:
        Windows in order; a window whose context would pass the end of the file ends at the file's
        end (as the whole-file pass does), so the last frames see the same trailing samples.
    """
    if chunk_frames < 1:
        raise ValueError(f"chunk_frames must be >= 1, got {chunk_frames}")
    n_frames = n_samples // hop
    left = math.ceil(context[0] / hop) * hop
    right = math.ceil(context[1] / hop) * hop
    windows = []
    for first in range(0, n_frames, chunk_frames):
        last = min(n_frames, first + chunk_frames)
        start = max(0, first * hop - left)
        end = n_samples if last == n_frames else min(n_samples, last * hop + right)
        windows.append(Window(index, start, end, first, last))
    return windows


@torch.no_grad()
def encode_windows(
    model: VQVAE,
    wavs: Mapping[int, Tensor] | Sequence[Tensor],
    windows: list[Window],
    codes_out: Mapping[int, Tensor],
    latents_out: Mapping[int, Tensor] | None = None,
    latents: str | None = None,
) -> None:
    """Encode a batch of windows in one padded pass (``Encoder.forward`` with lengths).

    Each window's frames are copied into its utterance's output buffers, which are allocated
    once per utterance: small results that outlived each pass would pin the heap between the
    passes' large temporaries, so memory would grow with the audio (and each pass fault in fresh pages).

    Args:
        wavs: (T,) waveforms, indexed by ``Window.index``.
        codes_out: (N,) int64 buffer per utterance, filled at ``[first, last)``.
        latents_out: (N, D) float32 buffer per utterance, when ``latents`` is asked for.
        latents: None, ``"quantized"`` or ``"continuous"``.
    """
    device = next(model.parameters()).device
    hop = model.hop_length
    sizes = [w.end - w.start for w in windows]
    longest = max(sizes)
    batch = torch.zeros(len(windows), 1, longest, device=device)
    for b, w in enumerate(windows):
        batch[b, 0, : sizes[b]] = wavs[w.index][w.start : w.end]
    lengths = torch.tensor(sizes, device=device) if min(sizes) < longest else None  # no masks when none is padded
    z = model.encoder(batch, lengths)  # (B, D, N)
    codes = model.quantizer.quantize(z).cpu()  # (B, N)
    if latents == "quantized":
        z = model.quantizer.dequantize(codes.to(device))
    for b, w in enumerate(windows):
        keep = slice(w.first - w.start // hop, w.last - w.start // hop)
        codes_out[w.index][w.first : w.last] = codes[b, keep]
        if latents:
            latents_out[w.index][w.first : w.last] = z[b, :, keep].t()  # (n, D)


def encode_chunked(
    model: VQVAE,
    wavs: Iterable[Tensor],
    *,
    chunk_seconds: float = CHUNK_SECONDS,
    batch_seconds: float = BATCH_SECONDS,
    latents: str | None = None,
) -> Iterator[Encoded]:
    """Codes of many waveforms, exactly equal to encoding each one whole, in bounded memory.

    Waveforms are cut into windows of ``chunk_seconds`` (plus the encoder's context) and windows
    from one or several waveforms are encoded together, at most ``batch_seconds`` of padded audio
    per pass. Results come out in input order, each as soon as its last window is done.

    Exactness is up to float32 rounding: another chunking, batch composition or thread count changes
    the order of the encoder's sums, so latents may differ by ~1e-7 (tested: at most 1e-5). A code can
    then differ only at a near tie, a frame whose two nearest codes are within ``TIE_TOLERANCE`` (1e-6,
    relative) of each other (``VectorQuantizer.margins`` and ``is_near_tie``); such frames are rare
    (measured: under 1 % of the frames of random noise) and either code is equally close.

    Args:
        model: a VQVAE; it is put in eval mode.
        wavs: (T,) float waveforms at ``model.sample_rate`` (consumed lazily, one at a time).
        chunk_seconds: window length (without context); shorter files are one window.
        batch_seconds: padded audio per encoder pass; bounds memory.
        latents: also return ``"quantized"`` vectors or ``"continuous"`` encoder outputs, (N, D) each.
    Yields:
        Encoded per waveform, in order.
    """
    if latents not in (None, "quantized", "continuous"):
        raise ValueError(f"latents must be None, 'quantized' or 'continuous', got {latents!r}")
    model.eval()
    hop, rate = model.hop_length, model.sample_rate
    chunk_frames = max(1, int(chunk_seconds * rate) // hop)
    budget = max(1, int(batch_seconds * rate))
    loaded: dict[int, Tensor] = {}
    codes_out: dict[int, Tensor] = {}
    latents_out: dict[int, Tensor] = {}
    remaining: dict[int, int] = {}
    pending: list[Window] = []
    longest = 0  # samples of the longest pending window
    next_out = 0

    def run(windows: list[Window]) -> Iterator[Encoded]:
        nonlocal next_out
        encode_windows(model, loaded, windows, codes_out, latents_out, latents)
        for w in windows:
            remaining[w.index] -= 1
        while next_out in remaining and remaining[next_out] == 0:  # whole utterances, in input order
            del remaining[next_out], loaded[next_out]
            yield Encoded(next_out, codes_out.pop(next_out), latents_out.pop(next_out, None))
            next_out += 1

    for index, wav in enumerate(wavs):
        wav = wav.reshape(-1)
        if wav.numel() < hop:
            raise ValueError(f"utterance {index}: {wav.numel()} samples is shorter than one frame ({hop})")
        loaded[index] = wav
        windows = plan_windows(index, wav.numel(), hop, model.encoder.context, chunk_frames)
        remaining[index] = len(windows)
        codes_out[index] = torch.empty(wav.numel() // hop, dtype=torch.long)
        if latents:
            latents_out[index] = torch.empty(wav.numel() // hop, model.quantizer.dim)
        for w in windows:
            # A pass holds len(pending) rows of the longest window; run it before it would exceed the budget.
            if pending and (len(pending) + 1) * max(longest, w.end - w.start) > budget:
                yield from run(pending)
                pending, longest = [], 0
            pending.append(w)
            longest = max(longest, w.end - w.start)
    if pending:
        yield from run(pending)
