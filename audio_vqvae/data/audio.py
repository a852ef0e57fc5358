"""Audio I/O and preprocessing: load as mono float32 (whole or in blocks), silence checks, atomic WAV writes, mu-law.

``resample`` (soxr) lives in ``resample.py`` and is re-exported here.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from torch import Tensor

from ..errors import AudioError, OutputExistsError
from ..fileio import atomic_write, move_no_clobber  # noqa: F401 (move_no_clobber: re-exported)
from .resample import Resampler, resample, resampled_length  # noqa: F401 (resample: re-exported)

# What soundfile raises for a file it cannot open or decode (LibsndfileError is a RuntimeError).
_READ_ERRORS = (sf.LibsndfileError, RuntimeError, OSError)


@dataclass(frozen=True)
class AudioInfo:
    """What a file's header says, read without decoding the samples.

    Attributes:
        path: the file.
        sample_rate: samples per second.
        n_samples: samples per channel (frames).
        channels: number of channels.
        duration: length in seconds, ``n_samples / sample_rate``.
    """

    path: Path
    sample_rate: int
    n_samples: int
    channels: int
    duration: float


def _one_line(e: BaseException) -> str:
    """An exception's message on one line (libsndfile's own text, without its repeated file name)."""
    text = getattr(e, "error_string", None) or str(e) or type(e).__name__
    return " ".join(str(text).split())


def _check_file(path: str | os.PathLike[str]) -> None:
    p = Path(path)
    if not p.exists():
        raise AudioError(f"{path}: file not found")
    if not p.is_file():
        raise AudioError(f"{path}: not a file")


def audio_info(path: str | os.PathLike[str]) -> AudioInfo:
    """Sample rate, length and channels of an audio file, from its header only (cheap).

    A file with no samples is described, not rejected: ``n_samples`` is 0.

    Args:
        path: any file soundfile can read.
    Returns:
        AudioInfo.
    Raises:
        AudioError: the file is missing or unreadable.
    """
    _check_file(path)
    try:
        info = sf.info(str(path))
    except _READ_ERRORS as e:
        raise AudioError(f"{path}: cannot read audio: {_one_line(e)}") from None
    rate, frames = int(info.samplerate), int(info.frames)
    return AudioInfo(Path(path), rate, frames, int(info.channels), frames / rate if rate else 0.0)


# Frames read per block, at the file's own rate: 1.4 s at 48 kHz, 512 KiB of float32 stereo.
BLOCK_FRAMES = 1 << 16


class AudioStream:
    """An audio file as mono float32 blocks at ``sample_rate``: read, downmixed and resampled a block at
    a time, so that memory does not grow with the file; joined, the blocks are ``load_audio``'s.

    The header is read here, so a missing or unreadable file fails at once; the samples are read
    when the stream is iterated (each iteration reads the file from its start). The checks of
    ``load_audio`` run on the way: a file with non-finite samples yields nothing from its first bad
    block on and raises once it has been read to the end (the message counts them all); an empty or
    too short file raises after its last block.

    Args:
        path: any file soundfile can read, any sample format, rate and number of channels.
        sample_rate: rate of the blocks, in Hz.
        min_samples: fewest samples accepted, counted at ``sample_rate``.
        block_frames: frames read per block, at the file's rate.
    Attributes:
        n_samples: samples the header promises at ``sample_rate`` (``resampled_length``); the
            stream's own count is the authority (some compressed formats' headers are approximate).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        sample_rate: int = 16000,
        *,
        min_samples: int = 1,
        block_frames: int = BLOCK_FRAMES,
    ):
        if sample_rate <= 0:
            raise ValueError(f"sample_rate must be positive, got {sample_rate}")
        if block_frames < 1:
            raise ValueError(f"block_frames must be >= 1, got {block_frames}")
        info = audio_info(path)
        self.path = Path(path)
        self.sample_rate = int(sample_rate)
        self.file_rate = info.sample_rate
        self.min_samples = min_samples
        self.block_frames = block_frames
        self.n_samples = resampled_length(info.n_samples, info.sample_rate, self.sample_rate)

    def _read(self, f: sf.SoundFile) -> np.ndarray:
        try:
            return f.read(self.block_frames, dtype="float32", always_2d=True)  # (t, C)
        except _READ_ERRORS as e:
            raise AudioError(f"{self.path}: cannot read audio: {_one_line(e)}") from None

    def __iter__(self) -> Iterator[Tensor]:
        """(t,) float32 blocks on the CPU, in order; block sizes vary (the resampler's delay)."""
        try:
            f = sf.SoundFile(str(self.path))
        except _READ_ERRORS as e:
            raise AudioError(f"{self.path}: cannot read audio: {_one_line(e)}") from None
        resampler = Resampler(self.file_rate, self.sample_rate)
        frames = bad = given = 0
        with f:
            last = False
            while not last:
                data = self._read(f)
                last = data.shape[0] < self.block_frames
                frames += data.shape[0]
                bad += int((~np.isfinite(data).all(axis=1)).sum())  # time steps with a NaN or Inf in any channel
                if bad:
                    continue  # read on, to count them all; nothing more is given
                mono = data[:, 0] if data.shape[1] == 1 else data.mean(axis=1, dtype=np.float32)
                out = resampler(mono, last)  # (t',)
                if out.size:
                    given += out.size
                    yield torch.from_numpy(np.ascontiguousarray(out, dtype=np.float32))
        if frames == 0:
            raise AudioError(f"{self.path}: empty file (0 samples)")
        if bad:
            raise AudioError(f"{self.path}: {bad} of {frames} samples are not finite (NaN or Inf)")
        if given < self.min_samples:
            raise AudioError(f"{self.path}: too short: {given} samples, need at least {self.min_samples}")


def join_blocks(blocks: Iterable[Tensor], n_samples: int = 0) -> Tensor:
    """(t,) blocks joined into one (T,) tensor, copied into a buffer of ``n_samples`` (grown if short),
    so that the blocks and their concatenation are never all held at once."""
    out, n = torch.empty(n_samples), 0
    for block in blocks:
        k = block.numel()
        if n + k > out.numel():  # the header undercounted: grow geometrically
            out = torch.cat([out[:n], torch.empty(max(n + k, 2 * out.numel()) - n)])
        out[n : n + k] = block
        n += k
    return out if n == out.numel() else out[:n].clone()


def load_audio(path: str | os.PathLike[str], sample_rate: int = 16000, *, min_samples: int = 1) -> Tensor:
    """Read an audio file as mono float32 at ``sample_rate``, whole (``AudioStream`` gives it in blocks).

    Fix-ups, applied in this order: a multi-channel file is averaged over its channels (mono); a
    file at another rate is resampled with soxr (``resample.Resampler``), block by block, so the file
    is never held whole at its own rate. Samples are not clipped or normalised, so a resampled
    full-scale file may overshoot [-1, 1] slightly.

    Args:
        path: any file soundfile can read (WAV, FLAC, OGG, ...), any sample format.
        sample_rate: rate of the returned waveform, in Hz.
        min_samples: fewest samples accepted, counted after resampling.
    Returns:
        (T,) float32 waveform on the CPU; T = ``resampled_length(frames, file rate, sample_rate)``.
    Raises:
        AudioError: naming the file, when it is missing, unreadable, empty, holds NaN or Inf
            samples, or is shorter than ``min_samples`` after resampling.
    """
    stream = AudioStream(path, sample_rate, min_samples=min_samples)
    return join_blocks(stream, stream.n_samples)


def is_silent(wav: Tensor, threshold_db: float = -60.0) -> bool:
    """Whether the peak amplitude is below ``threshold_db`` dBFS (0 dB = full scale 1.0).

    Args:
        wav: (..., T) waveform; an empty one is silent.
        threshold_db: peak level in dB relative to full scale.
    Returns:
        True when ``max |wav| < 10 ** (threshold_db / 20)``.
    """
    if wav.numel() == 0:
        return True
    return bool(wav.detach().abs().max() < 10.0 ** (threshold_db / 20.0))


def trim_silence(
    wav: Tensor, sample_rate: int, top_db: float = 40.0, frame_ms: float = 25.0, hop_ms: float = 10.0
) -> Tensor:
    """Cut leading and trailing silence with ``librosa.effects.trim``.

    Frames of ``frame_ms`` centred every ``hop_ms`` (zero-padded at the ends) whose RMS is more than
    ``top_db`` below the loudest frame's are silence; with several channels a frame is loud when any
    channel is. The result runs from the centre of the first loud frame to one hop past the centre of
    the last (librosa's cut points): every sample cut lies in a silent frame when ``frame_ms >= 2 hop_ms``
    (as by default), and at most half a frame plus a hop of margin is kept on each side. Nothing
    inside is removed.

    Two cases are not librosa's: audio that is all zeros comes back empty (librosa keeps it whole,
    every frame being level with its 0 reference), and librosa floors frame RMS at 1e-5 (-100 dBFS)
    before comparing, so digital-zero edges are only cut when the loudest frame is more than
    ``top_db`` above that floor (an RMS above -60 dBFS at the default 40 dB).

    Args:
        wav: (..., T) waveform (any device); all leading dims are cut alike.
        sample_rate: its rate, in Hz (sets the frame sizes).
        top_db: how far below the loudest frame a frame counts as silence, in dB.
        frame_ms: frame length in milliseconds.
        hop_ms: frame hop in milliseconds.
    Returns:
        (..., T') slice of ``wav``, T' <= T; T' = 0 when ``wav`` is all zeros.
    """
    T = wav.size(-1)
    if T == 0:
        return wav
    x = wav.detach().to("cpu", torch.float32).numpy()
    if not np.any(x):
        return wav[..., :0]
    hop = max(1, round(sample_rate * hop_ms / 1000))
    frame = max(hop, round(sample_rate * frame_ms / 1000))
    import librosa.effects  # imported here: librosa is slow to import and most commands never trim

    _, (start, end) = librosa.effects.trim(x, top_db=top_db, frame_length=frame, hop_length=hop)
    return wav[..., int(start) : int(end)]


def save_audio(
    path: str | os.PathLike[str], wav: Tensor | np.ndarray, sample_rate: int, *, overwrite: bool = False
) -> Path:
    """Write a 16-bit PCM WAV file, atomically, never replacing a file unless asked.

    Samples are clipped to [-1, 1] and stored as ``clip(round(x * 32768), -32768, 32767)``, the
    inverse of how ``load_audio`` reads 16-bit files (``/ 32768``), so a round trip is exact to
    1/32768. The data goes to a temporary file in the same folder, is flushed to disk, then
    moved into place, so a crash never leaves a half-written file at ``path``. Without
    ``overwrite`` the move is a hard link, which fails if ``path`` appeared meanwhile.

    Args:
        path: destination; missing parent folders are created.
        wav: (T,), (1, T) or (1, 1, T) float waveform (tensor on any device, or array).
        sample_rate: in Hz.
        overwrite: replace an existing file at ``path``.
    Returns:
        The path written.
    Raises:
        FileExistsError: ``path`` exists and ``overwrite`` is False; the file is left untouched.
        ValueError: ``wav`` has another shape or non-finite samples.
    """
    path = Path(path)
    if isinstance(wav, Tensor):
        wav = wav.detach().to("cpu", torch.float32).numpy()
    data = np.asarray(wav, dtype=np.float32)
    if data.ndim == 0 or data.ndim > 3 or any(n != 1 for n in data.shape[:-1]):
        raise ValueError(f"{path}: expected a mono waveform (T,), (1, T) or (1, 1, T), got shape {data.shape}")
    data = data.reshape(-1)  # (T,)
    if not np.isfinite(data).all():
        raise ValueError(f"{path}: {int((~np.isfinite(data)).sum())} non-finite samples, refusing to write")
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    if path.is_dir():
        raise OutputExistsError(f"{path}: is a folder")
    if path.exists() and not overwrite:
        raise OutputExistsError(f"{path}: already exists; pass overwrite=True to replace it")
    pcm = to_pcm16(data)

    return atomic_write(path, lambda f: sf.write(f, pcm, sample_rate, subtype="PCM_16", format="WAV"), overwrite)


def to_pcm16(wav: Tensor | np.ndarray) -> np.ndarray:
    """(T,) float samples -> int16 ``clip(round(x * 32768), -32768, 32767)``, how 16-bit WAVs are written."""
    if isinstance(wav, Tensor):
        wav = wav.detach().to("cpu").float().numpy()
    data = np.asarray(wav, dtype=np.float32).reshape(-1)
    return np.clip(np.round(np.clip(data, -1.0, 1.0) * 32768.0), -32768, 32767).astype(np.int16)


def mu_law_encode(x: Tensor, classes: int = 256) -> Tensor:
    """Mu-law companding and quantisation, as in WaveNet (van den Oord et al. 2016, section 2.2).

    ``y = sign(x) * ln(1 + mu |x|) / ln(1 + mu)`` with ``mu = classes - 1``, then
    ``q = floor((y + 1) / 2 * mu + 0.5)``: rounding to the nearest class, halves up. With an even
    number of classes no class sits at exactly 0: 0.0 falls on the boundary between classes
    ``classes // 2 - 1`` and ``classes // 2`` and maps to ``classes // 2`` (128 of 256), which
    decodes to about +8.6e-5 (the model also uses that class as its start-of-sequence input).

    Args:
        x: float waveform of any shape and device; values outside [-1, 1] are clamped.
        classes: number of quantisation levels.
    Returns:
        int64 tensor of x's shape with values in [0, classes - 1].
    """
    if classes < 2:
        raise ValueError(f"classes must be at least 2, got {classes}")
    mu = classes - 1
    dtype = torch.float64 if x.dtype == torch.float64 else torch.float32  # half precision cannot hold 127.5
    x = x.to(dtype).clamp(-1.0, 1.0)
    y = torch.sign(x) * torch.log1p(mu * x.abs()) / math.log1p(mu)
    return torch.floor((y + 1.0) * (mu / 2.0) + 0.5).long()


def mu_law_decode(q: Tensor, classes: int = 256) -> Tensor:
    """Inverse of ``mu_law_encode``: class indices back to amplitudes in [-1, 1].

    ``y = 2 q / mu - 1``, ``x = sign(y) * ((1 + mu) ** |y| - 1) / mu``. Each class decodes to the
    amplitude its companded value stands for, so ``mu_law_encode(mu_law_decode(q)) == q``.

    Args:
        q: integer tensor of any shape and device, values in [0, classes - 1].
        classes: number of quantisation levels.
    Returns:
        float32 tensor of q's shape.
    """
    if classes < 2:
        raise ValueError(f"classes must be at least 2, got {classes}")
    mu = classes - 1
    y = (q.to(torch.float32) * 2.0 - mu) / mu  # exact numerator: classes q and mu - q decode to +-x
    return torch.sign(y) * torch.expm1(y.abs() * math.log1p(mu)) / mu
