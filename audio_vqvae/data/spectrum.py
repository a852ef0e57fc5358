"""Spectra of waveforms on the code grid: log-mel and MFCC frames (with deltas), and the mel filterbank
and STFT power that the model's mel loss and log-mel front end use too."""

from __future__ import annotations

import functools

import torch
from torch import Tensor
from torch.nn import functional as F

LOG_FLOOR = 1e-10  # floor of mel power before the log: -100 dB, so digital silence stays finite


@functools.lru_cache(maxsize=16)
def _mel_basis(sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> Tensor:
    import librosa.filters  # numpy only; imported here so that importing the metrics stays cheap

    basis = librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax)
    return torch.from_numpy(basis).float()  # (n_mels, n_fft // 2 + 1), Slaney-normalised triangles


def cepstrum(log_mel: Tensor, n_mfcc: int) -> Tensor:
    """Orthonormal DCT-II of log-mel frames (``scipy.fft.dct(norm="ortho")``, as librosa's and Kaldi's MFCCs).

    Args:
        log_mel: (N, n_mels) log mel power frames.
        n_mfcc: coefficients kept, c0 .. c_{n_mfcc - 1} (at most n_mels).
    Returns:
        (N, n_mfcc) float32, computed in float64.
    """
    import scipy.fft  # imported here so that importing the metrics stays cheap (~0.2 s)

    if not 1 <= n_mfcc <= log_mel.size(-1):
        raise ValueError(f"n_mfcc must be in [1, {log_mel.size(-1)}] (the mel bands), got {n_mfcc}")
    x = log_mel.detach().to("cpu", torch.float64).numpy()
    c = scipy.fft.dct(x, type=2, norm="ortho", axis=-1)[..., :n_mfcc]
    return torch.from_numpy(c).float()


def fft_size(win_length: int) -> int:
    """The FFT size for a window: the next power of two."""
    return 1 << (win_length - 1).bit_length()


def mel_power(x: Tensor, hop_length: int, n_frames: int, win_length: int, window: Tensor, basis: Tensor) -> Tensor:
    """Mel power of N frames on the code grid: frame n is the window centred on sample (n + 1/2) * hop.

    The signal is zero-padded where a window runs past either end. Used by ``log_mel_frames`` (metrics)
    and ``mel.LogMel`` (the model's targets and front end), so both see the same frames.

    Args:
        x: (..., T) float32 waveform(s); hop_length: samples between frames; n_frames: N >= 1.
        win_length: window length; window: (win_length,) its weights; basis: (n_mels, n_fft // 2 + 1)
            mel filters for ``n_fft = fft_size(win_length)``.
    Returns:
        (..., n_mels, N) float32.
    """
    n_fft = fft_size(win_length)
    T = x.size(-1)
    left = frame_offset(hop_length, win_length)
    needed = (n_frames - 1) * hop_length + n_fft
    x = F.pad(x, (left, max(0, needed - left - T)))[..., :needed]
    return framed_mel_power(x, hop_length, win_length, window, basis)


def frame_offset(hop_length: int, win_length: int) -> int:
    """Samples of padding before the signal in ``mel_power``: frame n reads samples
    ``[n * hop - offset, n * hop - offset + n_fft)`` of the signal (zeros outside it)."""
    # torch.stft centres a shorter window inside the n_fft frame, so frame m is centred on
    # m * hop + n_fft / 2 of the padded signal, i.e. on (m + 1/2) * hop of the original.
    return fft_size(win_length) // 2 - hop_length // 2


def framed_mel_power(x: Tensor, hop_length: int, win_length: int, window: Tensor, basis: Tensor) -> Tensor:
    """Mel power of every whole ``n_fft`` frame of ``x``, ``hop_length`` apart, the first at sample 0.

    Args:
        x: (..., (N - 1) * hop + n_fft) float32, already padded (``mel_power``) or cut from a stream.
    Returns:
        (..., n_mels, N) float32.
    """
    spec = torch.stft(
        x,
        fft_size(win_length),
        hop_length=hop_length,
        win_length=win_length,
        window=window,
        center=False,
        return_complex=True,
    )  # (..., n_fft // 2 + 1, N)
    return torch.matmul(basis, spec.abs().square())


def log_mel_frames(
    wav: Tensor,
    sample_rate: int,
    hop_length: int,
    *,
    n_mels: int = 40,
    win_length: int | None = None,
    n_frames: int | None = None,
    fmin: float = 0.0,
    fmax: float | None = None,
) -> Tensor:
    """Natural-log mel power frames on a grid of ``hop_length`` samples.

    Frame n is a Hann window centred on sample (n + 1/2) * hop, the centre of the samples that
    code n of an encoder with that hop reads, so frame n and code n describe the same audio. The
    signal is zero-padded where a window runs past either end.

    Args:
        wav: (T,) waveform (any leading dims of size 1; moved to the CPU).
        sample_rate: its rate in Hz.
        hop_length: samples between frames (the model's hop for code-aligned frames).
        n_mels: mel bands.
        win_length: window in samples; None: 25 ms, or the hop if that is longer. The FFT size is
            the next power of two.
        n_frames: N; None: T // hop_length, the number of codes.
        fmin, fmax: band edges in Hz; fmax None is sample_rate / 2.
    Returns:
        (N, n_mels) float32 ``ln(mel power + 1e-10)``.
    """
    if hop_length < 1:
        raise ValueError(f"hop_length must be >= 1, got {hop_length}")
    x = wav.detach().to("cpu", torch.float32).reshape(-1)
    T = x.numel()
    N = T // hop_length if n_frames is None else int(n_frames)
    if N <= 0:
        return torch.zeros(0, n_mels)
    win_length = win_length or max(round(0.025 * sample_rate), hop_length)
    n_fft = fft_size(win_length)
    basis = _mel_basis(sample_rate, n_fft, n_mels, float(fmin), float(fmax or sample_rate / 2))
    mel = mel_power(x, hop_length, N, win_length, torch.hann_window(win_length), basis)  # (n_mels, N)
    return torch.log(mel + LOG_FLOOR).T.contiguous()  # (N, n_mels)


def deltas(x: Tensor, width: int = 2) -> Tensor:
    """Regression deltas along frames (HTK book, eq. 5.16), edges repeated: ``librosa.feature.delta``.

    HTK's regression ``sum_k k (x[n + k] - x[n - k]) / (2 sum_k k^2)`` is the least-squares slope
    over 2 width + 1 frames, which is librosa's Savitzky-Golay first derivative (polyorder 1); its
    ``mode="nearest"`` repeats the edge frames as HTK does (librosa's default "interp" would fit
    the edges instead and refuse utterances shorter than the window).

    Args:
        x: (N, C) frames.
        width: frames on each side (>= 1).
    Returns:
        (N, C) float32 deltas.
    """
    if width < 1:
        raise ValueError(f"width must be >= 1, got {width}")
    if x.size(0) == 0:
        return x.clone()
    import librosa.feature  # numpy and scipy only; imported here so that importing the metrics stays cheap

    d = librosa.feature.delta(x.detach().to("cpu", torch.float64).numpy(), width=2 * width + 1, mode="nearest", axis=0)
    return torch.from_numpy(d).float()


def mfcc_frames(
    wav: Tensor,
    sample_rate: int,
    hop_length: int,
    *,
    n_mfcc: int = 13,
    n_mels: int = 40,
    with_deltas: bool = True,
    include_c0: bool = True,
    n_frames: int | None = None,
    win_length: int | None = None,
    delta_width: int = 2,
) -> Tensor:
    """MFCCs (orthonormal DCT of log mel power) on the code grid, optionally with deltas and delta-deltas.

    The default, 13 coefficients + deltas + delta-deltas = 39 dimensions, is the classic MFCC
    front end (Davis & Mermelstein 1980; deltas as in HTK), the usual MFCC baseline of the
    ZeroSpeech challenges.

    Args:
        wav: (T,) waveform.
        sample_rate, hop_length, n_mels, n_frames, win_length: as in ``log_mel_frames``.
        n_mfcc: cepstral coefficients kept.
        with_deltas: append deltas and delta-deltas (3 * the width).
        include_c0: keep c0 (log energy); False drops it, so the features ignore the gain.
        delta_width: frames on each side of the deltas' regression (``deltas``), for both orders.
    Returns:
        (N, n_mfcc or n_mfcc - 1, times 3 with deltas) float32.
    """
    log_mel = log_mel_frames(
        wav, sample_rate, hop_length, n_mels=n_mels, win_length=win_length, n_frames=n_frames
    )  # (N, n_mels)
    c = cepstrum(log_mel, n_mfcc)  # (N, n_mfcc)
    if not include_c0:
        c = c[:, 1:]
    if not with_deltas:
        return c
    d = deltas(c, delta_width)
    return torch.cat([c, d, deltas(d, delta_width)], dim=1)
