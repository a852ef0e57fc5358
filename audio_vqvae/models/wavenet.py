"""WaveNet decoder (van den Oord et al. 2016): dilated causal convs, gated units, local and global
conditioning, 256-way mu-law output, and cached incremental generation (Paine et al. 2016, "Fast WaveNet").
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from .encoder import length_mask


def receptive_field(kernel_size: int, layers_per_stack: int, n_stacks: int) -> int:
    """Samples the WaveNet sees for one output: 1 + (k - 1) * n_stacks * (2**layers_per_stack - 1)."""
    return 1 + (kernel_size - 1) * n_stacks * (2**layers_per_stack - 1)


def shift_right(classes: Tensor, start_class: int) -> Tensor:
    """Teacher-forcing inputs: the previous sample's class at each step, ``start_class`` at t = 0.

    Args:
        classes: (B, T) int64 targets.
    Returns:
        (B, T) int64 inputs, ``inputs[:, t] = classes[:, t - 1]``.
    """
    return F.pad(classes[:, :-1], (1, 0), value=start_class)


class ResidualLayer(nn.Module):
    """Dilated causal conv, gated tanh-sigmoid unit, and one 1x1 conv giving the residual and the skip."""

    def __init__(self, residual_channels: int, gate_channels: int, skip_channels: int, kernel_size: int, dilation: int):
        super().__init__()
        if gate_channels % 2:
            raise ValueError(f"gate_channels must be even (tanh and sigmoid halves), got {gate_channels}")
        self.dilation = dilation
        self.kernel_size = kernel_size
        self.conv = nn.Conv1d(residual_channels, gate_channels, kernel_size, dilation=dilation)
        self.out = nn.Conv1d(gate_channels // 2, residual_channels + skip_channels, 1)
        self.residual_channels = residual_channels

    def forward(self, x: Tensor, cond: Tensor) -> tuple[Tensor, Tensor]:
        """Args:
            x: (B, R, T) residual stream.
            cond: (B, G, T) conditioning bias, or (B, G, N, 1) when T = N * hop (broadcast per frame).
        Returns:
            (B, R, T) new residual stream and (B, S, T) skip.
        """
        B, _, T = x.shape
        h = self.conv(F.pad(x, ((self.kernel_size - 1) * self.dilation, 0)))  # causal: (B, G, T)
        if cond.dim() == 4:  # add the frame-rate bias without materialising its upsampled copy
            h = (h.view(B, h.size(1), cond.size(2), -1) + cond).view(B, -1, T)
        else:
            h = h + cond
        a, b = h.chunk(2, dim=1)
        z = torch.tanh(a) * torch.sigmoid(b)  # (B, G/2, T)
        residual, skip = self.out(z).split([self.residual_channels, self.out.out_channels - self.residual_channels], 1)
        return (x + residual) * math.sqrt(0.5), skip


@dataclass
class GenerationState:
    """Everything the sample loop needs, prepared once before it (see ``WaveNet.init_state``)."""

    cond: Tensor  # (B, N, L, G) per-frame, per-layer conditioning bias (speaker included)
    buffers: list[Tensor]  # per layer, (B, (k - 1) * dilation, R) ring buffer of past inputs
    weights: list[tuple[Tensor, Tensor, Tensor, Tensor]]  # per layer (W_conv^T, b_conv, W_out^T, b_out)
    hop_length: int
    t: int = 0  # index of the next sample


class GatedStack(nn.Module):
    """What every WaveNet here shares: the conditioning network, the speaker table and the gated layers.

    Local conditioning: the frame-rate features (B, D, N) go through ``n_cond_layers`` kernel-3 convs,
    then one 1x1 conv gives every layer's gate bias at once; a speaker embedding projected the same
    way is added. Both are constant within a frame, so upsampling to the sample rate is repetition by
    ``hop_length``, done by broadcasting. Subclasses add an input and an output.

    Args:
        cond_in_channels: D, channels of the frame-rate features.
        hop_length: samples per frame.
        residual_channels, gate_channels, skip_channels: R, G, S.
        kernel_size: taps of each dilated causal conv (2).
        layers_per_stack, n_stacks: dilations 1, 2, ..., 2**(layers_per_stack - 1), repeated n_stacks times.
        cond_channels: width of the frame-rate conditioning network.
        n_cond_layers: its kernel-3 convs (0: features projected directly).
        n_speakers, speaker_dim: global conditioning table.
        input_layer: (attribute name, factory of the input module from R), built before the rest so
            that a seed gives every subclass's weights in the order the first WaveNet drew them.
    """

    def __init__(
        self,
        input_layer: tuple[str, Callable[[int], nn.Module]],
        cond_in_channels: int = 64,
        hop_length: int = 64,
        residual_channels: int = 128,
        gate_channels: int = 256,
        skip_channels: int = 128,
        kernel_size: int = 2,
        layers_per_stack: int = 10,
        n_stacks: int = 3,
        cond_channels: int = 128,
        n_cond_layers: int = 2,
        n_speakers: int = 1,
        speaker_dim: int = 64,
    ):
        super().__init__()
        if kernel_size < 2:
            raise ValueError(f"WaveNet kernel_size must be >= 2, got {kernel_size}")
        if n_speakers < 1:
            raise ValueError(f"n_speakers must be >= 1, got {n_speakers}")
        sizes = {
            "cond_in_channels": (cond_in_channels, 1),
            "hop_length": (hop_length, 1),
            "residual_channels": (residual_channels, 1),
            "gate_channels": (gate_channels, 2),
            "skip_channels": (skip_channels, 1),
            "layers_per_stack": (layers_per_stack, 1),
            "n_stacks": (n_stacks, 1),
            "cond_channels": (cond_channels, 1),
            "n_cond_layers": (n_cond_layers, 0),
            "speaker_dim": (speaker_dim, 1),
        }
        for name, (value, minimum) in sizes.items():
            if value < minimum:  # found here, not as a shape error deep inside a conv
                raise ValueError(f"WaveNet {name} must be >= {minimum}, got {value}")
        self.cond_in_channels = cond_in_channels
        self.hop_length = hop_length
        self.gate_channels = gate_channels
        self.skip_channels = skip_channels
        self.n_speakers = n_speakers
        self.receptive_field = receptive_field(kernel_size, layers_per_stack, n_stacks)
        dilations = [2**i for _ in range(n_stacks) for i in range(layers_per_stack)]
        setattr(self, input_layer[0], input_layer[1](residual_channels))
        self.speaker_embedding = nn.Embedding(n_speakers, speaker_dim)
        cond_net: list[nn.Module] = []
        for i in range(n_cond_layers):
            cond_net += [
                nn.Conv1d(cond_in_channels if i == 0 else cond_channels, cond_channels, 3, padding=1),
                nn.ReLU(),
            ]
        self.cond_net = nn.Sequential(*cond_net)
        n_layers = len(dilations)
        self.cond_proj = nn.Conv1d(cond_channels if n_cond_layers else cond_in_channels, n_layers * gate_channels, 1)
        self.speaker_proj = nn.Linear(speaker_dim, n_layers * gate_channels, bias=False)
        self.layers = nn.ModuleList(
            ResidualLayer(residual_channels, gate_channels, skip_channels, kernel_size, d) for d in dilations
        )

    def check_speakers(self, speaker: Tensor) -> None:
        """Raise a ValueError for speaker ids outside the table (one host sync; not for the training loop)."""
        if speaker.numel() and (int(speaker.min()) < 0 or int(speaker.max()) >= self.n_speakers):
            raise ValueError(f"speaker ids must be in [0, {self.n_speakers}), got {speaker.tolist()}")

    def conditioning(self, latents: Tensor, speaker: Tensor, lengths: Tensor | None = None) -> Tensor:
        """Per-frame gate biases of every layer.

        Args:
            latents: (B, D, N) quantized latents.
            speaker: (B,) int64 speaker ids.
            lengths: (B,) frames of each utterance: every conditioning conv's input is zeroed past it,
                so a row of a padded batch gets the conditioning of the row alone. None: all N.
        Returns:
            (B, L, G, N) with L layers and G gate channels.
        """
        if speaker.dim() != 1 or speaker.size(0) != latents.size(0):
            raise ValueError(f"speaker must have shape ({latents.size(0)},), got {tuple(speaker.shape)}")
        B, _, N = latents.shape
        x = latents
        if lengths is not None:
            mask = length_mask(lengths.to(latents.device), N).to(latents.dtype)  # (B, 1, N)
            x = x * mask
        for module in self.cond_net:
            x = module(x)
            if lengths is not None and isinstance(module, nn.ReLU):  # the next conv's input
                x = x * mask
        c = self.cond_proj(x)  # (B, L * G, N)
        c = c + self.speaker_proj(self.speaker_embedding(speaker)).unsqueeze(-1)
        return c.view(B, len(self.layers), self.gate_channels, N)

    def skips(self, x: Tensor, cond: list[Tensor]) -> Tensor:
        """The layers on a (B, R, T) input with per-layer conditioning (B, G, T) or (B, G, N, 1): (B, S, T) skips."""
        skips = 0
        for layer, c in zip(self.layers, cond):
            x, skip = layer(x, c)
            skips = skips + skip
        return skips


class WaveNet(GatedStack):
    """Speaker-conditioned WaveNet over mu-law classes (``GatedStack`` with a class embedding and a softmax head).

    Args:
        n_classes: mu-law classes of the input and output (256).
        input_noise: std, in classes, of the Gaussian noise added to ``inputs`` in training mode
            (``inject_noise``); 0: none.
        **stack: ``GatedStack``'s sizes.
    """

    def __init__(self, n_classes: int = 256, input_noise: float = 0.0, **stack):
        if not 0.0 <= input_noise < float("inf"):
            raise ValueError(f"WaveNet input_noise must be a finite std >= 0, got {input_noise}")
        if n_classes < 2:
            raise ValueError(f"WaveNet n_classes must be >= 2, got {n_classes}")
        # An embedding of the previous sample's class is a one-hot input followed by a 1x1 conv.
        super().__init__(("input_embedding", lambda R: nn.Embedding(n_classes, R)), **stack)
        self.input_noise = input_noise
        self.n_classes = n_classes
        S = self.skip_channels
        self.head = nn.Sequential(nn.ReLU(), nn.Conv1d(S, S, 1), nn.ReLU(), nn.Conv1d(S, n_classes, 1))

    def forward(self, inputs: Tensor, latents: Tensor, speaker: Tensor) -> Tensor:
        """Teacher-forced logits: output t depends on ``inputs[:, :t + 1]`` only (causal).

        Args:
            inputs: (B, T) int64 classes of the previous samples (see ``shift_right``), T = N * hop.
            latents: (B, D, N) quantized latents.
            speaker: (B,) int64 speaker ids.
        Returns:
            (B, n_classes, T) logits.
        """
        N = latents.size(-1)
        if inputs.size(-1) != N * self.hop_length:
            raise ValueError(
                f"WaveNet inputs have {inputs.size(-1)} samples; {N} frames x hop {self.hop_length} "
                f"= {N * self.hop_length} expected"
            )
        if self.training and self.input_noise:
            inputs = inject_noise(inputs, self.input_noise, self.n_classes)
        cond = self.conditioning(latents, speaker).unsqueeze(-1)  # (B, L, G, N, 1)
        return self._run(inputs, [cond[:, i] for i in range(len(self.layers))])

    def _run(self, inputs: Tensor, cond: list[Tensor]) -> Tensor:
        """Layer stack on (B, T) inputs with per-layer conditioning (B, G, T) or (B, G, N, 1)."""
        x = self.input_embedding(inputs).transpose(1, 2)  # (B, R, T)
        return self.head(self.skips(x, cond))  # (B, n_classes, T)

    # ---- incremental generation -------------------------------------------------------------
    def init_state(self, latents: Tensor, speaker: Tensor, lengths: Tensor | None = None) -> GenerationState:
        """Prepare generation: conditioning of all frames and layers, empty input caches, step weights.

        Args:
            latents: (B, D, N) quantized latents.
            speaker: (B,) int64 speaker ids.
            lengths: (B,) frames of each utterance (see ``conditioning``); None: all N.
        """
        self.check_speakers(speaker)
        state = self.empty_state(latents.size(0), latents.device, latents.dtype)
        state.cond = self.conditioning(latents, speaker, lengths).permute(0, 3, 1, 2).contiguous()  # (B, N, L, G)
        return state

    def empty_state(self, batch: int, device: torch.device | str, dtype: torch.dtype) -> GenerationState:
        """Empty input caches and the step weights; ``cond`` is left for the caller to set (a chunk's)."""
        # Zeros are the causal conv's left padding, so step t = 0 matches the forward pass.
        buffers = [
            torch.zeros(batch, (la.kernel_size - 1) * la.dilation, la.conv.in_channels, device=device, dtype=dtype)
            for la in self.layers
        ]
        empty = torch.zeros(batch, 0, len(self.layers), self.gate_channels, device=device, dtype=dtype)
        return GenerationState(cond=empty, buffers=buffers, weights=self.step_weights(), hop_length=self.hop_length)

    def step_weights(self) -> list[tuple[Tensor, Tensor, Tensor, Tensor]]:
        """Per layer (W_conv^T (k * R, G) with taps oldest first, b_conv (G,), W_out^T (G/2, R + S), b_out)."""
        weights = []
        for layer in self.layers:
            w = layer.conv.weight  # (G, R, k); tap j multiplies x[t - (k - 1 - j) * dilation]
            weights.append(
                (
                    w.permute(2, 1, 0).reshape(-1, w.size(0)),
                    layer.conv.bias,
                    layer.out.weight.squeeze(-1).t(),
                    layer.out.bias,
                )
            )
        return weights

    def step(self, state: GenerationState, inputs: Tensor) -> Tensor:
        """One sample for the first ``b`` utterances of the batch, ``b = inputs.size(0)``.

        Each layer reads its past inputs from a ring buffer (no recomputation over the receptive
        field) and writes its current input back. Rows are a prefix of the batch, so utterances
        sorted longest first can drop out as they finish.

        Args:
            inputs: (b,) int64 class of the previous sample.
        Returns:
            (b, n_classes) logits of sample ``state.t``; ``state.t`` advances by one.
        """
        t = state.t
        b = inputs.size(0)
        x = self.input_embedding(inputs)  # (b, R)
        cond = state.cond[:b, t // state.hop_length]  # (b, L, G)
        skips = None
        for i, (layer, buf, (w_conv, b_conv, w_out, b_out)) in enumerate(
            zip(self.layers, state.buffers, state.weights)
        ):
            d, span = layer.dilation, buf.size(1)
            taps = [buf[:b, (t - j * d) % span] for j in range(layer.kernel_size - 1, 0, -1)]
            h = torch.addmm(b_conv + cond[:, i], torch.cat(taps + [x], 1), w_conv)  # (b, G)
            buf[:b, t % span] = x
            a, g = h.chunk(2, dim=1)
            rs = torch.addmm(b_out, torch.tanh(a) * torch.sigmoid(g), w_out)  # (b, R + S)
            R = x.size(1)
            x = (x + rs[:, :R]) * math.sqrt(0.5)
            skips = rs[:, R:] if skips is None else skips + rs[:, R:]
        state.t = t + 1
        return self.head(skips.unsqueeze(-1)).squeeze(-1)

    def sample_steps(
        self,
        state: GenerationState,
        x: Tensor,
        active: int,
        n_samples: list[int],
        t0: int,
        out: Tensor,
        uniforms: Tensor | None,
        temperature: float,
    ) -> tuple[Tensor, int]:
        """The sample loop over ``out.size(1)`` steps, samples ``t0, t0 + 1, ...`` of a batch sorted longest first.

        Each utterance leaves the batch once its ``n_samples`` are done (the batch is a prefix).

        Args:
            x: (active,) int64 class of the previous sample of each active utterance.
            active: utterances still generating.
            n_samples: samples of each utterance, longest first (host list).
            out: (B, n) int64, filled with the classes of steps ``t0 .. t0 + n - 1`` (rows < active).
            uniforms: (B, n) numbers in [0, 1) of those steps; None when greedy.
        Returns:
            The last sampled classes and the number of utterances still active.
        """
        for i in range(out.size(1)):
            while active and n_samples[active - 1] <= t0 + i:
                active -= 1
            if not active:
                break
            logits = self.step(state, x[:active])  # (active, C)
            x = sample(logits, temperature, None if uniforms is None else uniforms[:active, i])
            out[:active, i] = x
        return x, active


def inject_noise(classes: Tensor, std: float, n_classes: int, generator: torch.Generator | None = None) -> Tensor:
    """The teacher-forced inputs with Gaussian noise of ``std`` classes, rounded and clipped to the classes.

    FFTNet's injected noise (Jin et al. 2018) makes the network robust to the errors of its
    own samples, which it is fed at generation. It also makes the previous samples a less exact guide,
    so the decoder leans more on its conditioning, as word dropout does for a text VAE's decoder
    (Bowman et al. 2016): the codes then have to carry more. Training only; the targets stay clean.

    Args:
        classes: (B, T) int64 classes in [0, n_classes).
    Returns:
        (B, T) int64 classes in [0, n_classes).
    """
    noise = torch.randn(classes.shape, device=classes.device, generator=generator) * std
    return (classes + noise).round().long().clamp(0, n_classes - 1)


def sample(logits: Tensor, temperature: float, uniforms: Tensor | None) -> Tensor:
    """Draw classes from logits by inverse CDF (or argmax when temperature is 0).

    Args:
        logits: (B, C).
        uniforms: (B,) numbers in [0, 1); unused when greedy.
    Returns:
        (B,) int64 classes.
    """
    if temperature <= 0:
        return logits.argmax(-1)
    cdf = torch.softmax(logits.float() / temperature, dim=-1).cumsum(-1)  # (B, C)
    return (cdf < uniforms.unsqueeze(-1)).sum(-1).clamp_(max=logits.size(-1) - 1)


@torch.no_grad()
def naive_generate(
    wavenet: WaveNet,
    latents: Tensor,
    speaker: Tensor,
    n_samples: int,
    temperature: float = 1.0,
    uniforms: Tensor | None = None,
) -> Tensor:
    """Reference generator without caches: each sample re-runs the whole stack over its receptive field.

    Slow by design (it is the baseline in bench/generate.py and a check on ``generation.generate``).

    Args:
        latents: (B, D, N); speaker: (B,); n_samples <= N * hop.
        uniforms: (B, n_samples) numbers in [0, 1) when sampling.
    Returns:
        (B, n_samples) int64 classes.
    """
    B = latents.size(0)
    hop, rf = wavenet.hop_length, wavenet.receptive_field
    cond = wavenet.conditioning(latents, speaker).repeat_interleave(hop, dim=-1)  # (B, L, G, T)
    start = wavenet.n_classes // 2
    classes = torch.full((B, n_samples + 1), start, dtype=torch.long, device=latents.device)  # inputs
    for t in range(n_samples):
        lo = max(0, t + 1 - rf)
        window = classes[:, lo : t + 1]  # inputs of samples lo .. t
        logits = wavenet._run(window, [cond[:, i, :, lo : t + 1] for i in range(cond.size(1))])[..., -1]
        classes[:, t + 1] = sample(logits, temperature, None if uniforms is None else uniforms[:, t])
    return classes[:, 1:]
