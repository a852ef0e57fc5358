"""Speech from codes in bounded memory: WaveNet generation chunk by chunk, caches carried across chunks.

``WaveNet.generate`` prepares the conditioning of every frame and layer before its sample loop:
(B, N, L, G) floats, 7.7 MB per second of audio at paper size, so an hour would need 28 GB.
``generate_chunked`` computes it for ``chunk_frames`` frames at a time (plus the few frames of
context the kernel-3 conditioning convs read, from latents looked up for those frames only) and
carries the per-layer ring buffers across chunks, so the samples are those of one uninterrupted
pass: in the fused native loop on the CPU (``fastgen.generate_chunk``), as graph replays of
``graphgen.StaticSampler`` on CUDA, elsewhere in the PyTorch loop.

``decode_stream`` hands the waveform on chunk by chunk, so that a caller can write it as it comes
(memory is then the same for a minute and an hour); a batch small enough (``generation_bytes``
within ``ONE_PASS_BYTES``) runs as one ``WaveNet.generate`` call instead. Both take their uniform
numbers from the same ``UniformStream``, so a seed gives the same samples on either path and for
any chunk size. ``decode_chunked`` joins the pieces into waveforms.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import torch
from torch import Tensor, nn

from . import fastgen, graphgen
from .emphasis import DeEmphasis
from .encoder import length_mask
from .model import VQVAE
from .uniforms import UniformStream
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
    context = conditioning_context(wavenet)
    a, b = max(0, lo - context), min(latents.size(-1), hi + context)
    c = wavenet.conditioning(latents[..., a:b], speaker, (lengths - a).clamp(min=0))  # (B, L, G, b - a)
    return c[..., lo - a : hi - a].permute(0, 3, 1, 2).contiguous()  # (B, hi - lo, L, G)


def conditioning_context(wavenet: WaveNet) -> int:
    """Frames on each side that the conditioning of a frame reads: the conditioning convs' paddings summed."""
    return sum(m.padding[0] for m in wavenet.cond_net if isinstance(m, nn.Conv1d))


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
    ``WaveNet.generate`` on it alone. Without them, they come from a ``UniformStream`` of
    ``generator``: the numbers ``WaveNet.generate`` draws from the same seed, whatever ``chunk_frames``.

    Memory is O(B * chunk_frames) but for the codes, and, with ``mel_conditioning``, the mel
    decoder's features of every frame ((D + n_mels) floats a frame), which are computed whole.

    Args:
        codes: (B, N) int64 codes, padded past each utterance's length.
        speaker: (B,) int64 speaker ids.
        lengths: (B,) frames of each utterance; None: all N.
        chunk_frames: frames generated per chunk; memory is O(B * chunk_frames).
        uniforms: (B, N * hop) numbers in [0, 1) to sample with instead of drawing them (tests).
        loop: "torch" runs ``WaveNet.sample_steps``; "native" the fused loop of ``fastgen`` (CPU);
            "static" the fixed-shape step of ``graphgen.StaticSampler``, replayed as CUDA graphs on a
            GPU (eagerly elsewhere: tests); "auto" is "static" on CUDA (falling back to "torch" with a
            warning if capture fails), "native" on the CPU where it builds, else "torch".
    Yields:
        ``(first_frame, wav)``: wav (B, n * hop) float32 on the codes' device for frames
        ``[first_frame, first_frame + n)``; zeros past each utterance's length.
    """
    if codes.dim() != 2:
        raise ValueError(f"codes must have shape (B, N), got {tuple(codes.shape)}")
    model.check_codes(codes)
    wavenet, hop = model.decoder, model.hop_length
    wavenet.check_speakers(speaker)  # every loop, the native one too, fails on a bad id before any work
    B, N = codes.shape
    device = codes.device
    lengths = torch.full((B,), N, dtype=torch.long) if lengths is None else lengths.cpu().long()
    order = torch.argsort(lengths, descending=True, stable=True)
    n_samples = (lengths[order] * hop).tolist()  # host copy, before the loop
    speaker, lengths_dev = speaker.to(device)[order.to(device)], lengths[order].to(device)
    codes = codes[order.to(device)]  # longest first
    features = _features(model, codes, speaker, lengths[order])
    probe = features(0, 1)  # (B, D', 1): device and dtype of the latents
    static = static_sampler(wavenet, B, min(chunk_frames, N), temperature, device, probe.dtype, loop)
    native = static is None and _native(wavenet, probe, loop)
    if native:
        chunk_state = fastgen.chunk_state(wavenet, B)
    elif static is None:
        state = wavenet.init_state(probe, speaker)  # buffers and step weights; cond is set per chunk
    period = clock_period(wavenet)
    context = conditioning_context(wavenet)
    x = torch.full((B,), wavenet.n_classes // 2, dtype=torch.long, device=device)
    de_emphasis = DeEmphasis(model.pre_emphasis)  # one state per (sorted) row, carried across chunks
    stream = UniformStream(B, device, generator)
    active = B
    for first in range(0, N, chunk_frames):
        last = min(N, first + chunk_frames)
        while active and n_samples[active - 1] <= first * hop:
            active -= 1
        n = (last - first) * hop
        if temperature <= 0:
            u = None
        elif uniforms is None:  # drawn in the callers' row order, as one pass draws them
            u = stream.take(n)[order.to(device)]
        else:
            u = uniforms[order.to(uniforms.device), first * hop : last * hop].to(device)
        a, b = max(0, first - context), min(N, last + context)
        latents = features(a, b)  # (B, D', b - a): frames [a, b), all conditioning_window reads
        rows = B if static is not None or native else active
        if rows:  # frames [first, last) of the first `rows` rows: (rows, last - first, L, G)
            cond = conditioning_window(
                wavenet, latents[:rows], speaker[:rows], lengths_dev[:rows] - a, first - a, last - a
            )
        if static is not None:  # every row runs every chunk (one graph, one batch size)
            static.load(cond, u)
            out = static.run(graphed=device.type == "cuda")  # a view of the sampler's buffer, decoded below
        elif native:  # every row, those done included (they generate nothing): one fixed batch
            todo = (torch.tensor(n_samples) - first * hop).clamp(0, n)
            out = fastgen.generate_chunk(wavenet, cond, chunk_state, todo, temperature, u)
        else:
            out = torch.full((B, n), wavenet.n_classes // 2, dtype=torch.long, device=device)
            if active:
                lead = (first * hop) % period
                state.cond = torch.cat([cond.new_zeros(active, lead // hop, *cond.shape[2:]), cond], 1)
                state.t = lead
                x, active = wavenet.sample_steps(state, x, active, n_samples, first * hop, out, u, temperature)
        wav = model.waveform(out, de_emphasis)
        wav = wav * length_mask(lengths_dev - first, last - first).repeat_interleave(hop, -1).squeeze(1)
        result = torch.empty_like(wav)
        result[order.to(device)] = wav
        yield first, result


def _features(model: VQVAE, codes: Tensor, speaker: Tensor, lengths: Tensor) -> Callable[[int, int], Tensor]:
    """``features(a, b)``: the WaveNet's conditioning input, (B, D', b - a), for frames [a, b) of sorted rows.

    Latents are looked up per window (a lookup: exactly the whole tensor's slice). With mel
    conditioning the mel decoder's features are computed once, whole, and sliced.
    """
    if model.mel_conditioning:
        whole = model.conditioning_features(model.quantizer.dequantize(codes), speaker, lengths)  # (B, D', N)
        return lambda a, b: whole[..., a:b]
    return lambda a, b: model.quantizer.dequantize(codes[:, a:b])


def _native(wavenet: WaveNet, latents: Tensor, loop: str) -> bool:
    """Whether ``generate_chunked`` runs ``fastgen``'s loop for ``loop`` ("native" insists, "auto" where it can)."""
    if loop not in ("auto", "native") or latents.device.type != "cpu":
        return False
    return loop == "native" or fastgen.can_run(wavenet, latents)


def static_sampler(
    wavenet: WaveNet, batch: int, chunk_frames: int, temperature: float, device: torch.device, dtype, loop: str
) -> graphgen.StaticSampler | None:
    """The fixed-shape sampler ``generate_chunked`` runs for ``loop`` (None: the PyTorch loop).

    On CUDA its graph is captured here, before any sample, so that a capture failure can still fall
    back to the PyTorch loop (with a one-line warning) for the whole run.
    """
    if loop not in ("auto", "torch", "static", "native"):
        raise ValueError(f"loop must be auto, torch, native or static, got {loop!r}")
    if loop in ("torch", "native") or (loop == "auto" and device.type != "cuda"):
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


# A batch that fits this (generation_bytes) runs as one WaveNet.generate call; a larger one runs chunk
# by chunk (the native loop on the CPU, graphs on CUDA), which is as fast and keeps memory the same for
# any length. 64 MiB: about 85 s of audio at batch 1 with the tiny preset, 1 s at paper size (whose
# conditioning is 30 KB a frame).
ONE_PASS_BYTES = 64 * 2**20


def generation_bytes(wavenet: WaveNet, batch: int, n_frames: int) -> int:
    """Bytes one ``WaveNet.generate`` call on a (batch, n_frames) code batch holds: its conditioning
    (B * N * L * G floats, twice: the native loop lays out a copy) and per sample its uniforms
    (float32, and float64 for the native loop), classes (int64) and waveform (float32), 24 bytes."""
    conditioning = batch * n_frames * len(wavenet.layers) * wavenet.gate_channels * 4
    return 2 * conditioning + batch * n_frames * wavenet.hop_length * 24


def decode_stream(
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
) -> Iterator[tuple[int, Tensor, bool]]:
    """Waveforms of a batch of code sequences, handed on piece by piece: memory O(B * chunk_frames).

    A batch that fits ``one_pass_bytes`` (``generation_bytes``) is generated by one
    ``WaveNet.generate`` call (native on the CPU when it builds), with the latents zeroed past each
    length, and each row comes as one piece; a larger one, or one given ``uniforms``, chunk by chunk
    by ``generate_chunked``, each row's pieces in order.

    Args:
        codes: (B, N); speaker: (B,); lengths: (B,) frames, None: all N.
        progress: called after each pass or chunk with the number of samples generated (all rows).
        one_pass_bytes: memory budget of the one-call path; 0 always runs chunks.
    Yields:
        ``(row, piece, last)``: piece (n,) float32 on the CPU, the next samples of row ``row``;
        ``last`` on its final piece. Joined, a row's pieces are its (lengths[row] * hop,) waveform.
    """
    B, N = codes.shape
    lengths = torch.full((B,), N, dtype=torch.long) if lengths is None else lengths.cpu().long()
    hop = model.hop_length
    if uniforms is None and generation_bytes(model.decoder, B, N) <= one_pass_bytes:
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
        for b in range(B):
            yield b, wav[b, : int(lengths[b]) * hop], True
        return
    for b in range(B):
        if lengths[b] <= 0:
            yield b, torch.zeros(0), True
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
        n_frames = wav.size(1) // hop
        done = 0
        for b in range(B):
            n = max(0, min(int(lengths[b]) - first, n_frames)) * hop
            if n:
                yield b, wav[b, :n], int(lengths[b]) <= first + n_frames
                done += n
        if progress is not None:
            progress(done)


def decode_chunked(
    model: VQVAE, codes: Tensor, speaker: Tensor, lengths: Tensor | None = None, **options
) -> list[Tensor]:
    """Waveforms of a batch of code sequences: ``decode_stream``'s pieces joined, one per row.

    Args:
        codes: (B, N); speaker: (B,); lengths: (B,) frames, None: all N.
        **options: ``decode_stream``'s (chunk_frames, temperature, generator, uniforms, progress,
            one_pass_bytes).
    Returns:
        B waveforms (lengths[b] * hop,) float32 on the CPU.
    """
    pieces: list[list[Tensor]] = [[] for _ in range(codes.size(0))]
    for b, piece, _ in decode_stream(model, codes, speaker, lengths, **options):
        pieces[b].append(piece)
    return [torch.cat(p) if len(p) != 1 else p[0] for p in pieces]
