"""Spectral distances between two recordings: mel-cepstral distortion (with DTW) and log-mel distance.

**Mel-cepstrum** (the standard one of VC and TTS papers, so MCDs compare with published
figures). Hamming-windowed frames of 25 ms every 5 ms, the periodogram with a floor of 1e-6 on the
16-bit sample scale (SPTK's ``eps``), the real cepstrum of its log, then SPTK's ``freqt``
all-pass frequency warping (Oppenheim & Johnson 1972; Tokuda et al. 1994) to ``order`` 24 with
alpha 0.42 at 16 kHz (SPTK's recommended alpha per sample rate, ``mcep_alpha``). That is exactly
SPTK's ``mcep`` (and pysptk's ``sp2mc`` on the periodogram) before its Newton-Raphson iterations
on the UELS criterion, the "warped cepstrum" approximation; it uses SPTK's convention
``ln |H(w)| = sum_m c_m cos(m w~)`` on the warped frequency w~, for which Kubichek's constant
gives decibels. ESPnet's ``evaluate_mcd.py`` (``pysptk.mcep`` on Hamming frames, alpha 0.42 at
16 kHz) and WORLD + ``sp2mc`` pipelines differ only in the envelope estimate, by a few tenths
of a dB; the old filterbank mel-cepstrum this replaces halved the coefficients (its cosine series
counted each term twice) and gave about half the published figures.

**MCD** (Kubichek 1993, "Mel-cepstral distance measure for objective speech quality
assessment"): per frame pair ``10 / ln 10 * sqrt(2 * sum_{d=1}^{D} (c_d - c'_d)^2)`` dB, c_0
(energy) excluded, so a gain change costs nothing; averaged over the frame pairs of the DTW path
of minimal total distance (``dtw.dtw``, exact, path-length normalised; ESPnet uses fastdtw on the
cepstra) for utterances of different speakers or lengths, or over frames in order (a
resynthesis of the same waveform, already time-aligned). ``MCD_DEFINITION`` names it in reports.

**Log-mel distance**: mean absolute difference of the 80-band log mel power spectra in dB,
``10 * mean |log10 P_x - log10 P_y|`` (floored at -100 dB); the L1 log-mel distance that neural
codecs report (e.g. DAC), in dB.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch
from torch import Tensor

from ...data.spectrum import log_mel_frames
from .dtw import dtw_mean

MCD_SCALE = 10.0 / math.log(10.0) * math.sqrt(2.0)  # dB per unit of cepstral Euclidean distance
DB_PER_NEPER_POWER = 10.0 / math.log(10.0)  # 10 log10(P) = this * ln(P)
MCD_ORDER = 24
# SPTK's recommended all-pass constants (its mgcep documentation; ESPnet's evaluate_mcd.py).
MCEP_ALPHAS = {8000: 0.31, 16000: 0.42, 22050: 0.45, 24000: 0.46, 32000: 0.50, 44100: 0.53, 48000: 0.55}
PERIODOGRAM_FLOOR = 1e-6  # SPTK mcep's eps, on the 16-bit sample scale
MCD_DEFINITION = (
    "MCD (Kubichek 1993) in dB on SPTK-style mel-cepstra: 25 ms Hamming frames every 5 ms, "
    "warped cepstrum of the log periodogram, order 24, alpha 0.42 at 16 kHz, c0 excluded, DTW-aligned"
)


def _frames(sample_rate: int, hop_ms: float, win_ms: float) -> tuple[int, int]:
    return max(1, round(sample_rate * hop_ms / 1000)), max(1, round(sample_rate * win_ms / 1000))


def mcep_alpha(sample_rate: int) -> float:
    """All-pass constant whose warping best follows the mel scale at ``sample_rate``.

    SPTK's table where it has the rate; otherwise the alpha in [0, 1) whose phase response is
    closest (least squares) to the normalised mel scale, as ``pysptk.util.mcepalpha`` fits it
    (0.41 at 16 kHz, where SPTK's table says 0.42).
    """
    if sample_rate in MCEP_ALPHAS:
        return MCEP_ALPHAS[sample_rate]
    w = np.arange(1000) / 1000 * np.pi  # pysptk's grid: 1000 points in [0, pi)
    mel = np.log1p(w / np.pi * sample_rate / 2 / 1000.0)  # the mel scale with its 1 kHz knee
    mel /= mel[-1]
    alphas = np.arange(0, 1, 0.001)[:, None]
    warped = w + 2 * np.arctan(alphas * np.sin(w) / (1 - alphas * np.cos(w)))  # all-pass phase
    warped /= warped[:, -1:]
    return float(np.round(alphas[np.argmin(((warped - mel) ** 2).sum(1)), 0], 3))


@functools.lru_cache(maxsize=8)
def _freqt_matrix(n_in: int, order: int, alpha: float) -> np.ndarray:
    """(order + 1, n_in) matrix of SPTK's ``freqt``: cepstrum c_0..c_{n_in-1} to warped c~_0..c~_order.

    ``freqt`` is linear, so it is run once on the identity (each column one input coefficient)
    with SPTK's recursion from the last input coefficient to the first.
    """
    beta = 1.0 - alpha * alpha
    g = np.zeros((order + 1, n_in))
    basis = np.eye(n_in)
    for i in range(n_in - 1, -1, -1):
        d = g.copy()
        g[0] = basis[i] + alpha * d[0]
        if order >= 1:
            g[1] = beta * d[0] + alpha * d[1]
        for j in range(2, order + 1):
            g[j] = d[j - 1] + alpha * (d[j] - g[j - 1])
    return g


def log_mel_spectrum(
    wav: Tensor, sample_rate: int, *, n_mels: int = 80, hop_ms: float = 5.0, win_ms: float = 25.0
) -> Tensor:
    """(N, n_mels) natural-log mel power of 25 ms frames every 5 ms, N = T // hop."""
    hop, win = _frames(sample_rate, hop_ms, win_ms)
    return log_mel_frames(wav, sample_rate, hop, n_mels=n_mels, win_length=win)


def mel_cepstrum(
    wav: Tensor | np.ndarray,
    sample_rate: int,
    *,
    order: int = MCD_ORDER,
    alpha: float | None = None,
    hop_ms: float = 5.0,
    win_ms: float = 25.0,
) -> np.ndarray:
    """SPTK-style mel-cepstrum c~_0..c~_order of each frame (see the module docstring).

    Args:
        wav: (T,) waveform in [-1, 1].
        sample_rate: Hz.
        order: D, highest coefficient.
        alpha: all-pass constant; None: ``mcep_alpha(sample_rate)``.
        hop_ms, win_ms: frame shift and Hamming window length; frame n covers samples
            [n hop - (win - hop) // 2, ...) (zero outside the signal), so it is centred on the
            code grid's frame n when hop divides the model's hop.
    Returns:
        (N, order + 1) float64, N = T // hop.
    """
    hop, win = _frames(sample_rate, hop_ms, win_ms)
    n_fft = max(1024, 1 << (win - 1).bit_length())
    if not 1 <= order < n_fft // 2:
        raise ValueError(f"order must be in 1..{n_fft // 2 - 1}, got {order}")
    alpha = mcep_alpha(sample_rate) if alpha is None else float(alpha)
    if not -1.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (-1, 1), got {alpha}")
    x = torch.as_tensor(wav).detach().to("cpu", torch.float64).reshape(-1).numpy() * 32768.0  # 16-bit scale
    n = x.size // hop
    if n == 0:
        return np.zeros((0, order + 1))
    pad = (win - hop) // 2
    x = np.pad(x, (pad, win))
    frames = np.lib.stride_tricks.sliding_window_view(x, win)[: n * hop : hop] * np.hamming(win)  # (N, win)
    power = np.abs(np.fft.rfft(frames, n_fft)) ** 2 + PERIODOGRAM_FLOOR  # (N, n_fft / 2 + 1)
    cepstrum = np.fft.irfft(np.log(power), n_fft)[:, : n_fft // 2 + 1]  # (N, n_fft / 2 + 1)
    cepstrum[:, 0] /= 2.0  # log power to log amplitude for c0; SPTK's convention for the rest
    cepstrum[:, -1] /= 2.0
    return cepstrum @ _freqt_matrix(n_fft // 2 + 1, order, alpha).T  # (N, order + 1)


_TOO_SHORT = "both recordings must be at least one analysis frame (5 ms) long"


def _cdist(a: Tensor, b: Tensor, p: float = 2.0) -> Tensor:
    """(N, M) exact p-norm distances in float64 (the matmul shortcut leaves ~1e-8 on equal rows)."""
    return torch.cdist(a.double(), b.double(), p=p, compute_mode="donot_use_mm_for_euclid_dist")


def _path_mean(dist: Tensor) -> float:
    """Mean of a (N, M) frame distance matrix along its DTW path."""
    if dist.numel() == 0:
        raise ValueError(_TOO_SHORT)
    return float(dtw_mean(dist.double().numpy()[None])[0])


def mcd_frames(c_ref: np.ndarray, c_other: np.ndarray, *, use_dtw: bool = True) -> float:
    """Mean per-frame MCD in dB between two mel-cepstrum sequences, c_0 excluded.

    Args:
        c_ref, c_other: (N, D + 1) and (M, D + 1) mel-cepstra (``mel_cepstrum``).
        use_dtw: average along the DTW path of the per-frame MCD; False: frame n with frame n
            over the first min(N, M) frames.
    Returns:
        MCD in dB.
    """
    a = torch.from_numpy(np.ascontiguousarray(c_ref[:, 1:], dtype=np.float64))  # (N, D)
    b = torch.from_numpy(np.ascontiguousarray(c_other[:, 1:], dtype=np.float64))  # (M, D)
    if use_dtw:
        return _path_mean(MCD_SCALE * _cdist(a, b))  # (N, M) per-frame MCD
    n = min(a.size(0), b.size(0))
    if n == 0:
        raise ValueError(_TOO_SHORT)
    return float(MCD_SCALE * (a[:n] - b[:n]).norm(dim=1).mean())


def mel_cepstral_distortion(
    reference: Tensor,
    other: Tensor,
    sample_rate: int,
    *,
    use_dtw: bool = True,
    order: int = MCD_ORDER,
    alpha: float | None = None,
) -> float:
    """MCD in dB between two recordings (``MCD_DEFINITION``), c_0 excluded, after DTW by default.

    Args:
        reference, other: (T,) and (T',) waveforms at ``sample_rate``.
        use_dtw: align frames by DTW on the per-frame MCD (for different takes of a sentence);
            False compares frame n with frame n over the shorter length (for a resynthesis).
        order: cepstral order D.
        alpha: all-pass constant; None: ``mcep_alpha(sample_rate)``.
    Returns:
        Mean per-frame MCD in dB; 0 for a recording with itself.
    """
    c_ref = mel_cepstrum(reference, sample_rate, order=order, alpha=alpha)  # (N, D + 1)
    c_oth = mel_cepstrum(other, sample_rate, order=order, alpha=alpha)  # (M, D + 1)
    return mcd_frames(c_ref, c_oth, use_dtw=use_dtw)


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
