"""The mel decoder's spectral envelope on the WaveNet's output, streamed: a post-filter for decoding.

The mel decoder predicts the target speaker's log-mel frames from the codes, and it carries the
words better than a WaveNet trained for an hour samples them (``bench/lpc_vocoder.py``).
``EnvelopeFilter`` keeps the WaveNet's fine structure (its pitch and voicing) and gives it that
envelope: each frame of the generated waveform is whitened by its own LPC filter, scaled to the
predicted frame's excitation level and coloured by the predicted frame's all-pole filter
(``models.lpc``). With ``strength`` below 1 the new envelope is the log-domain blend
``own + strength * (predicted - own)``.

It runs on a stream: pieces of any size go in, and each frame comes out once the analysis window
of that frame has arrived (``n_fft / 2`` samples of look-ahead), so the output lags the input by
under one window and is the same whatever the pieces. ``flush`` ends the stream, as the whole
waveform's analysis does, with zeros past the end.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..data.spectrum import frame_offset, framed_mel_power
from ..errors import UsageError
from ..models.lpc import AllPoleFilter, lpc_from_log_mel, prediction_error
from ..models.mel import LOG_FLOOR, LogMel
from ..models.vqvae import VQVAE

LPC_ORDER = 16  # poles: two per formant up to 8 kHz (the rule of thumb, sample rate in kHz)


class EnvelopeFilter:
    """One utterance's envelope post-filter, fed its waveform in pieces.

    Args:
        log_mel: (n_mels, N) the envelope to impose, as ``front_end`` makes log-mel frames.
        front_end: the model's ``mel.LogMel`` (its hop, window and mel filters).
        sample_rate: Hz.
        strength: 1 imposes ``log_mel``; 0 keeps the waveform's own envelope; between, a blend.
        order: LPC order p.
    """

    def __init__(
        self, log_mel: Tensor, front_end: LogMel, sample_rate: int, strength: float = 1.0, order: int = LPC_ORDER
    ):
        if log_mel.dim() != 2:
            raise ValueError(f"log_mel must have shape (n_mels, N), got {tuple(log_mel.shape)}")
        if not 0.0 <= strength <= 1.0:
            raise ValueError(f"strength must be in [0, 1], got {strength}")
        self.target = log_mel.detach().float().cpu()  # (n_mels, N)
        self.hop = front_end.hop_length
        self.win_length, self.n_fft = front_end.win_length, front_end.n_fft
        self.window, self.basis = front_end.window.cpu(), front_end.basis.cpu()
        self.sample_rate, self.strength, self.order = sample_rate, strength, order
        self.offset = frame_offset(self.hop, self.win_length)
        keep = max(self.offset, order)  # samples before a frame that its analysis or its prediction reads
        self.buffer = torch.zeros(keep)  # samples [self.start, self.received)
        self.start = -keep
        self.received = 0
        self.done = 0  # frames out
        self.synthesis = AllPoleFilter(self.hop)

    @property
    def n_frames(self) -> int:
        return self.target.size(1)

    def __call__(self, piece: Tensor) -> Tensor:
        """(n,) the next samples in -> (m,) float32 the next samples out, m a multiple of the hop (maybe 0)."""
        piece = piece.detach().reshape(-1).float().cpu()
        if self.received + piece.numel() > self.n_frames * self.hop:
            raise ValueError(
                f"EnvelopeFilter: {self.received + piece.numel()} samples for {self.n_frames} frames of {self.hop}"
            )
        self.buffer = torch.cat([self.buffer, piece])
        self.received += piece.numel()
        # frame f is ready once samples up to f * hop - offset + n_fft have arrived
        ready = min(self.n_frames, max(0, (self.received + self.offset - self.n_fft) // self.hop + 1))
        return self._frames(ready)

    def flush(self) -> Tensor:
        """The rest of the frames, analysed with zeros past the samples received: (m,) float32."""
        return self._frames(self.n_frames)

    def _frames(self, end: int) -> Tensor:
        first = self.done
        if end <= first:
            return torch.zeros(0)
        hop, p = self.hop, self.order
        # analysis: frames [first, end) read samples [first * hop - offset, (end - 1) * hop - offset + n_fft)
        a0, a1 = first * hop - self.offset, (end - 1) * hop - self.offset + self.n_fft
        own = torch.log(
            framed_mel_power(self._samples(a0, a1), hop, self.win_length, self.window, self.basis) + LOG_FLOOR
        )
        target = self.target[:, first:end]
        new = own + self.strength * (target - own) if self.strength < 1.0 else target
        a_own, gain_own = lpc_from_log_mel(own, self.basis, self.window, p, self.sample_rate)  # (n, p), (n,)
        a_new, gain_new = lpc_from_log_mel(new, self.basis, self.window, p, self.sample_rate)
        x = self._samples(first * hop, end * hop).unsqueeze(0)  # (1, n * hop)
        history = self._samples(first * hop - p, first * hop).unsqueeze(0)  # (1, p)
        residual = prediction_error(x, a_own.unsqueeze(0), hop, history)
        scale = (gain_new / gain_own.clamp_min(1e-8)).repeat_interleave(hop).unsqueeze(0)
        out = self.synthesis(residual * scale, a_new.unsqueeze(0))[0].clamp(-1.0, 1.0)
        self.done = end
        keep_from = end * hop - max(self.offset, p)
        self.buffer, self.start = self._samples(keep_from, max(keep_from, self.start + self.buffer.numel())), keep_from
        return out

    def _samples(self, a: int, b: int) -> Tensor:
        """Samples [a, b) of the stream: zeros before 0 and past what was received."""
        have = self.buffer[max(0, a - self.start) : max(0, b - self.start)]
        if a < self.start:
            raise AssertionError(f"sample {a} was dropped (buffer starts at {self.start})")
        return torch.cat([have, have.new_zeros(b - a - have.numel())]) if have.numel() < b - a else have


@torch.no_grad()
def envelope_filters(
    model: VQVAE, codes: Tensor, speaker: Tensor, lengths: Tensor, strength: float
) -> list[EnvelopeFilter]:
    """An ``EnvelopeFilter`` per row, imposing the mel decoder's frames of the row's codes for its speaker.

    Args:
        codes: (B, N) padded codes; speaker: (B,) ids; lengths: (B,) frames of each row.
    Raises:
        UsageError: the model has no mel decoder.
    """
    check_envelope(model, strength)
    filters = []
    for b, n in enumerate(lengths.tolist()):
        latents = model.quantizer.dequantize(codes[b : b + 1, :n])  # (1, D, n)
        log_mel = model.mel_decoder(latents, speaker[b : b + 1].to(codes.device))[0].float()  # (n_mels, n)
        filters.append(EnvelopeFilter(log_mel, model.log_mel, model.sample_rate, strength))
    return filters


def check_envelope(model: VQVAE, strength: float) -> None:
    """A post-filter ``strength`` the model can apply; raises UsageError (out of [0, 1], or no mel decoder)."""
    if not 0.0 <= strength <= 1.0:
        raise UsageError(f"the envelope strength must be in [0, 1], got {strength}")
    if strength and model.mel_decoder is None:
        raise UsageError(
            "the envelope post-filter needs a model trained with a mel decoder (model.mel_loss_weight > 0)"
        )
