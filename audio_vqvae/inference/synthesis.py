"""Speech from codes in bounded memory: the VQ-VAE's side of generation, chunk by chunk.

``generation.stream`` samples the WaveNet's classes chunk by chunk, its caches carried across
chunks; here codes become its latents (with mel conditioning, the mel decoder's features) and its
classes become waveforms (de-emphasised with each row's filter state carried across chunks).
``decode_stream`` hands the waveform on chunk by chunk, so that a caller can write it as it comes
(memory is then the same for a minute and an hour); a batch small enough (``generation_bytes``
within ``ONE_PASS_BYTES``) runs as one chunk. The samples are the same either way, and for any
chunk size (``generation``). ``decode_chunked`` joins the pieces into waveforms.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
from torch import Tensor

from .. import generation
from ..generation.conditioning import conditioning_window
from ..models.emphasis import DeEmphasis
from ..models.encoder import length_mask
from ..models.nsf import SourceFilterWaveNet
from ..models.vqvae import VQVAE
from .envelope import envelope_filters


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
    backend: str = "auto",
) -> Iterator[tuple[int, Tensor]]:
    """Waveforms from codes, one chunk of frames at a time (``generation.stream`` underneath).

    Memory is O(B * chunk_frames) but for the codes, and, with ``mel_conditioning``, the mel
    decoder's features of every frame ((D + n_mels) floats a frame), which are computed whole.

    Args:
        codes: (B, N) int64 codes, padded past each utterance's length.
        speaker: (B,) int64 speaker ids.
        lengths: (B,) frames of each utterance; None: all N.
        chunk_frames: frames generated per chunk; memory is O(B * chunk_frames).
        uniforms: (B, N * hop) numbers in [0, 1) to sample with instead of drawing them (tests).
        backend: the sample loop, as ``generation.generate`` takes it.
    Yields:
        ``(first_frame, wav)``: wav (B, n * hop) float32 on the codes' device for frames
        ``[first_frame, first_frame + n)``; zeros past each utterance's length.
    """
    if codes.dim() != 2:
        raise ValueError(f"codes must have shape (B, N), got {tuple(codes.shape)}")
    model.check_codes(codes)
    B, N = codes.shape
    hop = model.hop_length
    lengths = torch.full((B,), N, dtype=torch.long) if lengths is None else lengths.cpu().long()
    speaker = speaker.to(codes.device)
    if model.source_filter:
        yield from source_filter_chunks(model, codes, speaker, lengths, chunk_frames, generator)
        return
    window = _features(model, codes, speaker, lengths)
    de_emphasis = DeEmphasis(model.pre_emphasis)  # one state per row, carried across chunks
    lengths_dev = lengths.to(codes.device)
    for first, classes in generation.stream(
        model.decoder,
        window,
        speaker,
        N,
        lengths,
        chunk_frames=chunk_frames,
        temperature=temperature,
        generator=generator,
        uniforms=uniforms,
        backend=backend,
    ):
        wav = model.waveform(classes.to(codes.device), de_emphasis)  # (B, n * hop)
        n = wav.size(1) // hop
        yield first, wav * length_mask(lengths_dev - first, n).repeat_interleave(hop, -1).squeeze(1)


def source_filter_chunks(
    model: VQVAE,
    codes: Tensor,
    speaker: Tensor,
    lengths: Tensor,
    chunk_frames: int,
    generator: torch.Generator | None = None,
) -> Iterator[tuple[int, Tensor]]:
    """A source-filter decoder's waveforms, ``chunk_frames`` frames at a time, equal to one pass.

    Each chunk runs the causal layers over its own excitation and the ``context_frames`` before it
    (carried from the last chunk), so every kept sample sees its whole receptive field; the source
    carries its phase and noise, and an LPC excitation decoder's all-pole filter its past outputs. The
    features and f0 of every frame are computed whole, as with mel conditioning, and the conditioning
    of each window with ``conditioning_window``.

    Args:
        codes: (B, N); speaker: (B,) ids on the codes' device; lengths: (B,) frames on the CPU.
    Yields:
        ``(first_frame, wav)``: wav (B, n * hop) float32 on the codes' device; zeros past each length.
    """
    decoder = model.decoder
    B, N = codes.shape
    hop, context = model.hop_length, decoder.context_frames
    features, f0 = model.synthesis_inputs(model.quantizer.dequantize(codes), speaker, lengths)  # (B, D', N), (B, N)
    source = decoder.source(B, codes.device, generator)
    lpc = model.excitation_filter()  # None: the layers' output is the waveform
    lengths_dev = lengths.to(codes.device)
    past = features.new_zeros(B, decoder.harmonics, 0)  # excitation of the frames before this chunk
    for first in range(0, N, max(1, chunk_frames)):
        end = min(N, first + max(1, chunk_frames))
        lo = first - past.size(-1) // hop
        excitation = torch.cat([past, source(f0[:, first:end])], -1)  # (B, H, (end - lo) * hop)
        cond = conditioning_window(decoder, features, speaker, lengths, lo, end)  # (B, n, L, G)
        cond = cond.permute(0, 2, 3, 1).unsqueeze(-1)  # (B, L, G, n, 1)
        wav = decoder.run(excitation, list(cond.unbind(1)))[:, (first - lo) * hop :].float()  # (B, n * hop)
        if lpc is not None:
            wav = lpc(wav, model.feature_log_mel(features[..., first:end])).clamp(-1.0, 1.0)
        past = excitation[..., max(0, excitation.size(-1) - context * hop) :]
        yield first, wav * length_mask(lengths_dev - first, end - first).repeat_interleave(hop, -1).squeeze(1)


def _features(model: VQVAE, codes: Tensor, speaker: Tensor, lengths: Tensor) -> Callable[[int, int], Tensor]:
    """``features(a, b)``: the WaveNet's conditioning input, (B, D', b - a), for frames [a, b).

    Latents are looked up per window (a lookup: exactly the whole tensor's slice). With mel
    conditioning the mel decoder's features are computed once, whole, and sliced.
    """
    if model.mel_conditioning:
        whole = model.conditioning_features(model.quantizer.dequantize(codes), speaker, lengths)  # (B, D', N)
        return lambda a, b: whole[..., a:b]
    return lambda a, b: model.quantizer.dequantize(codes[:, a:b])


# A batch that fits this (generation_bytes) runs as one chunk; a larger one runs chunk
# by chunk (the native loop on the CPU, graphs on CUDA), which is as fast and keeps memory the same for
# any length. 64 MiB: about 85 s of audio at batch 1 with the tiny preset, 1 s at paper size (whose
# conditioning is 30 KB a frame).
ONE_PASS_BYTES = 64 * 2**20


def generation_bytes(model: VQVAE, batch: int, n_frames: int) -> int:
    """Bytes one pass over a (batch, n_frames) code batch holds: its conditioning (B * N * L * G floats,
    twice: the native loop lays out a copy) and per sample, for a mu-law WaveNet, its uniforms (float32,
    and float64 for the native loop), classes (int64) and waveform (float32), 24 bytes; for a
    source-filter WaveNet a layer's activations (excitation, residual, gates, skips; float32), and with
    an LPC filter its FFTs (``ExcitationFilter.bytes_per_frame``)."""
    wavenet = model.decoder
    conditioning = batch * n_frames * len(wavenet.layers) * wavenet.gate_channels * 4
    per_sample = 24
    if isinstance(wavenet, SourceFilterWaveNet):
        layer = wavenet.layers[0]
        per_sample = 4 * (wavenet.harmonics + 3 * layer.residual_channels + 2 * wavenet.gate_channels)
        per_sample += 4 * 2 * wavenet.skip_channels
    lpc = model.excitation_filter()
    per_frame = lpc.bytes_per_frame() if lpc is not None else 0
    return 2 * conditioning + batch * n_frames * (wavenet.hop_length * per_sample + per_frame)


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
    envelope: float = 0.0,
) -> Iterator[tuple[int, Tensor, bool]]:
    """Waveforms of a batch of code sequences, handed on piece by piece: memory O(B * chunk_frames).

    A batch that fits ``one_pass_bytes`` (``generation_bytes``) is generated in one chunk, and each
    row comes as one piece; a larger one ``chunk_frames`` frames at a time, each row's pieces in
    order. The samples are the same either way.

    Args:
        codes: (B, N); speaker: (B,); lengths: (B,) frames, None: all N.
        progress: called after each chunk with the number of samples generated (all rows).
        one_pass_bytes: memory budget of one chunk for the whole batch; 0 always runs ``chunk_frames``.
        envelope: strength in [0, 1] of the mel decoder's spectral envelope imposed on the waveform
            (``envelope.EnvelopeFilter``, which delays each row's pieces by under one analysis window);
            0: the WaveNet's output as it is.
    Yields:
        ``(row, piece, last)``: piece (n,) float32 on the CPU, the next samples of row ``row``;
        ``last`` on its final piece. Joined, a row's pieces are its (lengths[row] * hop,) waveform.
    """
    B, N = codes.shape
    lengths = torch.full((B,), N, dtype=torch.long) if lengths is None else lengths.cpu().long()
    hop = model.hop_length
    model.speaker_ids(speaker, B)  # range checks with the model's messages
    filters = envelope_filters(model, codes, speaker, lengths, envelope) if envelope else None
    if generation_bytes(model, B, N) <= one_pass_bytes:
        chunk_frames = max(N, 1)
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
                piece, last = wav[b, :n], int(lengths[b]) <= first + n_frames
                if filters is not None:
                    piece = filters[b](piece)
                    piece = torch.cat([piece, filters[b].flush()]) if last else piece
                yield b, piece, last
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
            one_pass_bytes, envelope).
    Returns:
        B waveforms (lengths[b] * hop,) float32 on the CPU.
    """
    pieces: list[list[Tensor]] = [[] for _ in range(codes.size(0))]
    for b, piece, _ in decode_stream(model, codes, speaker, lengths, **options):
        pieces[b].append(piece)
    return [torch.cat(p) if len(p) != 1 else p[0] for p in pieces]
