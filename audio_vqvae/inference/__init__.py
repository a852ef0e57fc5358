"""Use a trained model on many utterances at once: voice conversion and discrete token extraction.

Inputs are paths (any file soundfile reads, any rate: read at the model rate with the preprocessing
training used, ``audio.AudioStream``) or (T,) waveform tensors already at the model rate. Encoding is
exact and chunked (``windows.encode_chunked``) and reads a file block by block; generation is batched
and chunked (``synthesis.decode_stream``), so long inputs run in memory that does not grow with their
length, except for the waveforms returned whole by ``convert`` and ``decode_tokens`` (``iter_decode_pieces``
hands them on in pieces; the CLI writes them so).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence

import torch
from torch import Tensor

from ..data.audio import AudioError, AudioStream, audio_info, join_blocks, resampled_length
from ..errors import UsageError
from ..models.vqvae import VQVAE, SpeakerLike
from .synthesis import decode_stream
from .tokens import Tokens, id_from_path
from .windows import BATCH_SECONDS, CHUNK_SECONDS, encode_chunked

AudioInput = str | os.PathLike | Tensor


def load_input(x: AudioInput, model: VQVAE) -> Tensor:
    """A path or waveform -> (T,) float32 at the model rate, at least one frame long."""
    source = input_source(x, model)
    return source if isinstance(source, Tensor) else join_blocks(source, source.n_samples)


def input_source(x: AudioInput, model: VQVAE) -> Tensor | AudioStream:
    """A waveform -> (T,) float32 at the model rate; a path -> its ``AudioStream`` at the model rate,
    read block by block when iterated. Either is at least one frame long (a stream checks as it ends)."""
    if isinstance(x, Tensor):
        if x.dim() > 1 and any(n != 1 for n in x.shape[:-1]):
            raise ValueError(f"expected a mono waveform (T,), (1, T) or (1, 1, T), got {tuple(x.shape)}")
        wav = x.detach().reshape(-1).float().cpu()
        if wav.numel() < model.hop_length:
            raise ValueError(f"waveform of {wav.numel()} samples is shorter than one frame ({model.hop_length})")
        return wav
    return AudioStream(x, model.sample_rate, min_samples=model.hop_length)


def input_samples(x: AudioInput, sample_rate: int, min_samples: int = 1) -> int:
    """Samples of an input at ``sample_rate``, from a file's header (cheap), so that an unreadable or
    too short file fails before any work. A resampled length is ``resampled_length``'s, soxr's."""
    if isinstance(x, Tensor):
        n = x.numel()
    else:
        info = audio_info(x)
        n = resampled_length(info.n_samples, info.sample_rate, sample_rate)
    if n < min_samples:
        where = "waveform" if isinstance(x, Tensor) else str(x)
        raise AudioError(f"{where}: too short: {n} samples at {sample_rate} Hz, need at least {min_samples}")
    return n


def input_ids(inputs: Sequence[AudioInput]) -> list[str]:
    """An id per input: a file's name without its extension, a tensor's position; duplicates are errors."""
    ids, where = [], {}
    for i, x in enumerate(inputs):
        uid = str(i) if isinstance(x, Tensor) else id_from_path(x)
        if uid in where:
            raise UsageError(f"{x}: utterance id '{uid}' is also that of {inputs[where[uid]]}; rename one")
        where[uid] = i
        ids.append(uid)
    return ids


def iter_tokens(
    model: VQVAE,
    wavs: Sequence[AudioInput],
    ids: Sequence[str] | None = None,
    *,
    latents: str | None = None,
    chunk_seconds: float = CHUNK_SECONDS,
    batch_seconds: float = BATCH_SECONDS,
) -> Iterator[Tokens]:
    """Tokens of each input in order, each as soon as it is encoded; files are read one at a time.

    Args:
        wavs: paths or (T,) waveforms at the model rate.
        ids: one per input; default ``input_ids(wavs)``.
        latents: also give ``"quantized"`` (codebook vectors) or ``"continuous"`` (encoder
            outputs before quantization) vectors, (N, D) each.
        chunk_seconds, batch_seconds: see ``windows.encode_chunked``.
    """
    ids = input_ids(wavs) if ids is None else list(ids)
    if len(ids) != len(wavs):
        raise ValueError(f"{len(ids)} ids for {len(wavs)} inputs")
    waveforms = (input_source(x, model) for x in wavs)  # files are streamed: memory does not grow with them
    for enc in encode_chunked(
        model, waveforms, chunk_seconds=chunk_seconds, batch_seconds=batch_seconds, latents=latents
    ):
        yield Tokens(ids[enc.index], enc.codes, enc.latents)


def extract_tokens(
    model: VQVAE, wavs: Sequence[AudioInput], ids: Sequence[str] | None = None, **options
) -> list[Tokens]:
    """Discrete units of many utterances: a list of ``Tokens`` (id, (N,) codes, optional (N, D) latents).

    Codes equal ``model.encode`` of each whole waveform; see ``iter_tokens`` for the options.
    """
    return list(iter_tokens(model, wavs, ids, **options))


def iter_decode_pieces(
    model: VQVAE,
    codes: Sequence[Tensor],
    speakers: SpeakerLike,
    *,
    batch_size: int = 8,
    chunk_frames: int = 250,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
    progress: Callable[[int], None] | None = None,
    envelope: float = 0.0,
) -> Iterator[tuple[int, Tensor, bool]]:
    """Speech from code sequences in batches, handed on as it is generated: memory does not grow with
    the sequences' length (write the pieces out, as the CLI does with ``wav_writer.WavWriter``).

    Sequences are grouped longest first, ``batch_size`` per batch, so the rows of a batch have
    similar lengths; each batch is generated together, one speaker per row, in chunks of frames
    (``synthesis.decode_stream``).

    Args:
        codes: (N,) int64 frame codes per utterance.
        speakers: one speaker (name or id) for all, or one per utterance.
        batch_size: utterances generated together.
        chunk_frames: frames generated per chunk (``synthesis.generate_chunked``); bounds memory.
        temperature: 0 is greedy; generator: for reproducible sampling.
        progress: called with the samples generated after each chunk.
        envelope: strength in [0, 1] of the mel decoder's spectral envelope on the output
            (``envelope.EnvelopeFilter``); 0: the WaveNet's output as it is.
    Yields:
        ``(index, piece, last)``: the next (n,) float32 samples of utterance ``index``; ``last`` on
        its final piece. Joined, an utterance's pieces are its (N * hop,) waveform.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    model.eval()
    ids = model.speaker_ids(speakers, len(codes))
    device = next(model.parameters()).device
    order = sorted(range(len(codes)), key=lambda i: -codes[i].numel())
    for start in range(0, len(order), batch_size):
        batch = order[start : start + batch_size]
        n = torch.tensor([codes[i].numel() for i in batch])
        padded = torch.zeros(len(batch), int(n.max()), dtype=torch.long)
        for b, i in enumerate(batch):
            padded[b, : n[b]] = codes[i].reshape(-1)
        for b, piece, last in decode_stream(
            model,
            padded.to(device),
            ids[batch],
            n,
            chunk_frames=chunk_frames,
            temperature=temperature,
            generator=generator,
            progress=progress,
            envelope=envelope,
        ):
            yield batch[b], piece, last


def iter_decode(
    model: VQVAE, codes: Sequence[Tensor], speakers: SpeakerLike, **options
) -> Iterator[tuple[int, Tensor]]:
    """Speech from code sequences in batches: yields ``(index, (N * hop,) waveform)`` per utterance as it is done.

    ``iter_decode_pieces`` joined per utterance; see it for the options (batch_size, chunk_frames,
    temperature, generator, progress, envelope).
    """
    pieces: dict[int, list[Tensor]] = {}
    for i, piece, last in iter_decode_pieces(model, codes, speakers, **options):
        pieces.setdefault(i, []).append(piece)
        if last:
            done = pieces.pop(i)
            yield i, torch.cat(done) if len(done) > 1 else done[0]


def decode_tokens(model: VQVAE, codes: Sequence[Tensor], speakers: SpeakerLike, **options) -> list[Tensor]:
    """Speech from (N,) code sequences with any speaker(s): one (N * hop,) waveform each, in order.

    See ``iter_decode`` for the options (batch_size, chunk_frames, temperature, generator, progress, envelope).
    """
    out: list[Tensor | None] = [None] * len(codes)
    for i, wav in iter_decode(model, codes, speakers, **options):
        out[i] = wav
    return out  # type: ignore[return-value]


def iter_convert(
    model: VQVAE,
    wavs: Sequence[AudioInput],
    target_speakers: SpeakerLike,
    *,
    chunk_seconds: float = CHUNK_SECONDS,
    **options,
) -> Iterator[tuple[int, Tensor]]:
    """Voice conversion: yields ``(input index, (T // hop * hop,) waveform)`` as each batch finishes.

    Every input is checked (readable, long enough) and every speaker resolved before any work;
    all inputs are encoded first (codes are small), then generated in batches by ``iter_decode``.

    Args:
        wavs: paths or (T,) waveforms at the model rate.
        target_speakers: one speaker (name or id) for all, or one per input.
        chunk_seconds: encoder window (``windows.encode_chunked``).
        **options: ``iter_decode``'s (batch_size, chunk_frames, temperature, generator, progress, envelope).
    """
    model.speaker_ids(target_speakers, len(wavs))  # unknown names fail before any work
    for x in wavs:
        input_samples(x, model.sample_rate, model.hop_length)  # unreadable or short files fail before any work
    codes = [t.codes for t in iter_tokens(model, wavs, [str(i) for i in range(len(wavs))], chunk_seconds=chunk_seconds)]
    yield from iter_decode(model, codes, target_speakers, **options)


def convert(model: VQVAE, wavs: Sequence[AudioInput], target_speakers: SpeakerLike, **options) -> list[Tensor]:
    """Convert each input to a target speaker's voice.

    Args:
        wavs: paths or (T,) waveforms at the model rate.
        target_speakers: one speaker (name or id) for all, or one per input.
        **options: see ``iter_convert`` and ``iter_decode`` (batch_size, temperature, generator, ...).
    Returns:
        One (T // hop * hop,) float32 waveform at ``model.sample_rate`` per input, in input order.
    """
    out: list[Tensor | None] = [None] * len(wavs)
    for i, wav in iter_convert(model, wavs, target_speakers, **options):
        out[i] = wav
    return out  # type: ignore[return-value]
