"""Speech from codes in bounded memory: WaveNet generation chunk by chunk, caches carried across chunks.

``WaveNet.generate`` prepares the conditioning of every frame and layer before its sample loop:
(B, N, L, G) floats, 7.7 MB per second of audio at paper size, so an hour would need 28 GB.
``generate_chunked`` computes it for ``chunk_frames`` frames at a time (plus the few frames of
context the kernel-3 conditioning convs read) and keeps the per-layer ring buffers of one
``GenerationState`` across chunks, so the samples are those of one uninterrupted pass.

``decode_chunked`` runs a batch that fits ``ONE_PASS_BYTES`` of conditioning as one
``WaveNet.generate`` call instead, which uses the fused native loop on the CPU (``fastgen``), and
only longer batches chunk by chunk: on CUDA as graph replays of ``graphgen.StaticSampler``, which
carries its caches across chunks, elsewhere in the PyTorch loop (the native loop cannot yet resume
its state).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import torch
from torch import Tensor, nn

from . import graphgen
from .emphasis import DeEmphasis
from .encoder import length_mask
from .model import VQVAE
from .wavenet import WaveNet


def conditioning_window(
    wavenet: WaveNet, latents: Tensor, speaker: Tensor, lengths: Tensor, lo: int, hi: int
) -> Tensor:
    """Per-frame, per-layer gate biases of frames ``[lo, hi)``, as ``WaveNet.conditioning`` gives them.

    Reads ``c`` frames of context on each side, ``c`` the total padding of the conditioning convs,
    and zeroes every conv's input past each utterance's length, so a padded row equals the row alone.

    Args:
        latents: (B, D, N) quantized latents; speaker: (B,) ids; lengths: (B,) frames.
    Returns:
        (B, hi - lo, L, G), the layout ``GenerationState.cond`` uses.
    """
    context = sum(m.padding[0] for m in wavenet.cond_net if isinstance(m, nn.Conv1d))
    a, b = max(0, lo - context), min(latents.size(-1), hi + context)
    mask = length_mask(lengths - a, b - a)  # (B, 1, b - a)
    x = latents[..., a:b] * mask
    for module in wavenet.cond_net:
        x = module(x)
        if isinstance(module, nn.ReLU):
            x = x * mask
    c = wavenet.cond_proj(x) + wavenet.speaker_proj(wavenet.speaker_embedding(speaker)).unsqueeze(-1)
    B, n_layers = latents.size(0), len(wavenet.layers)
    c = c.view(B, n_layers, wavenet.gate_channels, b - a)[..., lo - a : hi - a]  # (B, L, G, hi - lo)
    return c.permute(0, 3, 1, 2).contiguous()


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


@torch.no_grad()
def generate_chunked(
    model: VQVAE,
    codes: Tensor,
    speaker: Tensor,
    lengths: Tensor | None = None,
    *,
    chunk_frames: int = 250,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
    uniforms: Tensor | None = None,
    loop: str = "auto",
) -> Iterator[tuple[int, Tensor]]:
    """Generate waveforms from codes, one chunk of frames at a time.

    Utterances run longest first and leave the batch when done, as in ``WaveNet.generate``.
    Given the same ``uniforms`` (or greedy, ``temperature=0``), each utterance gets the samples of
    ``WaveNet.generate`` on it alone. Without them, uniforms are drawn chunk by chunk, so a seeded
    run is reproducible but not the same stream as ``model.decode``'s.

    Args:
        codes: (B, N) int64 codes, padded past each utterance's length.
        speaker: (B,) int64 speaker ids.
        lengths: (B,) frames of each utterance; None: all N.
        chunk_frames: frames generated per chunk; memory is O(B * chunk_frames).
        uniforms: (B, N * hop) numbers in [0, 1) to sample with instead of drawing them (tests).
        loop: "torch" runs ``WaveNet.sample_steps``; "static" the fixed-shape step of
            ``graphgen.StaticSampler``, replayed as CUDA graphs on a GPU (eagerly elsewhere: tests);
            "auto" is "static" on CUDA (falling back to "torch" with a warning if capture fails).
    Yields:
        ``(first_frame, wav)``: wav (B, n * hop) float32 on the codes' device for frames
        ``[first_frame, first_frame + n)``; zeros past each utterance's length.
    """
    if codes.dim() != 2:
        raise ValueError(f"codes must have shape (B, N), got {tuple(codes.shape)}")
    model.check_codes(codes)
    wavenet, hop = model.decoder, model.hop_length
    B, N = codes.shape
    device = codes.device
    lengths = torch.full((B,), N, dtype=torch.long) if lengths is None else lengths.cpu().long()
    order = torch.argsort(lengths, descending=True, stable=True)
    n_samples = (lengths[order] * hop).tolist()  # host copy, before the loop
    speaker, lengths_dev = speaker.to(device)[order.to(device)], lengths[order].to(device)
    latents = model.quantizer.dequantize(codes[order.to(device)])  # (B, D, N), longest first
    latents = model.conditioning_features(latents, speaker, lengths[order])  # (B, D', N)
    static = static_sampler(wavenet, B, min(chunk_frames, N), temperature, device, latents.dtype, loop)
    if static is None:
        state = wavenet.init_state(latents[..., :1], speaker)  # buffers and step weights; cond is set per chunk
    period = clock_period(wavenet)
    x = torch.full((B,), wavenet.n_classes // 2, dtype=torch.long, device=device)
    de_emphasis = DeEmphasis(model.pre_emphasis)  # one state per (sorted) row, carried across chunks
    active = B
    for first in range(0, N, chunk_frames):
        last = min(N, first + chunk_frames)
        while active and n_samples[active - 1] <= first * hop:
            active -= 1
        n = (last - first) * hop
        if temperature <= 0:
            u = None
        elif uniforms is None:
            u = torch.rand(B, n, device=device, generator=generator)
        else:
            u = uniforms[order.to(uniforms.device), first * hop : last * hop].to(device)
        if static is not None:  # every row runs every chunk (one graph, one batch size)
            static.load(conditioning_window(wavenet, latents, speaker, lengths_dev, first, last), u)
            out = static.run(graphed=device.type == "cuda")  # a view of the sampler's buffer, decoded below
        else:
            out = torch.full((B, n), wavenet.n_classes // 2, dtype=torch.long, device=device)
            if active:
                lead = (first * hop) % period
                cond = conditioning_window(
                    wavenet, latents[:active], speaker[:active], lengths_dev[:active], first, last
                )  # (active, last - first, L, G)
                state.cond = torch.cat([cond.new_zeros(active, lead // hop, *cond.shape[2:]), cond], 1)
                state.t = lead
                x, active = wavenet.sample_steps(state, x, active, n_samples, first * hop, out, u, temperature)
        wav = model.waveform(out, de_emphasis)
        wav = wav * length_mask(lengths_dev - first, last - first).repeat_interleave(hop, -1).squeeze(1)
        result = torch.empty_like(wav)
        result[order.to(device)] = wav
        yield first, result


def static_sampler(
    wavenet: WaveNet, batch: int, chunk_frames: int, temperature: float, device: torch.device, dtype, loop: str
) -> graphgen.StaticSampler | None:
    """The fixed-shape sampler ``generate_chunked`` runs for ``loop`` (None: the PyTorch loop).

    On CUDA its graph is captured here, before any sample, so that a capture failure can still fall
    back to the PyTorch loop (with a one-line warning) for the whole run.
    """
    if loop not in ("auto", "torch", "static"):
        raise ValueError(f"loop must be auto, torch or static, got {loop!r}")
    if loop == "torch" or (loop == "auto" and device.type != "cuda"):
        return None
    # Every chunk but the last fills whole graphs: chunk_frames * hop samples are a multiple of the graph length.
    steps = math.gcd(graphgen.STEPS_PER_GRAPH, chunk_frames * wavenet.hop_length)
    sampler = graphgen.StaticSampler(wavenet, batch, chunk_frames, temperature, steps, device, dtype)
    if device.type == "cuda":
        try:
            sampler.capture()
        except RuntimeError as e:
            if loop == "static":
                raise
            graphgen.warn_fallback(e)
            return None
    return sampler


# A batch whose conditioning (B * N * L * G floats) fits this runs as one WaveNet.generate call, which
# uses the fused native loop on the CPU (audio_vqvae.fastgen, 4-20x faster than the PyTorch step
# loop); longer batches run chunk by chunk (graph replays on CUDA, the PyTorch loop elsewhere) so that
# memory stays bounded.
ONE_PASS_BYTES = 512 * 2**20


def conditioning_bytes(wavenet: WaveNet, batch: int, n_frames: int) -> int:
    """Bytes of ``WaveNet.generate``'s precomputed conditioning for a (batch, n_frames) code batch."""
    return batch * n_frames * len(wavenet.layers) * wavenet.gate_channels * 4


def decode_chunked(
    model: VQVAE,
    codes: Tensor,
    speaker: Tensor,
    lengths: Tensor | None = None,
    *,
    chunk_frames: int = 250,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
    uniforms: Tensor | None = None,
    progress: Callable[[int], None] | None = None,
    one_pass_bytes: int = ONE_PASS_BYTES,
) -> list[Tensor]:
    """Waveforms of a batch of code sequences in bounded memory.

    A batch whose conditioning fits ``one_pass_bytes`` is generated by one ``WaveNet.generate`` call
    (native on the CPU when it builds), with the latents zeroed past each length; a larger one, or
    one given ``uniforms``, chunk by chunk by ``generate_chunked``.

    Args:
        codes: (B, N); speaker: (B,); lengths: (B,) frames, None: all N.
        progress: called after each pass or chunk with the number of samples generated (all rows).
        one_pass_bytes: conditioning budget of the one-call path; 0 always runs chunks.
    Returns:
        B waveforms (lengths[b] * hop,) float32 on the CPU.
    """
    B, N = codes.shape
    lengths = torch.full((B,), N, dtype=torch.long) if lengths is None else lengths.cpu().long()
    hop = model.hop_length
    if uniforms is None and conditioning_bytes(model.decoder, B, N) <= one_pass_bytes:
        model.speaker_ids(speaker, B)  # range checks with the model's messages
        model.check_codes(codes)
        speaker = speaker.to(codes.device)
        latents = model.quantizer.dequantize(codes)  # (B, D, N)
        latents = model.conditioning_features(latents, speaker, lengths)  # (B, D', N)
        latents = latents * length_mask(lengths.to(latents.device), N)  # zero-padded, as generate expects
        classes = model.decoder.generate(latents, speaker, lengths, temperature, generator)
        wav = model.waveform(classes).cpu()  # (B, N * hop)
        if progress is not None:
            progress(int(lengths.sum()) * hop)
        return [wav[b, : int(lengths[b]) * hop] for b in range(B)]
    pieces: list[list[Tensor]] = [[] for _ in range(B)]
    for first, wav in generate_chunked(
        model,
        codes,
        speaker,
        lengths,
        chunk_frames=chunk_frames,
        temperature=temperature,
        generator=generator,
        uniforms=uniforms,
    ):
        wav = wav.cpu()
        done = 0
        for b in range(B):
            n = max(0, min(int(lengths[b]) - first, wav.size(1) // hop)) * hop
            if n:
                pieces[b].append(wav[b, :n])
                done += n
        if progress is not None:
            progress(done)
    return [torch.cat(p) if p else torch.zeros(0) for p in pieces]
