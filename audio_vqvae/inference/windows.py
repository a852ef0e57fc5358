"""Exact chunked encoding: windows that overlap by the encoder's context, batched across utterances.

A frame's code depends on a finite span of samples (``Encoder.context``), so a long waveform can be
cut into windows of ``chunk_frames`` frames, each extended by that context (rounded up to whole
frames) on both sides, and the frames in the middle of each window are exactly those of encoding
the whole waveform at once. Windows start on a frame boundary, so every strided layer sees the
same sample grid as the whole-file pass. Memory is O(batch of windows), not O(file): a waveform
given whole is held whole (4 bytes a sample), one given as a stream of blocks (``audio.AudioStream``)
only as far as the pending windows read it, so an hour of audio then needs its codes and nothing
else that grows with it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from ..models.vqvae import VQVAE

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
    wavs: Mapping[int, Tensor | SampleBuffer] | Sequence[Tensor],
    windows: list[Window],
    codes_out: Mapping[int, Tensor],
    latents_out: Mapping[int, Tensor | None] | None = None,
    latents: str | None = None,
) -> None:
    """Encode a batch of windows in one padded pass (``Encoder.forward`` with lengths).

    Each window's frames are copied into its utterance's output buffers, which are allocated
    once per utterance: small results that outlived each pass would pin the heap between the
    passes' large temporaries, so memory would grow with the audio (and each pass fault in fresh pages).

    Args:
        wavs: (T,) waveforms (or ``SampleBuffer``s), indexed by ``Window.index``, sliced at positions
            in the whole utterance.
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


class SampleBuffer:
    """The samples of one utterance received so far, less those no window needs any more.

    Sliced with positions in the whole utterance (``buffer[start:end]``), like the (T,) waveform it
    stands for, so ``encode_windows`` reads a whole waveform and a stream alike.
    """

    def __init__(self) -> None:
        self.start = 0  # position of samples[0] in the utterance
        self.samples = torch.zeros(0)  # (t,)

    @property
    def end(self) -> int:
        """Samples received so far."""
        return self.start + self.samples.numel()

    def append(self, block: Tensor) -> None:
        """Add (t,) samples after the others (a whole waveform is kept as it is, not copied)."""
        block = block.reshape(-1)
        self.samples = block if not self.samples.numel() else torch.cat([self.samples, block.to(self.samples.dtype)])

    def drop_before(self, position: int) -> None:
        """Forget the samples before ``position`` (a view: the storage goes at the next ``append``)."""
        if position > self.start:
            self.samples = self.samples[position - self.start :]
            self.start = position

    def __getitem__(self, span: slice) -> Tensor:
        return self.samples[span.start - self.start : span.stop - self.start]


@dataclass
class _Utterance:
    """An utterance being encoded: its samples, its windows planned as the samples arrive, its outputs.

    ``codes`` and ``latents`` are allocated once from the expected length (grown if it was short) and
    cut to ``n_frames`` when the last sample is in.
    """

    index: int
    codes: Tensor  # (capacity,) int64
    latents: Tensor | None  # (capacity, D) float32
    samples: SampleBuffer = field(default_factory=SampleBuffer)
    planned: int = 0  # frames [0, planned) belong to planned windows
    remaining: int = 0  # planned windows not yet encoded
    n_frames: int | None = None  # known once the samples have ended

    def reserve(self, n_frames: int) -> None:
        """Make room for frames [0, n_frames) in the outputs."""
        if n_frames > self.codes.numel():
            grown = max(n_frames, 2 * self.codes.numel())
            self.codes = torch.cat([self.codes, self.codes.new_empty(grown - self.codes.numel())])
            if self.latents is not None:
                self.latents = torch.cat(
                    [self.latents, self.latents.new_empty(grown - len(self.latents), self.latents.size(1))]
                )

    def result(self) -> Encoded:
        n = self.n_frames
        codes = self.codes if len(self.codes) == n else self.codes[:n].clone()
        vectors = self.latents if self.latents is None or len(self.latents) == n else self.latents[:n].clone()
        return Encoded(self.index, codes, vectors)


def ready_windows(
    index: int, first: int, received: int, hop: int, context: tuple[int, int], chunk_frames: int
) -> list[Window]:
    """The windows from frame ``first`` on that ``received`` samples already fix, before the length is known.

    A window of frames [first, last) is the one ``plan_windows`` gives for every length once the
    samples reach past its right context and past frame ``last`` (so it is not the final window,
    whose end is the file's end).
    """
    left = math.ceil(context[0] / hop) * hop
    right = math.ceil(context[1] / hop) * hop
    windows = []
    while received >= max((first + chunk_frames) * hop + right, (first + chunk_frames + 1) * hop):
        last = first + chunk_frames
        windows.append(Window(index, max(0, first * hop - left), last * hop + right, first, last))
        first = last
    return windows


def encode_chunked(
    model: VQVAE,
    wavs: Iterable[Tensor | Iterable[Tensor]],
    *,
    chunk_seconds: float = CHUNK_SECONDS,
    batch_seconds: float = BATCH_SECONDS,
    latents: str | None = None,
) -> Iterator[Encoded]:
    """Codes of many waveforms, exactly equal to encoding each one whole, in bounded memory.

    Waveforms are cut into windows of ``chunk_seconds`` (plus the encoder's context) and windows
    from one or several waveforms are encoded together, at most ``batch_seconds`` of padded audio
    per pass. Results come out in input order, each as soon as its last window is done.

    A waveform may come as a stream of blocks (``audio.AudioStream``): its windows are planned as its
    samples arrive (``ready_windows``, then ``plan_windows`` once it has ended) and the samples no
    window needs any more are dropped after each pass, so memory does not grow with its length:
    it holds a pass, a block and the outputs (codes, and latents when asked for). The
    windows and passes are those of the whole waveform, so the codes are the same.

    Exactness is up to float32 rounding: another chunking, batch composition or thread count changes
    the order of the encoder's sums, so latents may differ by ~1e-7 (tested: at most 1e-5). A code can
    then differ only at a near tie, a frame whose two nearest codes are within ``TIE_TOLERANCE`` (1e-6,
    relative) of each other (``VectorQuantizer.margins`` and ``is_near_tie``); such frames are rare
    (measured: under 1 % of the frames of random noise) and either code is equally close.

    Args:
        model: a VQVAE; it is put in eval mode.
        wavs: (T,) float waveforms at ``model.sample_rate``, or iterables of (t,) blocks of one
            (an ``n_samples`` attribute, when there is one, sizes the outputs); consumed lazily, in order.
        chunk_seconds: window length (without context); shorter files are one window.
        batch_seconds: padded audio per encoder pass; bounds memory.
        latents: also return ``"quantized"`` vectors or ``"continuous"`` encoder outputs, (N, D) each.
    Yields:
        Encoded per waveform, in order.
    """
    if latents not in (None, "quantized", "continuous"):
        raise ValueError(f"latents must be None, 'quantized' or 'continuous', got {latents!r}")
    model.eval()
    hop, rate, context = model.hop_length, model.sample_rate, model.encoder.context
    chunk_frames = max(1, int(chunk_seconds * rate) // hop)
    budget = max(1, int(batch_seconds * rate))
    live: dict[int, _Utterance] = {}
    pending: list[Window] = []
    longest = 0  # samples of the longest pending window
    next_out = 0

    def run() -> Iterator[Encoded]:
        nonlocal next_out, pending, longest
        encode_windows(
            model,
            {i: u.samples for i, u in live.items()},
            pending,
            {i: u.codes for i, u in live.items()},
            {i: u.latents for i, u in live.items()},
            latents,
        )
        for w in pending:
            live[w.index].remaining -= 1
        pending, longest = [], 0
        while next_out in live and live[next_out].n_frames is not None and not live[next_out].remaining:
            yield live.pop(next_out).result()  # whole utterances, in input order
            next_out += 1
        for u in live.values():  # every planned window is done: keep what the next ones read
            u.samples.drop_before(max(0, u.planned * hop - math.ceil(context[0] / hop) * hop))

    def add(windows: list[Window]) -> Iterator[Encoded]:
        nonlocal longest
        for w in windows:
            # A pass holds len(pending) rows of the longest window; run it before it would exceed the budget.
            if pending and (len(pending) + 1) * max(longest, w.end - w.start) > budget:
                yield from run()
            u = live[w.index]
            u.reserve(w.last)
            u.planned, u.remaining = w.last, u.remaining + 1
            pending.append(w)
            longest = max(longest, w.end - w.start)

    for index, source in enumerate(wavs):
        expected = source.numel() if isinstance(source, Tensor) else int(getattr(source, "n_samples", 0))
        u = live[index] = _Utterance(
            index,
            torch.empty(expected // hop, dtype=torch.long),
            torch.empty(expected // hop, model.quantizer.dim) if latents else None,
        )
        for block in [source] if isinstance(source, Tensor) else source:
            u.samples.append(block)
            yield from add(ready_windows(index, u.planned, u.samples.end, hop, context, chunk_frames))
        n = u.samples.end
        if n < hop:
            raise ValueError(f"utterance {index}: {n} samples is shorter than one frame ({hop})")
        yield from add([w for w in plan_windows(index, n, hop, context, chunk_frames) if w.first >= u.planned])
        u.n_frames = n // hop  # now, not before its last window is pending: a pass run meanwhile must not emit it
    if pending:
        yield from run()
