"""The sample loops behind ``generation.generate``, one small interface: ``run`` a chunk, state kept.

Each sampler generates a batch sorted longest first, chunk after chunk, and carries its caches (the
layers' past inputs, the last sample, the clock) from one chunk to the next, so chunks give the
samples of one uninterrupted pass:

- ``TorchSampler``: the PyTorch reference loop (``WaveNet.sample_steps``), any device;
- ``NativeSampler``: the fused C loop (``audio_vqvae.generation.fastgen``), float32 on the CPU;
- ``GraphSampler``: fixed-shape steps (``graphgen.StaticSampler``), replayed as CUDA graphs on a
  GPU and run eagerly elsewhere (the same samples, slowly: for tests).

``make_sampler`` holds the choice among them and the fallback policy: a backend that cannot run
here gives way to the next one with a one-line warning, before any sample is drawn.
"""

from __future__ import annotations

import math
import warnings
from typing import Protocol

import torch
from torch import Tensor

from ..models.wavenet import WaveNet
from . import fastgen, graphgen
from .conditioning import clock_period
from .fastgen.weights import auto_weight_dtype

BACKENDS = ("auto", "torch", "native", "graph")


class Sampler(Protocol):
    def run(self, cond: Tensor, uniforms: Tensor | None, t0: int, n_samples: list[int]) -> Tensor:
        """Samples ``t0 .. t0 + n * hop - 1`` of every row.

        Args:
            cond: (B, n, L, G) gate conditioning of the chunk's n frames (``conditioning_window``).
            uniforms: (B, n * hop) numbers in [0, 1); None when greedy.
            t0: samples generated before this chunk.
            n_samples: samples of each row in all, longest first (rows are sorted that way).
        Returns:
            (B, n * hop) int64 classes; what a row holds past its ``n_samples`` is undefined.
        """
        ...


class TorchSampler:
    """The PyTorch reference loop; rows leave the batch as they finish."""

    def __init__(self, wavenet: WaveNet, batch: int, temperature: float, device: torch.device, dtype: torch.dtype):
        self.wavenet, self.temperature = wavenet, temperature
        self.state = wavenet.empty_state(batch, device, dtype)
        self.x = torch.full((batch,), wavenet.n_classes // 2, dtype=torch.long, device=device)
        self.active = batch
        self.period = clock_period(wavenet)

    def run(self, cond: Tensor, uniforms: Tensor | None, t0: int, n_samples: list[int]) -> Tensor:
        net, hop = self.wavenet, self.wavenet.hop_length
        B, n = cond.size(0), cond.size(1) * hop
        out = torch.full((B, n), net.n_classes // 2, dtype=torch.long, device=cond.device)
        while self.active and n_samples[self.active - 1] <= t0:
            self.active -= 1
        if self.active:
            lead = t0 % self.period  # the clock wraps: the buffers see the positions of one long pass
            active = self.active
            self.state.cond = torch.cat([cond.new_zeros(active, lead // hop, *cond.shape[2:]), cond[:active]], 1)
            self.state.t = lead
            self.x, self.active = net.sample_steps(
                self.state, self.x, active, n_samples, t0, out, uniforms, self.temperature
            )
        return out


class NativeSampler:
    """The fused C loop of ``audio_vqvae.generation.fastgen`` (its ring buffers live in ``fastgen.ChunkState``).

    Args:
        threads, teams: ``fastgen.generate_chunk``'s (benchmarks: ``generation.native``).
        weight_dtype: the weights' precision in the loop; None: ``fastgen.weights.auto_weight_dtype`` (float32
            where they fit the threads' L2 caches, the reference's samples; bf16 where not, for speed).
        keep_logits: keep every step's logits, (B, n * hop, n_classes) per chunk in ``logits`` (rows in
            the order the sampler runs them: longest first).
    """

    def __init__(
        self,
        wavenet: WaveNet,
        batch: int,
        temperature: float,
        *,
        threads: int | None = None,
        weight_dtype: torch.dtype | None = None,
        teams: int | None = None,
        keep_logits: bool = False,
    ):
        self.wavenet, self.temperature = wavenet, temperature
        if weight_dtype is None:
            weight_dtype = auto_weight_dtype(wavenet, threads or torch.get_num_threads())
        self.weight_dtype = weight_dtype
        self.options = {"threads": threads, "weight_dtype": weight_dtype, "teams": teams}
        self.logits: list[Tensor] | None = [] if keep_logits else None
        self.state = fastgen.chunk_state(wavenet, batch)

    def run(self, cond: Tensor, uniforms: Tensor | None, t0: int, n_samples: list[int]) -> Tensor:
        n = cond.size(1) * self.wavenet.hop_length
        todo = (torch.tensor(n_samples) - t0).clamp(0, n)
        logits = None
        if self.logits is not None:
            logits = torch.zeros(cond.size(0), n, self.wavenet.n_classes)
            self.logits.append(logits)
        return fastgen.generate_chunk(
            self.wavenet, cond, self.state, todo, self.temperature, uniforms, logits=logits, **self.options
        )


class GraphSampler:
    """``graphgen.StaticSampler``: every row runs every step; CUDA-graph replays when ``graphed``."""

    def __init__(
        self,
        wavenet: WaveNet,
        batch: int,
        chunk_frames: int,
        temperature: float,
        device: torch.device,
        dtype: torch.dtype,
        graphed: bool,
    ):
        # Every chunk but the last fills whole graphs: its samples are a multiple of the graph length.
        steps = math.gcd(graphgen.STEPS_PER_GRAPH, chunk_frames * wavenet.hop_length)
        self.static = graphgen.StaticSampler(wavenet, batch, chunk_frames, temperature, steps, device, dtype)
        self.graphed = graphed
        if graphed:
            self.static.capture()  # before any sample, so that a failure can still fall back

    def run(self, cond: Tensor, uniforms: Tensor | None, t0: int, n_samples: list[int]) -> Tensor:
        self.static.load(cond, uniforms)
        return self.static.run(graphed=self.graphed)


def make_sampler(
    wavenet: WaveNet,
    backend: str,
    batch: int,
    chunk_frames: int,
    temperature: float,
    device: torch.device,
    dtype: torch.dtype,
    graphed: bool | None = None,
) -> Sampler:
    """The sampler for ``backend``, or the one that takes over where it cannot run (one-line warning).

    "auto": CUDA graphs on a GPU, the native loop on the CPU for float32 models where it builds, else
    the PyTorch loop. "native" and "graph" insist (a warning when they fall back); "graph" off a GPU
    runs its fixed-shape steps eagerly, slowly, with the reference's samples. "torch": the reference.

    Args:
        graphed: replay CUDA graphs (default: on CUDA devices); for tests of the fallback.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if graphed is None:
        graphed = device.type == "cuda"
    if backend == "graph" and not graphed:
        warnings.warn(
            f"CUDA graphs need a CUDA device, not {device}; running the same steps eagerly (slow)", stacklevel=3
        )
    if backend == "graph" or (backend == "auto" and graphed):
        try:
            return GraphSampler(wavenet, batch, chunk_frames, temperature, device, dtype, graphed)
        except RuntimeError as e:  # a driver or capture limitation: the reference still works
            graphgen.warn_fallback(e)
            return TorchSampler(wavenet, batch, temperature, device, dtype)
    if backend in ("auto", "native") and fastgen.available():  # a failed build warns once, itself
        reason = fastgen.unsupported(wavenet, torch.empty(0, device=device, dtype=dtype))
        if reason is None:
            return NativeSampler(wavenet, batch, temperature)
        if backend == "native":
            fastgen.notice(f"audio_vqvae.generation.fastgen: {reason}; using the PyTorch generator")
    return TorchSampler(wavenet, batch, temperature, device, dtype)
