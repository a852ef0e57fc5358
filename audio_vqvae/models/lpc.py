"""Linear prediction from log-mel frames, LPC vocoders of them (noise-excited; pulse-plus-noise), and the
differentiable LPC synthesis filter of an excitation decoder (``ExcitationFilter``).

A log-mel frame fixes a smooth power spectrum, hence an autocorrelation, hence an all-pole filter
``1 / A(z)`` by the Levinson-Durbin recursion. This is how LPCNet (Valin & Skoglund 2019) gets its
filter from its Bark cepstrum. Excited by white noise with the frame's prediction-error power, the
filter gives whispered speech with the frame's spectral envelope and no pitch. That is a vocoder
with nothing to learn: it shows how much of the words and the voice a (predicted) spectrogram
carries, apart from what a WaveNet makes of it (``bench/lpc_vocoder.py``).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F

from .mel import LOG_FLOOR


def levinson(r: Tensor, order: int) -> tuple[Tensor, Tensor]:
    """Levinson-Durbin: the predictor of an autocorrelation sequence.

    Args:
        r: (..., order + 1) autocorrelation r[0..order], r[0] > 0.
        order: p.
    Returns:
        ``a`` (..., p), with ``A(z) = 1 + sum_k a[k-1] z^-k`` the prediction-error filter, and the
        prediction-error power (...,).
    """
    a = r.new_zeros(*r.shape[:-1], order)
    err = r[..., 0].clone()
    for i in range(order):
        k = -(r[..., i + 1] + (a[..., :i] * r[..., 1 : i + 1].flip(-1)).sum(-1)) / err
        a = torch.cat([a[..., :i] + k.unsqueeze(-1) * a[..., :i].flip(-1), k.unsqueeze(-1), a[..., i + 1 :]], -1)
        err = err * (1 - k * k)
    return a, err


def lpc_from_log_mel(
    log_mel: Tensor, basis: Tensor, window: Tensor, order: int = 16, sample_rate: int = 16000, lag_hz: float = 60.0
) -> tuple[Tensor, Tensor]:
    """An all-pole filter and an excitation level per frame of ``mel.LogMel`` output.

    The power spectrum is rebuilt by spreading each band's mean power per bin over its filter
    (a smooth envelope, not an exact inverse), the autocorrelation is its inverse FFT, with a
    Gaussian lag window of ``lag_hz`` (as speech codecs do, so that sharp peaks do not make
    unstable filters), and Levinson-Durbin gives the filter.

    Args:
        log_mel: (..., n_mels, N) ``ln(mel power + 1e-5)`` of frames windowed by ``window``.
        basis: (n_mels, n_fft // 2 + 1) the mel filters that made them.
        window: (win_length,) the analysis window.
        order: p.
    Returns:
        ``a`` (..., N, p) float32 (``A(z)`` per frame, see ``levinson``) and ``gain`` (..., N) float32, the
        standard deviation per sample of the white excitation that gives the frame's power.
    """
    mel = (log_mel.double().exp() - LOG_FLOOR).clamp_min(1e-10)  # (..., M, N)
    b = basis.double()  # (M, F)
    per_bin = mel / b.sum(1, keepdim=True).clamp_min(1e-12)  # mean power per bin of each band
    spread = b / b.sum(0, keepdim=True).clamp_min(1e-12)  # (M, F): each bin's share of each band
    power = torch.einsum("mf,...mn->...nf", spread, per_bin).clamp_min(1e-10)  # (..., N, F)
    n_fft = 2 * (b.size(1) - 1)
    r = torch.fft.irfft(power, n=n_fft)[..., : order + 1]  # (..., N, p + 1)
    lags = torch.arange(order + 1, dtype=torch.float64)
    r = r * torch.exp(-0.5 * (2 * math.pi * lag_hz / sample_rate * lags) ** 2)
    r[..., 0] = r[..., 0] * (1 + 1e-4)  # white-noise correction: a well-conditioned recursion
    a, err = levinson(r, order)
    # r[0] of a windowed frame is the signal's power times sum(window^2): undo that for the excitation
    gain = (err.clamp_min(1e-20) / float(window.double().pow(2).sum())).sqrt()
    return a.float(), gain.float()


class AllPoleFilter:
    """Streaming ``1 / A(z)`` with a filter per frame: ``y_t = x_t - sum_k a_k y_{t-k}``.

    Each row keeps its last p outputs, so filtering in pieces gives what filtering whole gives.
    Runs in float64 on the CPU (scipy's ``lfilter``, frame by frame).

    Args:
        hop_length: samples per frame.
    """

    def __init__(self, hop_length: int):
        self.hop_length = hop_length
        self.past: np.ndarray | None = None  # (B, p) last outputs, newest first

    def __call__(self, x: Tensor, a: Tensor) -> Tensor:
        """(B, n * hop) excitation and (B, n, p) filters -> (B, n * hop) float32 output on the CPU."""
        from scipy.signal import lfilter, lfiltic  # scipy comes with librosa; imported here, only when used

        B, n, p = a.shape
        hop = self.hop_length
        if x.shape != (B, n * hop):
            raise ValueError(f"expected excitation of shape {(B, n * hop)}, got {tuple(x.shape)}")
        if self.past is None:
            self.past = np.zeros((B, p))
        xs, coefficients = x.double().cpu().numpy(), a.double().cpu().numpy()
        out = np.empty_like(xs)
        for b in range(B):
            past = self.past[b]
            for f in range(n):
                den = np.concatenate([[1.0], coefficients[b, f]])
                y, _ = lfilter([1.0], den, xs[b, f * hop : (f + 1) * hop], zi=lfiltic([1.0], den, past))
                out[b, f * hop : (f + 1) * hop] = y
                past = np.concatenate([y[::-1], past])[:p]
            self.past[b] = past
        return torch.from_numpy(out).float()


def prediction_error(x: Tensor, a: Tensor, hop_length: int, history: Tensor | None = None) -> Tensor:
    """``A(z) x`` with a filter per frame: ``e_t = x_t + sum_k a_k x_{t-k}``.

    Args:
        x: (B, n * hop) waveform; a: (B, n, p) filters (``lpc_from_log_mel``).
        history: (B, p) the samples before ``x``, oldest first (a stream's previous piece); None: zeros.
    Returns:
        (B, n * hop) float32 residual, the input of ``AllPoleFilter`` that gives ``x`` back.
    """
    B, n, p = a.shape
    before = x.new_zeros(B, p) if history is None else history.to(x.device)
    past = torch.cat([before.double(), x.double()], -1).unfold(-1, p + 1, 1).flip(-1)  # (B, T, p + 1): x_t, x_{t-1}, ..
    taps = torch.cat([a.new_ones(B, n, 1), a], -1).double().repeat_interleave(hop_length, 1)  # (B, T, p + 1)
    return (past[:, : n * hop_length] * taps).sum(-1).float()


def envelope_transplant(
    wav: Tensor, log_mel: Tensor, front_end, hop_length: int, sample_rate: int = 16000, order: int = 16
) -> Tensor:
    """Replace the spectral envelope of ``wav`` by that of ``log_mel``, keeping its fine structure.

    ``wav`` is whitened by its own LPC filters, each frame's residual is scaled to the excitation
    level of ``log_mel``'s frame, and the filters of ``log_mel`` colour it again.

    Args:
        wav: (B, N * hop) waveform; log_mel: (B, n_mels, N) target frames.
        front_end: the ``mel.LogMel`` that made ``log_mel`` (it analyses ``wav`` on its own device).
    Returns:
        (B, N * hop) float32 waveform on the CPU, clamped to [-1, 1].
    """
    window, basis = front_end.window.cpu(), front_end.basis.cpu()
    own = front_end(wav.to(front_end.basis.device)).cpu()  # (B, n_mels, N)
    a_own, gain_own = lpc_from_log_mel(own, basis, window, order, sample_rate)
    a_new, gain_new = lpc_from_log_mel(log_mel.cpu(), basis, window, order, sample_rate)
    residual = prediction_error(wav.cpu().float(), a_own, hop_length)
    scale = (gain_new / gain_own.clamp_min(1e-8)).repeat_interleave(hop_length, -1)
    return AllPoleFilter(hop_length)(residual * scale, a_new).clamp(-1.0, 1.0)


def noise_vocoder(
    log_mel: Tensor,
    front_end,
    hop_length: int,
    sample_rate: int = 16000,
    generator: torch.Generator | None = None,
    order: int = 16,
) -> Tensor:
    """Whispered speech with the spectral envelope of log-mel frames: white noise through their LPC filters.

    Args:
        log_mel: (B, n_mels, N) as ``front_end`` (a ``mel.LogMel``) makes them.
        hop_length: samples per frame; sample_rate: Hz.
        generator: the noise's (a CPU generator); order: p.
    Returns:
        (B, N * hop) float32 waveform on the CPU, clamped to [-1, 1].
    """
    f0 = torch.zeros(log_mel.size(0), log_mel.size(-1))
    return pulse_vocoder(log_mel, f0, front_end, hop_length, sample_rate, generator, order)


def pulse_vocoder(
    log_mel: Tensor,
    f0: Tensor,
    front_end,
    hop_length: int,
    sample_rate: int = 16000,
    generator: torch.Generator | None = None,
    order: int = 16,
) -> Tensor:
    """The classic source-filter vocoder: a pulse train at f0 where voiced, white noise elsewhere, through
    the LPC filters of log-mel frames (the excitation at each frame's prediction-error level).

    Args:
        log_mel: (B, n_mels, N) as ``front_end`` (a ``mel.LogMel``) makes them.
        f0: (B, N) Hz per frame, 0 where unvoiced (all 0: ``noise_vocoder``).
        hop_length: samples per frame; sample_rate: Hz.
        generator: the noise's (a CPU generator); order: p.
    Returns:
        (B, N * hop) float32 waveform on the CPU, clamped to [-1, 1].
    """
    window, basis = front_end.window.cpu(), front_end.basis.cpu()
    a, gain = lpc_from_log_mel(log_mel.cpu(), basis, window, order, sample_rate)  # (B, N, p), (B, N)
    noise = torch.randn(gain.size(0), gain.size(1) * hop_length, generator=generator, dtype=torch.float64)
    f = f0.detach().cpu().double().repeat_interleave(hop_length, -1)  # (B, T) Hz per sample
    cycles = torch.cumsum(f / sample_rate, -1)  # (B, T): a pulse where the phase passes a whole cycle
    pulse = torch.diff(torch.floor(cycles), dim=-1, prepend=torch.zeros_like(cycles[:, :1])) > 0
    period = sample_rate / f.clamp_min(1.0)  # samples: a unit pulse per period has mean power 1 / period
    source = torch.where(f > 0, pulse.double() * period.sqrt(), noise)
    excitation = source * gain.double().repeat_interleave(hop_length, -1)
    return AllPoleFilter(hop_length)(excitation, a).clamp(-1.0, 1.0)


def response_fft_size(length: int) -> int:
    """The FFT size ``impulse_responses`` computes ``length`` samples with: long enough that the tail does not wrap."""
    return 1 << max(10, (4 * length - 1).bit_length())


def convolution_fft_size(hop_length: int, length: int) -> int:
    """The FFT size ``frame_filter`` convolves a hop with a ``length``-sample response with."""
    return 1 << (hop_length + length - 2).bit_length()


def impulse_responses(a: Tensor, length: int) -> Tensor:
    """The first ``length`` samples of ``1 / A(z)``'s impulse response, per filter.

    Args:
        a: (..., p) filters (``levinson``); stable, as Levinson-Durbin makes them.
    Returns:
        (..., length) float32, from an FFT long enough that the response's tail does not wrap.
    """
    n_fft = response_fft_size(length)
    A = torch.fft.rfft(torch.cat([torch.ones_like(a[..., :1]), a], -1).double(), n=n_fft)
    return torch.fft.irfft(1.0 / A, n=n_fft)[..., :length].float()


def frame_filter(x: Tensor, h: Tensor, hop_length: int) -> Tensor:
    """Each hop of ``x`` through its own FIR filter, overlap-added (differentiable; FFT convolution).

    Args:
        x: (B, N * hop) signal; h: (B, N, L) one impulse response per hop.
    Returns:
        (B, N * hop + L - 1) the whole output, tails included.
    """
    B, N, L = h.shape
    if x.shape != (B, N * hop_length):
        raise ValueError(f"expected a signal of shape {(B, N * hop_length)}, got {tuple(x.shape)}")
    K = hop_length + L - 1  # samples of one hop's output
    n_fft = convolution_fft_size(hop_length, L)
    frames = torch.fft.rfft(x.float().reshape(B, N, hop_length), n=n_fft) * torch.fft.rfft(h.float(), n=n_fft)
    y = torch.fft.irfft(frames, n=n_fft)[..., :K]  # (B, N, K)
    out = F.fold(y.transpose(1, 2), (1, (N - 1) * hop_length + K), (1, K), stride=(1, hop_length))
    return out.reshape(B, -1)


class ExcitationFilter:
    """LPC synthesis: an excitation of unit level through each frame's all-pole filter from log-mel frames.

    Frame n's excitation samples are scaled by its ``gain`` and go through the first ``ir_length``
    samples of its ``1 / A(z)``'s impulse response (``lpc_from_log_mel``), and the outputs are
    overlap-added: a time-varying filter that, unlike a recursion, is differentiable and batched, so
    training (ExcitNet's, with the filter taken from a spectrogram as LPCNet takes it from its
    cepstrum) and generation run the same operator. A stream filtered in pieces gives what it gives
    whole: each piece's overhang is carried into the next.

    Args:
        front_end: the ``mel.LogMel`` that defines the frames; hop_length, sample_rate: its.
        order: p of the filters; ir_length: samples kept of each response (512: 32 ms, where
            the lag-windowed filters' responses have decayed by about 50 dB).
    """

    def __init__(self, front_end, hop_length: int, sample_rate: int = 16000, order: int = 16, ir_length: int = 512):
        self.front_end, self.hop_length, self.sample_rate = front_end, hop_length, sample_rate
        self.order, self.ir_length = order, ir_length
        self.overhang: Tensor | None = None  # (B, ir_length - 1) of the pieces so far

    def bytes_per_frame(self) -> int:
        """Peak bytes a frame holds while filtered: its response's FFTs (float64) and its convolution's (float32)."""
        n_response, n_conv = response_fft_size(self.ir_length), convolution_fft_size(self.hop_length, self.ir_length)
        return 4 * 8 * n_response + 4 * 4 * n_conv

    def responses(self, log_mel: Tensor) -> Tensor:
        """(B, n_mels, n) frames -> (B, n, ir_length) gain-scaled impulse responses, on the frames' device."""
        window, basis = self.front_end.window, self.front_end.basis
        with torch.no_grad(), torch.autocast(device_type=log_mel.device.type, enabled=False):
            a, gain = lpc_from_log_mel(
                log_mel.detach().float(),
                basis.to(log_mel.device),
                window.to(log_mel.device),
                self.order,
                self.sample_rate,
            )
            return impulse_responses(a, self.ir_length) * gain.unsqueeze(-1)

    def __call__(self, excitation: Tensor, log_mel: Tensor) -> Tensor:
        """(B, n * hop) excitation and (B, n_mels, n) frames -> (B, n * hop) float32 waveform (differentiable in the
        excitation; not clamped)."""
        with torch.autocast(device_type=excitation.device.type, enabled=False):
            full = frame_filter(excitation.float(), self.responses(log_mel), self.hop_length)  # (B, n * hop + L - 1)
        n = excitation.size(-1)
        if self.overhang is not None:
            full = torch.cat(
                [full[:, : self.ir_length - 1] + self.overhang.to(full.device), full[:, self.ir_length - 1 :]], -1
            )
        self.overhang = full[:, n:].detach()
        return full[:, :n]
