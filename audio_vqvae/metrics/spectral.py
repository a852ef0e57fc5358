"""Spectral distances between two recordings: mel-cepstral distortion (with DTW) and log-mel distance.

**Mel-cepstrum.** Frames of 25 ms every 5 ms (Hann window), 80 Slaney mel bands over 0..sr/2. The
mel-cepstrum c_0..c_D (D = ``order``, 24 by default) is the real cepstrum of the log mel
*amplitude* spectrum, in the convention ``ln|X_m| = c_0 + 2 sum_d c_d cos(pi d (m + 1/2) / M)``
over the M bands, so ``c_d = (1/M) sum_m ln|X_m| cos(pi d (m + 1/2) / M)``. That is the scale
for which Kubichek's constant turns a cepstral distance into decibels. It is a filterbank
mel-cepstrum, not SPTK's all-pass warped ``mcep`` (alpha 0.42) on a WORLD envelope that most
TTS papers use, so its MCD values are comparable between runs of this code, and of the same
order as, but not equal to, published MCDs.

**MCD** (Kubichek 1993, "Mel-cepstral distance measure for objective speech quality
assessment"): per frame pair ``10 / ln 10 * sqrt(2 * sum_{d=1}^{D} (c_d - c'_d)^2)`` dB, c_0
(energy) excluded, so a gain change costs nothing; averaged over the frame pairs of the DTW path
of minimal total distance (utterances of different speakers or lengths), or over frames in
order (a resynthesis of the same waveform, already time-aligned).

**Log-mel distance**: mean absolute difference of the 80-band log mel power spectra in dB,
``10 * mean |log10 P_x - log10 P_y|`` (floored at -100 dB); the L1 log-mel distance that neural
codecs report (e.g. DAC), in dB.
"""

from __future__ import annotations

import functools
import math

import torch
from torch import Tensor

from .dtw import dtw_mean
from .features import log_mel_frames

MCD_SCALE = 10.0 / math.log(10.0) * math.sqrt(2.0)  # dB per unit of cepstral Euclidean distance
DB_PER_NEPER_POWER = 10.0 / math.log(10.0)  # 10 log10(P) = this * ln(P)


def _frames(sample_rate: int, hop_ms: float, win_ms: float) -> tuple[int, int]:
    return max(1, round(sample_rate * hop_ms / 1000)), max(1, round(sample_rate * win_ms / 1000))


@functools.lru_cache(maxsize=8)
def _cepstrum_matrix(n_mels: int, order: int) -> Tensor:
    d = torch.arange(order + 1, dtype=torch.float64)[:, None]
    m = torch.arange(n_mels, dtype=torch.float64)[None, :]
    return (torch.cos(math.pi * d * (m + 0.5) / n_mels) / n_mels).float()  # (order + 1, n_mels)


def log_mel_spectrum(
    wav: Tensor, sample_rate: int, *, n_mels: int = 80, hop_ms: float = 5.0, win_ms: float = 25.0
) -> Tensor:
    """(N, n_mels) natural-log mel power of 25 ms frames every 5 ms, N = T // hop."""
    hop, win = _frames(sample_rate, hop_ms, win_ms)
    return log_mel_frames(wav, sample_rate, hop, n_mels=n_mels, win_length=win)


def mel_cepstrum(
    wav: Tensor, sample_rate: int, *, order: int = 24, n_mels: int = 80, hop_ms: float = 5.0, win_ms: float = 25.0
) -> Tensor:
    """Mel-cepstrum c_0..c_order of each frame (see the module docstring for the convention).

    Args:
        wav: (T,) waveform.
        sample_rate: Hz.
        order: D, highest coefficient.
        n_mels: mel bands M (> order).
        hop_ms, win_ms: frame shift and window length.
    Returns:
        (N, order + 1) float32, N = T // hop.
    """
    if not 1 <= order < n_mels:
        raise ValueError(f"order must be in 1..n_mels - 1 = {n_mels - 1}, got {order}")
    log_amplitude = 0.5 * log_mel_spectrum(wav, sample_rate, n_mels=n_mels, hop_ms=hop_ms, win_ms=win_ms)
    return log_amplitude @ _cepstrum_matrix(n_mels, order).T


_TOO_SHORT = "both recordings must be at least one analysis frame (5 ms) long"


def _cdist(a: Tensor, b: Tensor, p: float = 2.0) -> Tensor:
    """(N, M) exact p-norm distances in float64 (the matmul shortcut leaves ~1e-8 on equal rows)."""
    return torch.cdist(a.double(), b.double(), p=p, compute_mode="donot_use_mm_for_euclid_dist")


def _path_mean(dist: Tensor) -> float:
    """Mean of a (N, M) frame distance matrix along its DTW path."""
    if dist.numel() == 0:
        raise ValueError(_TOO_SHORT)
    return float(dtw_mean(dist.double().numpy()[None])[0])


def mel_cepstral_distortion(
    reference: Tensor, other: Tensor, sample_rate: int, *, use_dtw: bool = True, order: int = 24, n_mels: int = 80
) -> float:
    """MCD in dB between two recordings (Kubichek 1993), c_0 excluded, after DTW by default.

    Args:
        reference, other: (T,) and (T',) waveforms at ``sample_rate``.
        use_dtw: align frames by DTW on the per-frame MCD (for different takes of a sentence);
            False compares frame n with frame n over the shorter length (for a resynthesis).
        order: cepstral order D.
        n_mels: mel bands.
    Returns:
        Mean per-frame MCD in dB; 0 for a recording with itself.
    """
    c_ref = mel_cepstrum(reference, sample_rate, order=order, n_mels=n_mels)[:, 1:]  # (N, D), no c0
    c_oth = mel_cepstrum(other, sample_rate, order=order, n_mels=n_mels)[:, 1:]  # (M, D)
    if use_dtw:
        return _path_mean(MCD_SCALE * _cdist(c_ref, c_oth))  # (N, M) per-frame MCD
    n = min(c_ref.size(0), c_oth.size(0))
    if n == 0:
        raise ValueError(_TOO_SHORT)
    return float(MCD_SCALE * (c_ref[:n] - c_oth[:n]).norm(dim=1).mean())


def log_mel_distance(
    reference: Tensor, other: Tensor, sample_rate: int, *, use_dtw: bool = False, n_mels: int = 80
) -> float:
    """Mean absolute log-mel difference in dB, frame by frame (or after DTW).

    Args:
        reference, other: (T,) and (T',) waveforms.
        use_dtw: align frames by DTW on the per-frame distance; False: frame n with frame n.
        n_mels: mel bands.
    Returns:
        ``10 * mean |log10 P_ref - log10 P_other|`` over bands and (aligned) frames, dB.
    """
    a = log_mel_spectrum(reference, sample_rate, n_mels=n_mels)  # (N, n_mels)
    b = log_mel_spectrum(other, sample_rate, n_mels=n_mels)  # (M, n_mels)
    if use_dtw:
        return _path_mean(DB_PER_NEPER_POWER * _cdist(a, b, p=1.0) / n_mels)  # (N, M)
    n = min(a.size(0), b.size(0))
    if n == 0:
        raise ValueError(_TOO_SHORT)
    return float(DB_PER_NEPER_POWER * (a[:n] - b[:n]).abs().mean())


def reconstruction_metrics(original: Tensor, resynthesis: Tensor, sample_rate: int) -> dict[str, float]:
    """MCD and log-mel distance between an utterance and its resynthesis, frame by frame (no DTW).

    A resynthesis ``decode(encode(x))`` is sample-aligned with ``x`` (it covers the first
    N * hop samples), so frames are compared in order; DTW would hide timing errors.

    Returns:
        ``mcd`` (dB) and ``log_mel_distance_db``.
    """
    return {
        "mcd": mel_cepstral_distortion(original, resynthesis, sample_rate, use_dtw=False),
        "log_mel_distance_db": log_mel_distance(original, resynthesis, sample_rate, use_dtw=False),
    }
