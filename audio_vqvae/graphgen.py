"""WaveNet sampling as a fixed-shape step with device-side counters, replayed as CUDA graphs.

``WaveNet.step`` costs about 13 small kernels per layer per sample; on a GPU each is a few
microseconds of CPU launch overhead, so the PyTorch loop runs at the speed of the Python
interpreter, not of the GPU (the "5x slower than real time on a GPU" that users of WaveNet
repositories report). This module writes the same step with every shape fixed and every index held
in a device tensor (the sample clock ``t``, the ring-buffer positions, the frame and the uniform
number read at ``t``), so that ``torch.cuda.graphs`` can record ``steps_per_graph`` steps once and
replay them with one launch (NVIDIA's CUDA-graph pattern for small repeated kernels).

All rows run to the longest utterance (a graph has one batch size); samples past an utterance's
length are reset to the start class afterwards, as ``WaveNet.generate`` returns them. Rows are
independent, so the extra steps change nothing else.

On the CPU the same step runs eagerly (``StaticSampler.run(graphed=False)``): the tests check it
against ``WaveNet.generate(backend="torch")``, the reference, and the graph replay against both
where CUDA exists.
"""

from __future__ import annotations

import math
import warnings

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from .wavenet import WaveNet, sample

# Steps recorded in one graph: a replay launches steps_per_graph * ~13 * layers kernels at once.
# 64 keeps the capture under a second at paper size and the per-replay CPU cost negligible.
STEPS_PER_GRAPH = 64


class StaticSampler:
    """The WaveNet sample loop over static tensors, ready for CUDA-graph capture.

    Args:
        wavenet: the decoder (eval mode; its weights must stay where they are while this lives).
        latents: (B, D, N) quantized latents, zero-padded past each utterance's length.
        speaker: (B,) int64 speaker ids.
        uniforms: (B, N * hop) numbers in [0, 1) for inverse-CDF sampling; None when greedy.
        temperature: softmax temperature; 0 is greedy.
        steps_per_graph: steps recorded in one graph (and the granularity of ``run``).
    """

    def __init__(
        self,
        wavenet: WaveNet,
        latents: Tensor,
        speaker: Tensor,
        uniforms: Tensor | None,
        temperature: float,
        steps_per_graph: int = STEPS_PER_GRAPH,
    ):
        if steps_per_graph < 1:
            raise ValueError(f"steps_per_graph must be >= 1, got {steps_per_graph}")
        self.wavenet = wavenet
        self.temperature = temperature
        self.steps_per_graph = steps_per_graph
        B, _, N = latents.shape
        hop = wavenet.hop_length
        self.n_samples = N * hop
        # Pad the time axis to whole graphs; padded frames have zero latents and are cropped.
        n_frames = math.ceil(math.ceil(self.n_samples / steps_per_graph) * steps_per_graph / hop)
        state = wavenet.init_state(latents, speaker)
        conv_bias = torch.stack([b_conv for _, b_conv, _, _ in state.weights])  # (L, G), added once, not per step
        self.cond = torch.cat(  # (B, n_frames, L, G)
            [state.cond + conv_bias, conv_bias.expand(B, n_frames - N, *conv_bias.shape)], 1
        )
        self.weights = [(w_conv, w_out, b_out) for w_conv, _, w_out, b_out in state.weights]
        self.head = head_weights(wavenet)
        # Per layer (B, (k - 1) * dilation + 1, R): one slot more than WaveNet.step's ring buffers, so the
        # current input is written before the taps are read, and one gather gives the conv's whole input.
        self.buffers = [buf.new_zeros(B, buf.size(1) + 1, buf.size(2)) for buf in state.buffers]
        device = latents.device
        T = n_frames * hop
        self.uniforms = None
        if temperature > 0:
            if uniforms is None or uniforms.shape != (B, self.n_samples):
                raise ValueError(f"uniforms of shape ({B}, {self.n_samples}) are needed when sampling")
            self.uniforms = torch.cat([uniforms.to(device), uniforms.new_zeros(B, T - self.n_samples)], 1)
        start = wavenet.n_classes // 2
        self.start = start
        self.out = torch.full((B, T), start, dtype=torch.long, device=device)
        self.x = torch.full((B,), start, dtype=torch.long, device=device)
        self.t = torch.zeros(1, dtype=torch.long, device=device)  # the sample clock, on the device
        # Per layer, the offsets of the conv's k inputs from t, oldest first; the last (0) is also the write slot.
        offsets = [[j * layer.dilation for j in range(layer.kernel_size - 1, -1, -1)] for layer in wavenet.layers]
        self.offsets = torch.tensor(offsets, dtype=torch.long, device=device)  # (L, k)
        self.spans = torch.tensor([[b.size(1)] for b in self.buffers], dtype=torch.long, device=device)  # (L, 1)
        self.graph: torch.cuda.CUDAGraph | None = None

    def reset(self) -> None:
        """Back to sample 0: empty caches, start class (after capture warm-up)."""
        self.t.zero_()
        self.x.fill_(self.start)
        self.out.fill_(self.start)
        for buf in self.buffers:
            buf.zero_()

    def step(self) -> None:
        """One sample for every row, in place: reads ``t``, writes ``out[:, t]`` and advances ``t``."""
        net = self.wavenet
        t = self.t
        positions = (t - self.offsets) % self.spans  # (L, k): the conv's inputs, oldest first
        frame = torch.div(t, net.hop_length, rounding_mode="floor")
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
        u = None if self.uniforms is None else self.uniforms.index_select(1, t).squeeze(1)
        new = sample(logits, self.temperature, u)  # (B,)
        self.out.index_copy_(1, t, new.unsqueeze(1))
        self.x.copy_(new)
        t.add_(1)

    def steps(self) -> None:
        for _ in range(self.steps_per_graph):
            self.step()

    def capture(self) -> None:
        """Record ``steps_per_graph`` steps as one CUDA graph (after a warm-up step on a side stream)."""
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):  # cuBLAS handles and workspaces are made outside the capture
            self.step()
        torch.cuda.current_stream().wait_stream(stream)
        self.reset()
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.steps()
        self.reset()  # capture records without running, but leave no doubt

    @torch.no_grad()
    def run(self, graphed: bool) -> Tensor:
        """All samples; graphed replays the recorded graph (CUDA), else the same steps run eagerly.

        Returns:
            (B, N * hop) int64 classes (every row to the longest length).
        """
        self.reset()
        if graphed and self.graph is None:
            self.capture()
        for _ in range(self.out.size(1) // self.steps_per_graph):
            if graphed:
                self.graph.replay()
            else:
                self.steps()
        return self.out[:, : self.n_samples]


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


@torch.no_grad()
def generate(
    wavenet: WaveNet,
    latents: Tensor,
    speaker: Tensor,
    lengths: Tensor | None,
    temperature: float,
    uniforms: Tensor | None,
    generator: torch.Generator | None,
    steps_per_graph: int = STEPS_PER_GRAPH,
    graphed: bool | None = None,
) -> Tensor:
    """``WaveNet.generate`` through CUDA-graph replays (see the module docstring).

    Args:
        graphed: replay graphs (None: on CUDA devices), falling back to the PyTorch reference loop
            with a one-line warning when capture or replay fails; False runs the same fixed-shape
            steps eagerly (slower than the reference; for tests), with no fallback.

    Returns:
        (B, N * hop) int64 classes; samples past each utterance's length are the start class.
    """
    B, _, N = latents.shape
    T = N * wavenet.hop_length
    if uniforms is None and temperature > 0:
        uniforms = torch.rand(B, T, device=latents.device, generator=generator)
    sampler = StaticSampler(wavenet, latents, speaker, uniforms, temperature, steps_per_graph)
    if graphed is None:
        graphed = latents.device.type == "cuda"
    if not graphed:
        out = sampler.run(graphed=False)
    else:
        try:
            out = sampler.run(graphed=True)
        except RuntimeError as e:  # a driver or capture limitation: the reference still works
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            warnings.warn(f"CUDA graph generation failed ({first}); using the PyTorch loop", stacklevel=3)
            return wavenet.generate(latents, speaker, lengths, temperature, uniforms=uniforms, backend="torch")
    if lengths is not None:
        lengths = lengths.to(out.device).long() * wavenet.hop_length
        past = torch.arange(T, device=out.device) >= lengths.unsqueeze(1)  # (B, T)
        out = out.masked_fill(past, sampler.start)
    return out
