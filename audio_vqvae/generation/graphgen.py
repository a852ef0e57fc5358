"""WaveNet sampling as a fixed-shape step with device-side counters, replayed as CUDA graphs.

``WaveNet.step`` costs about 13 small kernels per layer per sample; on a GPU each is a few
microseconds of CPU launch overhead, so the PyTorch loop runs at the speed of the Python
interpreter, not of the GPU (the "5x slower than real time on a GPU" that users of WaveNet
repositories report). This module writes the same step with every shape fixed and every index held
in a device tensor (the sample clock ``t``, the ring-buffer positions, the frame and the uniform
number read at ``t``), so that ``torch.cuda.graphs`` can record ``steps_per_graph`` steps once and
replay them with one launch (NVIDIA's CUDA-graph pattern for small repeated kernels).

A backend of ``audio_vqvae.generation`` (its ``GraphSampler``). All rows run to the longest
utterance (a graph has one batch size); samples past an utterance's length are reset to the start
class afterwards, as ``generation.generate`` returns them. Rows are independent, so the extra steps
change nothing else.

On the CPU the same step runs eagerly (``StaticSampler.run(graphed=False)``): the tests check it
against ``generation.generate(backend="torch")``, the reference, and the graph replay against both
where CUDA exists.
"""

from __future__ import annotations

import math
import warnings

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ..models.wavenet import WaveNet, sample

# Steps recorded in one graph: a replay launches steps_per_graph * ~13 * layers kernels at once.
# 64 keeps the capture under a second at paper size and the per-replay CPU cost negligible.
STEPS_PER_GRAPH = 64


class StaticSampler:
    """The WaveNet sample loop over static tensors, ready for CUDA-graph capture, chunk after chunk.

    ``load`` copies a chunk's conditioning (and uniforms) into fixed buffers and ``run`` generates
    its samples; the ring buffers, the previous sample and the sample clock carry over, so chunks
    give the samples of one uninterrupted pass. A chunk holds at most ``max_frames`` frames, and every
    chunk but the last must fill whole graphs (``steps_per_graph`` divides its samples): the extra
    steps that pad the last one advance the caches past the end.

    Args:
        wavenet: the decoder (eval mode; its weights must stay where they are while this lives).
        speaker_batch: B, utterances generated together.
        max_frames: frames of the longest chunk.
        temperature: softmax temperature; 0 is greedy.
        steps_per_graph: steps recorded in one graph (the granularity of ``run``).
        device: where to run; dtype: the decoder's floating-point type.
    """

    def __init__(
        self,
        wavenet: WaveNet,
        speaker_batch: int,
        max_frames: int,
        temperature: float,
        steps_per_graph: int = STEPS_PER_GRAPH,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ):
        if steps_per_graph < 1:
            raise ValueError(f"steps_per_graph must be >= 1, got {steps_per_graph}")
        self.wavenet = wavenet
        self.temperature = temperature
        self.steps_per_graph = steps_per_graph
        self.max_frames = max_frames
        B, hop = speaker_batch, wavenet.hop_length
        n_layers, G = len(wavenet.layers), wavenet.gate_channels
        T = math.ceil(max_frames * hop / steps_per_graph) * steps_per_graph  # whole graphs
        weights = wavenet.step_weights()
        self.conv_bias = torch.stack([b_conv for _, b_conv, _, _ in weights])  # (L, G), added once per chunk
        self.weights = [(w_conv, w_out, b_out) for w_conv, _, w_out, b_out in weights]
        self.head = head_weights(wavenet)
        self.cond = torch.zeros(B, math.ceil(T / hop), n_layers, G, device=device, dtype=dtype)
        self.uniforms = torch.zeros(B, T, device=device) if temperature > 0 else None
        # Per layer (B, (k - 1) * dilation + 1, R): one slot more than WaveNet.step's ring buffers, so the
        # current input is written before the taps are read, and one gather gives the conv's whole input.
        self.buffers = [
            torch.zeros(B, (la.kernel_size - 1) * la.dilation + 1, la.conv.in_channels, device=device, dtype=dtype)
            for la in wavenet.layers
        ]
        # Per layer, the offsets of the conv's k inputs from t, oldest first; the last (0) is also the write slot.
        offsets = [[j * la.dilation for j in range(la.kernel_size - 1, -1, -1)] for la in wavenet.layers]
        self.offsets = torch.tensor(offsets, dtype=torch.long, device=device)  # (L, k)
        self.spans = torch.tensor([[b.size(1)] for b in self.buffers], dtype=torch.long, device=device)  # (L, 1)
        self.start = wavenet.n_classes // 2
        self.out = torch.full((B, T), self.start, dtype=torch.long, device=device)
        self.x = torch.full((B,), self.start, dtype=torch.long, device=device)  # previous sample
        self.t = torch.zeros(1, dtype=torch.long, device=device)  # sample clock since the start (ring positions)
        self.t_chunk = torch.zeros(1, dtype=torch.long, device=device)  # sample clock in the chunk (cond, out)
        self.n_steps = 0  # steps of the loaded chunk
        self.graph: torch.cuda.CUDAGraph | None = None

    def reset(self) -> None:
        """Back to sample 0: empty caches, start class."""
        self.t.zero_()
        self.t_chunk.zero_()
        self.x.fill_(self.start)
        for buf in self.buffers:
            buf.zero_()

    def load(self, cond: Tensor, uniforms: Tensor | None) -> None:
        """Set the next chunk.

        Args:
            cond: (B, n, L, G) gate biases of its frames (``WaveNet.conditioning``, permuted), n <= max_frames.
            uniforms: (B, n * hop) numbers in [0, 1) when sampling, else None.
        """
        n = cond.size(1)
        hop = self.wavenet.hop_length
        if n > self.max_frames:
            raise ValueError(f"a chunk of {n} frames exceeds this sampler's {self.max_frames}")
        if self.uniforms is not None:
            if uniforms is None or uniforms.shape != (cond.size(0), n * hop):
                raise ValueError(f"uniforms of shape ({cond.size(0)}, {n * hop}) are needed when sampling")
            self.uniforms[:, : n * hop].copy_(uniforms)
        self.cond[:, :n].copy_(cond + self.conv_bias)
        self.cond[:, n:].copy_(self.conv_bias.expand_as(self.cond[:, n:]))
        self.n_steps = n * hop

    def step(self) -> None:
        """One sample for every row, in place: writes ``out[:, t_chunk]`` and advances both clocks."""
        net = self.wavenet
        t, tc = self.t, self.t_chunk
        positions = (t - self.offsets) % self.spans  # (L, k): the conv's inputs, oldest first
        frame = torch.div(tc, net.hop_length, rounding_mode="floor")
        cond = self.cond.index_select(1, frame).squeeze(1)  # (B, L, G)
        x = net.input_embedding(self.x)  # (B, R)
        R = x.size(1)
        skips = None
        for i, (buf, (w_conv, w_out, b_out)) in enumerate(zip(self.buffers, self.weights)):
            pos = positions[i]  # (k,)
            buf.index_copy_(1, pos[-1:], x.unsqueeze(1))
            inputs = buf.index_select(1, pos).flatten(1)  # (B, k * R): past taps oldest first, then x
            h = torch.addmm(cond[:, i], inputs, w_conv)  # (B, G), conv bias inside cond
            torch.tanh_(h[:, : h.size(1) // 2])
            z = F.glu(h, dim=1)  # tanh(a) * sigmoid(b) in two kernels instead of three
            rs = torch.addmm(b_out, z, w_out)  # (B, R + S)
            x = (x + rs[:, :R]) * math.sqrt(0.5)
            skips = rs[:, R:] if skips is None else skips + rs[:, R:]
        logits = head(self.head, skips)  # (B, C)
        u = None if self.uniforms is None else self.uniforms.index_select(1, tc).squeeze(1)
        new = sample(logits, self.temperature, u)  # (B,)
        self.out.index_copy_(1, tc, new.unsqueeze(1))
        self.x.copy_(new)
        t.add_(1)
        tc.add_(1)

    def steps(self) -> None:
        for _ in range(self.steps_per_graph):
            self.step()

    def capture(self) -> None:
        """Record ``steps_per_graph`` steps as one CUDA graph (after a warm-up step on a side stream).

        The warm-up advances the state, so the caches and clocks are saved first and restored after.
        """
        saved = [b.clone() for b in self.buffers], self.x.clone(), self.t.clone(), self.t_chunk.clone()
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):  # cuBLAS handles and workspaces are made outside the capture
            self.step()
        torch.cuda.current_stream().wait_stream(stream)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.steps()  # recorded, not run
        for buf, b in zip(self.buffers, saved[0]):
            buf.copy_(b)
        self.x.copy_(saved[1])
        self.t.copy_(saved[2])
        self.t_chunk.copy_(saved[3])

    @torch.no_grad()
    def run(self, graphed: bool) -> Tensor:
        """The loaded chunk's samples; graphed replays the recorded graph (CUDA), else the same steps run eagerly.

        Returns:
            (B, n * hop) int64 classes of the chunk's n frames (every row runs to the end).
        """
        if graphed and self.graph is None:
            self.capture()
        self.t_chunk.zero_()
        for _ in range(math.ceil(self.n_steps / self.steps_per_graph)):
            if graphed:
                self.graph.replay()
            else:
                self.steps()
        return self.out[:, : self.n_steps]


def head_weights(wavenet: WaveNet) -> list[tuple[Tensor, Tensor] | None]:
    """The output head as matrices: None for a ReLU, (W^T, b) for a 1x1 conv (GEMMs capture cleanly)."""
    layers: list[tuple[Tensor, Tensor] | None] = []
    for module in wavenet.head:
        if isinstance(module, nn.ReLU):
            layers.append(None)
        elif isinstance(module, nn.Conv1d) and module.kernel_size == (1,):
            layers.append((module.weight.squeeze(-1).t(), module.bias))
        else:
            raise TypeError(f"graphgen handles ReLU and 1x1 Conv1d in the WaveNet head, not {module}")
    return layers


def head(layers: list[tuple[Tensor, Tensor] | None], skips: Tensor) -> Tensor:
    """(B, S) summed skips -> (B, C) logits through ``head_weights``."""
    x = skips
    for layer in layers:
        x = torch.relu(x) if layer is None else torch.addmm(layer[1], x, layer[0])
    return x


def warn_fallback(error: RuntimeError) -> None:
    first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    warnings.warn(f"CUDA graph generation failed ({first}); using the PyTorch loop", stacklevel=4)
