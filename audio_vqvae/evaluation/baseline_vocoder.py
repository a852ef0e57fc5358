"""A conversion baseline with nothing to learn in its vocoder: the mel decoder's frames for the target speaker
through a pulse-plus-noise LPC vocoder (``models.lpc.pulse_vocoder``), at the source's f0 moved to the
target speaker's range.

The f0 is moved as voice conversion systems have long moved it (e.g. the Voice Conversion Challenge
baselines): ln f0 is standardised by the source utterance's own mean and standard deviation over its
voiced frames and mapped onto the target speaker's, measured on real speech of that speaker. If this
baseline is more intelligible or more often heard as the target than a neural decoder, the decoder
is not yet earning its cost (issue 24).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

from ..errors import EvaluationError
from ..models.lpc import pulse_vocoder
from ..models.pitch import yin_f0
from ..models.vqvae import VQVAE

DEFAULT_ORDER = 16  # the LPC order of a model whose decoder has none of its own


def lpc_order(model: VQVAE) -> int:
    """The baseline's LPC order: the model's own filters' (``model.decoder.lpc_order``), else ``DEFAULT_ORDER``,
    so that an LPC WaveNet and its baseline draw the same envelope from the same frames."""
    return int(getattr(model.decoder, "lpc_order", 0) or DEFAULT_ORDER)


def definition(model: VQVAE) -> str:
    """What the baseline is, for reports."""
    return (
        f"mel decoder's log-mel for the target -> LPC all-pole filters (order {lpc_order(model)}), excited by a "
        "pulse train at the source's YIN f0 moved to the target's ln-f0 mean and std where voiced, white noise "
        "elsewhere"
    )


def frame_f0(model: VQVAE, wav: Tensor) -> Tensor:
    """(T,) waveform -> (N,) f0 in Hz of each code frame (YIN on frames centred on the code's samples; 0 unvoiced)."""
    return yin_f0(wav.reshape(-1), model.sample_rate, model.hop_length, center=True).float()


@torch.no_grad()
def predicted_log_mel(model: VQVAE, wav: Tensor, speaker: str | int) -> Tensor:
    """(1, n_mels, N) the mel decoder's frames of ``wav``'s codes for ``speaker``, on the model's device."""
    device = next(model.parameters()).device
    latents = model.quantizer.dequantize(model.encode(wav.to(device)))  # (1, D, N)
    return model.mel_decoder(latents, model.speaker_ids(speaker, 1).to(device)).float()


def log_f0_statistics(f0s: Sequence[Tensor]) -> tuple[float, float] | None:
    """Mean and standard deviation of ln f0 over the voiced frames of several tracks; None with fewer than 2."""
    voiced = torch.cat([f[f > 0] for f in f0s]) if f0s else torch.zeros(0)
    if voiced.numel() < 2:
        return None
    log_f0 = voiced.double().log()
    return float(log_f0.mean()), float(log_f0.std())


def move_f0(f0: Tensor, source: tuple[float, float] | None, target: tuple[float, float]) -> Tensor:
    """ln f0 standardised by ``source`` (mean, std) and mapped onto ``target``'s; unvoiced frames stay 0.

    With no ``source`` statistics (too few voiced frames), the voiced frames are set to the target's mean.
    """
    voiced = f0 > 0
    if source is None:
        moved = torch.full_like(f0, float(torch.tensor(target[0]).exp()))
    else:
        z = (f0.clamp_min(1.0).double().log() - source[0]) / max(source[1], 1e-3)
        moved = (target[0] + z * target[1]).exp().to(f0.dtype)
    return torch.where(voiced, moved, torch.zeros_like(f0))


class SourceFilterBaseline:
    """A ``run_conversion`` converter: ``(model, wavs, speakers, **options) -> waveforms`` (options ignored).

    Args:
        real_speech: speaker name -> real (T,) waveforms of that speaker, for its f0 range.
        seed: the noise's.
    Raises:
        EvaluationError: a model without a mel decoder, or a target speaker without voiced real speech.
    """

    def __init__(self, real_speech: Mapping[str, Sequence[Tensor]], seed: int = 0):
        self.real_speech, self.seed = real_speech, seed
        self.statistics: dict[str, tuple[float, float] | None] = {}

    def _target(self, model: VQVAE, speaker: str) -> tuple[float, float]:
        if speaker not in self.statistics:
            tracks = [frame_f0(model, w) for w in self.real_speech.get(speaker, [])]
            self.statistics[speaker] = log_f0_statistics(tracks)
        stats = self.statistics[speaker]
        if stats is None:
            raise EvaluationError(f"no voiced real speech of speaker '{speaker}' to take its f0 range from")
        return stats

    @torch.no_grad()
    def __call__(self, model: VQVAE, wavs: Sequence[Tensor], speakers: Sequence[str], **options) -> list[Tensor]:
        if model.mel_decoder is None:
            raise EvaluationError("the source-filter baseline needs a model with a mel decoder (model.mel_loss_weight)")
        generator = torch.Generator().manual_seed(self.seed)
        out = []
        for wav, speaker in zip(wavs, speakers):
            mel = predicted_log_mel(model, wav, speaker)  # (1, n_mels, N)
            f0 = frame_f0(model, wav)[: mel.size(-1)]
            f0 = move_f0(f0, log_f0_statistics([f0]), self._target(model, speaker))
            out.append(pulse_vocoder(mel, f0.unsqueeze(0), model.log_mel, model.hop_length, model.sample_rate,
                                     generator, lpc_order(model))[0])  # fmt: skip
        return out
