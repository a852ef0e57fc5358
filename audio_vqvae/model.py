"""The VQ-VAE of van den Oord et al. 2017 (section 4.3): conv encoder, vector quantizer, WaveNet decoder."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from .audio import mu_law_decode, mu_law_encode
from .config import ModelConfig
from .encoder import Encoder, jitter
from .quantizer import VectorQuantizer
from .wavenet import WaveNet, shift_right


@dataclass
class VQVAEOutput:
    """What a teacher-forced pass returns; losses are scalars, metrics are detached scalars."""

    loss: Tensor  # reconstruction_loss + quantizer loss (codebook + beta * commitment)
    reconstruction_loss: Tensor  # cross-entropy of the mu-law classes, nats per sample
    codebook_loss: Tensor
    commitment_loss: Tensor
    perplexity: Tensor
    codes_used: Tensor
    dead_codes: Tensor
    codes: Tensor  # (B, N)
    logits: Tensor  # (B, n_classes, T)

    def metrics(self) -> dict[str, Tensor]:
        """Scalars keyed by slash-grouped names, ready for TensorBoard."""
        return {
            "loss/total": self.loss.detach(),
            "loss/reconstruction": self.reconstruction_loss.detach(),
            "vq/codebook": self.codebook_loss.detach(),
            "vq/commitment": self.commitment_loss.detach(),
            "vq/perplexity": self.perplexity,
            "vq/codes_used": self.codes_used,
            "vq/dead_codes": self.dead_codes,
        }


def as_batch(wav: Tensor) -> Tensor:
    """Accept (T,), (B, T) or (B, 1, T) waveforms; return (B, 1, T)."""
    if wav.dim() == 1:
        return wav.view(1, 1, -1)
    if wav.dim() == 2:
        return wav.unsqueeze(1)
    if wav.dim() == 3 and wav.size(1) == 1:
        return wav
    raise ValueError(f"expected a mono waveform of shape (T,), (B, T) or (B, 1, T), got {tuple(wav.shape)}")


class VQVAE(nn.Module):
    """Encoder, quantizer and speaker-conditioned WaveNet decoder.

    Args:
        encoder: waveform (B, 1, T) to latents (B, D, N).
        quantizer: latents to codes and quantized latents.
        decoder: WaveNet conditioned on quantized latents and a speaker.
        sample_rate: model sample rate in Hz.
        mu_law_classes: classes of the decoder's categorical output.
        jitter_probability: time-jitter of the quantized latents in training; None is off.
    """

    def __init__(
        self,
        encoder: Encoder,
        quantizer: VectorQuantizer,
        decoder: WaveNet,
        sample_rate: int = 16000,
        mu_law_classes: int = 256,
        jitter_probability: float | None = None,
    ):
        super().__init__()
        if decoder.hop_length != encoder.hop_length:
            raise ValueError(f"decoder hop {decoder.hop_length} != encoder hop {encoder.hop_length}")
        self.encoder = encoder
        self.quantizer = quantizer
        self.decoder = decoder
        self.sample_rate = sample_rate
        self.mu_law_classes = mu_law_classes
        self.jitter_probability = jitter_probability
        self.config: ModelConfig | None = None  # set by from_config; checkpoints store it

    @classmethod
    def from_config(cls, cfg: ModelConfig) -> VQVAE:
        """Build a model from a ``ModelConfig``; the config is kept on ``model.config``."""
        encoder = Encoder(out_channels=cfg.quantizer.dim, **dataclasses.asdict(cfg.encoder))
        quantizer = VectorQuantizer(**dataclasses.asdict(cfg.quantizer))
        decoder = WaveNet(
            n_classes=cfg.mu_law_classes,
            cond_in_channels=cfg.quantizer.dim,
            hop_length=encoder.hop_length,
            **dataclasses.asdict(cfg.decoder),
        )
        model = cls(encoder, quantizer, decoder, cfg.sample_rate, cfg.mu_law_classes, cfg.jitter_probability)
        model.config = cfg
        return model

    @property
    def hop_length(self) -> int:
        """Samples per code."""
        return self.encoder.hop_length

    def describe(self) -> dict[str, float | int]:
        """Sizes a user wants to see at start: hop, frame rate, receptive fields, parameter counts."""
        ms = 1000.0 / self.sample_rate
        return {
            "sample_rate": self.sample_rate,
            "hop_length": self.hop_length,
            "frame_rate_hz": self.sample_rate / self.hop_length,
            "codebook_size": self.quantizer.codebook_size,
            "encoder_receptive_field_samples": self.encoder.receptive_field,
            "encoder_receptive_field_ms": self.encoder.receptive_field * ms,
            "decoder_receptive_field_samples": self.decoder.receptive_field,
            "decoder_receptive_field_ms": self.decoder.receptive_field * ms,
            "encoder_parameters": sum(p.numel() for p in self.encoder.parameters()),
            "quantizer_parameters": self.quantizer.codebook.numel(),
            "decoder_parameters": sum(p.numel() for p in self.decoder.parameters()),
        }

    def _trim(self, wav: Tensor) -> Tensor:
        """(B, 1, T) to (B, 1, N * hop): samples past the last whole frame cannot be reconstructed."""
        n = wav.size(-1) // self.hop_length
        if n == 0:
            raise ValueError(f"waveform of {wav.size(-1)} samples is shorter than one frame ({self.hop_length})")
        return wav[..., : n * self.hop_length]

    @torch.no_grad()
    def encode(self, wav: Tensor) -> Tensor:
        """Codes of a waveform.

        Args:
            wav: (T,), (B, T) or (B, 1, T) float waveform at ``sample_rate``.
        Returns:
            (B, N) int64 codes, N = T // hop_length.
        """
        wav = as_batch(wav)
        return self.quantizer.quantize(self.encoder(wav))

    @torch.no_grad()
    def decode(
        self,
        codes: Tensor,
        speaker: Tensor | int,
        lengths: Tensor | None = None,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Generate a waveform from codes with a speaker's voice.

        Args:
            codes: (B, N) or (N,) int64 codes, padded past each utterance's length.
            speaker: (B,) int64 speaker ids, or one id for the whole batch.
            lengths: (B,) frames of each utterance; None: all N.
            temperature: sampling temperature; 0 is greedy.
        Returns:
            (B, 1, N * hop) float waveform; zeros past each utterance's length.
        """
        if codes.dim() == 1:
            codes = codes.unsqueeze(0)
        if codes.numel() and (int(codes.min()) < 0 or int(codes.max()) >= self.quantizer.codebook_size):
            raise ValueError(
                f"codes must be in [0, {self.quantizer.codebook_size}), got {int(codes.min())}..{int(codes.max())}"
            )
        speaker = torch.as_tensor(speaker, dtype=torch.long, device=codes.device)
        if speaker.dim() == 0:
            speaker = speaker.expand(codes.size(0))
        latents = self.quantizer.dequantize(codes)  # (B, D, N)
        classes = self.decoder.generate(latents, speaker, lengths, temperature, generator)  # (B, N * hop)
        wav = mu_law_decode(classes, self.mu_law_classes)
        if lengths is not None:
            mask = torch.arange(wav.size(-1), device=wav.device) < lengths.to(wav.device).unsqueeze(1) * self.hop_length
            wav = wav * mask
        return wav.unsqueeze(1)

    def forward(self, wav: Tensor, speaker: Tensor) -> VQVAEOutput:
        """Teacher-forced pass for training.

        Args:
            wav: (B, 1, T) float waveform in [-1, 1]; trimmed to N * hop samples.
            speaker: (B,) int64 speaker ids.
        Returns:
            VQVAEOutput with the loss terms, quantizer metrics, codes (B, N) and logits (B, C, N * hop).
        """
        wav = self._trim(as_batch(wav))
        z = self.encoder(wav)  # (B, D, N)
        q = self.quantizer(z)
        latents = q.quantized
        if self.training and self.jitter_probability:
            latents = jitter(latents, self.jitter_probability)
        targets = mu_law_encode(wav.squeeze(1), self.mu_law_classes)  # (B, T)
        inputs = shift_right(targets, self.mu_law_classes // 2)
        logits = self.decoder(inputs, latents, speaker)  # (B, C, T)
        reconstruction = F.cross_entropy(logits.float(), targets)
        return VQVAEOutput(
            loss=reconstruction + q.loss,
            reconstruction_loss=reconstruction,
            codebook_loss=q.codebook_loss,
            commitment_loss=q.commitment_loss,
            perplexity=q.perplexity,
            codes_used=q.codes_used,
            dead_codes=q.dead_codes,
            codes=q.codes,
            logits=logits,
        )
