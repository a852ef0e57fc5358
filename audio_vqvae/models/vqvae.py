"""The VQ-VAE of van den Oord et al. 2017 (section 4.3): conv encoder, vector quantizer, WaveNet decoder."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ..config import ModelConfig, config_section
from ..data.audio import mu_law_decode, mu_law_encode
from ..errors import ConfigError, SpeakerError
from ..generation import generate
from .adversary import SpeakerAdversary
from .emphasis import DeEmphasis, check_coefficient, pre_emphasis
from .encoder import Encoder, build_encoder, jitter
from .lpc import ExcitationFilter
from .mel import LogMel, MelDecoder
from .mel_encoder import MelEncoder
from .nsf import SourceFilterWaveNet, f0_features, f0_from_prediction, f0_loss
from .pitch import yin_f0
from .quantizer import VectorQuantizer
from .stft_loss import multi_resolution_stft_loss
from .wavenet import WaveNet, shift_right


@dataclass
class VQVAEOutput:
    """What a teacher-forced pass returns; losses are scalars, metrics are detached scalars."""

    # reconstruction_loss + mel_loss_weight * mel_loss + f0_loss_weight * f0_loss + adversary_weight * adversary_loss
    # + quantizer loss (codebook + beta * commitment)
    loss: Tensor
    # cross-entropy of the mu-law classes, nats per sample; a source-filter decoder's multi-resolution STFT loss
    reconstruction_loss: Tensor
    mel_loss: Tensor  # L1 log-mel error of the auxiliary mel decoder (unweighted); 0 without one
    f0_loss: Tensor | None  # the f0 decoder's loss (unweighted); None without one
    adversary_loss: Tensor | None  # speaker adversary's cross-entropy (unweighted); None without one
    adversary_accuracy: Tensor | None  # share of frames whose speaker it names; None without one
    codebook_loss: Tensor
    commitment_loss: Tensor
    perplexity: Tensor
    codes_used: Tensor
    dead_codes: Tensor
    codes: Tensor  # (B, N)
    logits: Tensor  # (B, n_classes, T); a source-filter decoder's waveform, (B, 1, T)

    def metrics(self) -> dict[str, Tensor]:
        """Scalars keyed by slash-grouped names, ready for TensorBoard."""
        metrics = {
            "loss/total": self.loss.detach(),
            "loss/reconstruction": self.reconstruction_loss.detach(),
            "loss/mel": self.mel_loss.detach(),
            "vq/codebook": self.codebook_loss.detach(),
            "vq/commitment": self.commitment_loss.detach(),
            "vq/perplexity": self.perplexity,
            "vq/codes_used": self.codes_used,
            "vq/dead_codes": self.dead_codes,
        }
        if self.f0_loss is not None:
            metrics["loss/f0"] = self.f0_loss.detach()
        if self.adversary_loss is not None:
            metrics["adversary/loss"] = self.adversary_loss.detach()
            metrics["adversary/accuracy"] = self.adversary_accuracy
        return metrics


SpeakerLike = int | str | Tensor | Sequence[int | str]


@dataclass
class EncoderCrop:
    """A batch of training crops with the audio around them that the encoder reads (``encoder.training_context``).

    wav: (B, 1, T') each crop with up to ``training_context`` samples of its utterance before and after
        it, left-aligned and zero-padded; lengths: (B,) valid samples of each row; first_frame: (B,)
        int64 frame of wav where the crop starts.
    """

    wav: Tensor
    lengths: Tensor
    first_frame: Tensor

    @classmethod
    def from_batch(cls, batch: dict[str, Tensor], device: torch.device) -> EncoderCrop | None:
        """The crop of a ``training.dataset`` batch, on ``device``; None when the batch has no context."""
        if "encoder_wav" not in batch:
            return None
        return cls(
            *(batch[k].to(device, non_blocking=True) for k in ("encoder_wav", "encoder_length", "encoder_first_frame"))
        )


def _known(names: list[str], limit: int = 12) -> str:
    shown = ", ".join(names[:limit])
    return f"{shown}, ... ({len(names) - limit} more)" if len(names) > limit else shown


def as_batch(wav: Tensor) -> Tensor:
    """Accept (T,), (B, T) or (B, 1, T) waveforms; return (B, 1, T)."""
    if wav.dim() == 1:
        return wav.view(1, 1, -1)
    if wav.dim() == 2:
        return wav.unsqueeze(1)
    if wav.dim() == 3 and wav.size(1) == 1:
        return wav
    raise ValueError(f"expected a mono waveform of shape (T,), (B, T) or (B, 1, T), got {tuple(wav.shape)}")


def cond_in_channels(latent_dim: int, n_mels: int, source_filter: bool, latent_conditioning: bool = True) -> int:
    """Channels of the WaveNet's conditioning features (``VQVAE.conditioning_features``): the latents' D
    if it hears them, the mel decoder's n_mels (0 without mel conditioning), and a source-filter
    decoder's 2 f0 features (voicing and ln f0, ``nsf.f0_features``)."""
    return (latent_dim if latent_conditioning else 0) + n_mels + 2 * source_filter


class VQVAE(nn.Module):
    """Encoder, quantizer and speaker-conditioned WaveNet decoder.

    Args:
        encoder: waveform (B, 1, T) to latents (B, D, N) (``Encoder`` or ``MelEncoder``).
        quantizer: latents to codes and quantized latents.
        decoder: WaveNet conditioned on quantized latents and a speaker: over mu-law classes, or a
            ``SourceFilterWaveNet`` (which also needs ``f0_decoder``).
        sample_rate: model sample rate in Hz.
        mu_law_classes: classes of the decoder's categorical output.
        jitter_probability: time-jitter of the quantized latents in training; None is off.
        mel_decoder: optional auxiliary decoder from quantized latents and speaker to log-mel frames
            (``audio_vqvae.models.mel``); its L1 loss, times ``mel_loss_weight``, joins the training loss.
        mel_loss_weight: weight of that loss.
        mel_conditioning: the WaveNet is conditioned on the mel decoder's prediction beside the
            quantized latents (``conditioning_features``), so it works as a vocoder of a spectrogram
            that the codes and the chosen speaker determine; needs ``mel_decoder``.
        latent_conditioning: the WaveNet hears the quantized latents (the paper). False: it hears only
            the mel decoder's prediction (and a source-filter decoder's f0 features) and the speaker, so
            in a conversion its input is made for the target speaker as in training, with no channel
            through which the source's latents can carry the source's voice; needs ``mel_conditioning``.
        adversary: optional speaker classifier on the quantized latents behind a gradient reversal
            (``audio_vqvae.models.adversary``), training only; its loss, times ``adversary_weight``, joins
            the training loss.
        adversary_weight: weight of that loss (and scale of the encoder's reversed gradient).
        pre_emphasis: the WaveNet models the pre-emphasised waveform ``x_t - a x_{t-1}`` and its
            samples are de-emphasised (``audio_vqvae.models.emphasis``); 0 is off.
        f0_decoder: a source-filter decoder's f0 predictor from the quantized latents and the speaker
            (a ``MelDecoder`` with 2 outputs: voicing logit, ln(f0 / 100 Hz)); its loss, times
            ``f0_loss_weight``, joins the training loss, and its prediction drives generation.
        f0_loss_weight: weight of that loss.
    """

    def __init__(
        self,
        encoder: Encoder | MelEncoder,
        quantizer: VectorQuantizer,
        decoder: WaveNet,
        sample_rate: int = 16000,
        mu_law_classes: int = 256,
        jitter_probability: float | None = None,
        mel_decoder: MelDecoder | None = None,
        mel_loss_weight: float = 1.0,
        mel_conditioning: bool = False,
        pre_emphasis: float = 0.0,
        adversary: SpeakerAdversary | None = None,
        adversary_weight: float = 0.0,
        f0_decoder: MelDecoder | None = None,
        f0_loss_weight: float = 1.0,
        latent_conditioning: bool = True,
    ):
        super().__init__()
        self.adversary = adversary
        self.adversary_weight = adversary_weight
        self.pre_emphasis = check_coefficient(pre_emphasis)
        if mel_conditioning and mel_decoder is None:
            raise ValueError("mel_conditioning needs a mel decoder (set mel_loss_weight)")
        if not latent_conditioning and not mel_conditioning:
            raise ValueError("a WaveNet that does not hear the latents needs mel_conditioning")
        source_filter = isinstance(decoder, SourceFilterWaveNet)
        if source_filter and (f0_decoder is None or f0_decoder.n_mels != 2):
            raise ValueError("a source-filter decoder needs an f0 decoder with 2 outputs")
        if source_filter and self.pre_emphasis:
            raise ValueError("a source-filter decoder models the waveform itself: pre_emphasis must be 0")
        if source_filter and decoder.lpc_order and not mel_conditioning:
            raise ValueError("an LPC excitation decoder needs mel_conditioning (its filters come from the mel decoder)")
        self.f0_decoder = f0_decoder if source_filter else None
        self.f0_loss_weight = f0_loss_weight
        expected = cond_in_channels(
            encoder.proj.out_channels, mel_decoder.n_mels if mel_conditioning else 0, source_filter, latent_conditioning
        )
        if decoder.cond_in_channels != expected:
            raise ValueError(f"decoder conditioning input has {decoder.cond_in_channels} channels, {expected} expected")
        if decoder.hop_length != encoder.hop_length:
            raise ValueError(f"decoder hop {decoder.hop_length} != encoder hop {encoder.hop_length}")
        self.mel_decoder = mel_decoder
        self.mel_loss_weight = mel_loss_weight
        self.mel_conditioning = mel_conditioning
        self.latent_conditioning = latent_conditioning
        self.log_mel = LogMel(sample_rate, encoder.hop_length, mel_decoder.n_mels) if mel_decoder is not None else None
        self.encoder = encoder
        self.quantizer = quantizer
        self.decoder = decoder
        self.sample_rate = sample_rate
        self.mu_law_classes = mu_law_classes
        self.jitter_probability = jitter_probability
        self.config: ModelConfig | None = None  # set by from_config; checkpoints store it
        self.speakers: list[str] = []  # name of each decoder speaker id; set by load
        self.checkpoint: Path | None = None  # the file load read
        self.checkpoint_step: int | None = None  # its training step

    @classmethod
    def from_config(cls, cfg: ModelConfig) -> VQVAE:
        """Build a model from a ``ModelConfig``; the config is kept on ``model.config``.

        Raises:
            ConfigError: naming the key or section of a value no model can have.
        """
        with config_section("model.encoder"):
            encoder = build_encoder(cfg.quantizer.dim, cfg.sample_rate, **dataclasses.asdict(cfg.encoder))
        with config_section("model.quantizer"):
            quantizer = VectorQuantizer(**dataclasses.asdict(cfg.quantizer))
        if cfg.mel_conditioning and cfg.mel_loss_weight is None:
            raise ConfigError("model.mel_conditioning needs the mel decoder: set model.mel_loss_weight")
        if not cfg.latent_conditioning and not cfg.mel_conditioning:
            raise ConfigError("model.latent_conditioning: false needs model.mel_conditioning: true (what else to hear)")
        if not 0.0 <= cfg.pre_emphasis < 1.0:
            raise ConfigError(f"model.pre_emphasis must be in [0, 1), got {cfg.pre_emphasis}")
        if cfg.speaker_adversary_weight is not None and not cfg.speaker_adversary_weight >= 0:
            weight = cfg.speaker_adversary_weight
            raise ConfigError(f"model.speaker_adversary_weight must be >= 0 or null, got {weight}")
        source_filter = cfg.decoder.kind == "source_filter"
        if source_filter and cfg.pre_emphasis:
            raise ConfigError("model.pre_emphasis must be 0 with model.decoder.kind=source_filter")
        if source_filter and cfg.decoder.input_noise:
            raise ConfigError("model.decoder.input_noise is for the mu_law decoder; set it to 0 for source_filter")
        if cfg.decoder.lpc_order < 0:
            raise ConfigError(f"model.decoder.lpc_order must be >= 0, got {cfg.decoder.lpc_order}")
        if cfg.decoder.lpc_order and not source_filter:
            raise ConfigError("model.decoder.lpc_order is for model.decoder.kind=source_filter; set it to 0")
        if cfg.decoder.lpc_order and not cfg.mel_conditioning:
            raise ConfigError("model.decoder.lpc_order needs model.mel_conditioning: true (the filters' envelope)")
        with config_section("model.decoder"):
            d = cfg.decoder
            sizes = d.stack_sizes()
            n_mels = cfg.mel_decoder.n_mels if cfg.mel_conditioning else 0
            sizes.update(
                cond_in_channels=cond_in_channels(cfg.quantizer.dim, n_mels, source_filter, cfg.latent_conditioning),
                hop_length=encoder.hop_length,
            )
            if d.kind == "source_filter":
                decoder = SourceFilterWaveNet(d.harmonics, cfg.sample_rate, d.lpc_order, **sizes)
            else:
                decoder = WaveNet(n_classes=cfg.mu_law_classes, input_noise=d.input_noise, **sizes)
        mel_decoder = None
        if cfg.mel_loss_weight is not None:
            with config_section("model.mel_decoder"):
                mel_decoder = MelDecoder(
                    in_channels=cfg.quantizer.dim,
                    n_speakers=cfg.decoder.n_speakers,
                    speaker_dim=cfg.decoder.speaker_dim,
                    **dataclasses.asdict(cfg.mel_decoder),
                )
        f0_decoder = None
        if source_filter:
            with config_section("model.mel_decoder"):
                mel_sizes = {**dataclasses.asdict(cfg.mel_decoder), "n_mels": 2}  # voicing logit, ln(f0 / 100 Hz)
                f0_decoder = MelDecoder(
                    in_channels=cfg.quantizer.dim,
                    n_speakers=cfg.decoder.n_speakers,
                    speaker_dim=cfg.decoder.speaker_dim,
                    **mel_sizes,
                )
        model = cls(
            encoder,
            quantizer,
            decoder,
            cfg.sample_rate,
            cfg.mu_law_classes,
            cfg.jitter_probability,
            mel_decoder,
            cfg.mel_loss_weight if cfg.mel_loss_weight is not None else 0.0,
            cfg.mel_conditioning,
            cfg.pre_emphasis,
            SpeakerAdversary(cfg.quantizer.dim, cfg.decoder.n_speakers) if cfg.speaker_adversary_weight else None,
            cfg.speaker_adversary_weight or 0.0,
            f0_decoder,
            cfg.f0_loss_weight,
            cfg.latent_conditioning,
        )
        model.config = cfg
        return model

    @classmethod
    def load(cls, path: str | Path, map_location: str | torch.device = "cpu") -> VQVAE:
        """Rebuild a trained model from a checkpoint alone (config, weights and speaker names are inside).

        Args:
            path: a checkpoint written by training (``EXP/last.pt``, ``best.pt``, ``step_N.pt``).
            map_location: device to load onto ("cpu", "cuda", ...); "auto" is a GPU when there is one.
        Returns:
            The model in eval mode on that device, with ``speakers``, ``checkpoint`` and ``checkpoint_step`` set.
        Raises:
            CheckpointError: naming the file, when it is missing, unreadable or not ours.
        """
        from ..checkpoint import config_from_checkpoint, load_checkpoint

        if map_location == "auto":
            map_location = "cuda" if torch.cuda.is_available() else "cpu"
        state = load_checkpoint(path, map_location)
        model = cls.from_config(config_from_checkpoint(state, path).model)
        model.load_state_dict(state["model"])
        model.speakers = [str(s) for s in state.get("speakers", [])]
        model.checkpoint = Path(path)
        model.checkpoint_step = int(state["step"]) if "step" in state else None
        return model.to(map_location).eval()

    def speaker_ids(self, speaker: SpeakerLike, batch: int) -> Tensor:
        """Decoder speaker ids of a batch from names or ids.

        A str is a speaker name from ``self.speakers``; a str of digits that is not a name is an id.

        Args:
            speaker: one name or id for the whole batch, or one per utterance (sequence or (B,) tensor).
            batch: B.
        Returns:
            (B,) int64 ids on the CPU.
        Raises:
            SpeakerError: an unknown name, an id out of range, or a list of the wrong length.
        """
        if isinstance(speaker, Tensor):
            ids = speaker.detach().to("cpu", torch.long).reshape(-1)
        else:
            items = [speaker] if isinstance(speaker, (int, str)) else list(speaker)
            ids = torch.tensor([self._speaker_id(s) for s in items], dtype=torch.long)
        if ids.numel() == 1:
            ids = ids.expand(batch)
        if ids.numel() != batch:
            raise SpeakerError(f"got {ids.numel()} speakers for {batch} utterances")
        n = self.decoder.n_speakers
        bad = [int(i) for i in ids if not 0 <= int(i) < n]
        if bad:
            raise SpeakerError(f"speaker ids must be in [0, {n}) (this model has {n} speakers), got {bad[0]}")
        return ids

    def _speaker_id(self, speaker: int | str) -> int:
        if isinstance(speaker, bool) or not isinstance(speaker, (int, str)):
            raise SpeakerError(f"a speaker is a name or an int id, got {speaker!r}")
        if isinstance(speaker, int):
            return speaker
        if speaker in self.speakers:
            return self.speakers.index(speaker)
        if speaker.isdigit():
            return int(speaker)
        if not self.speakers:
            raise SpeakerError(
                f"unknown speaker '{speaker}': this model has no speaker names (build it with VQVAE.load); "
                f"use an id in 0..{self.decoder.n_speakers - 1}"
            )
        raise SpeakerError(f"unknown speaker '{speaker}'; known ({len(self.speakers)}): {_known(self.speakers)}")

    def check_codes(self, codes: Tensor) -> None:
        """Raise a ValueError unless every code is in [0, K) (one host sync; not for the training loop)."""
        K = self.quantizer.codebook_size
        if codes.numel() and (int(codes.min()) < 0 or int(codes.max()) >= K):
            raise ValueError(f"codes must be in [0, {K}), got {int(codes.min())}..{int(codes.max())}")

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
            "mel_decoder_parameters": sum(p.numel() for p in self.mel_decoder.parameters()) if self.mel_decoder else 0,
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
        speaker: SpeakerLike,
        lengths: Tensor | None = None,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Generate a waveform from codes with a speaker's voice.

        Args:
            codes: (B, N) or (N,) int64 codes, padded past each utterance's length.
            speaker: one speaker for the whole batch or one per utterance: names (str) or ids
                (int, list, or (B,) int64 tensor); see ``speaker_ids``.
            lengths: (B,) frames of each utterance; None: all N.
            temperature: sampling temperature of a mu-law decoder; 0 is greedy. A source-filter decoder
                has no sampling (its excitation noise is drawn from ``generator``).
        Returns:
            (B, 1, N * hop) float waveform; zeros past each utterance's length.
        """
        if codes.dim() == 1:
            codes = codes.unsqueeze(0)
        self.check_codes(codes)
        speaker = self.speaker_ids(speaker, codes.size(0)).to(codes.device)
        latents, f0 = self.synthesis_inputs(self.quantizer.dequantize(codes), speaker, lengths)  # (B, D', N)
        if self.source_filter:  # one pass; temperature does not apply
            excitation = self.decoder.source(codes.size(0), codes.device, generator)(f0)  # (B, H, N * hop)
            wav = self.decoder(excitation, latents, speaker, lengths).float()
            lpc = self.excitation_filter()
            if lpc is not None:
                wav = lpc(wav, self.feature_log_mel(latents)).clamp(-1.0, 1.0)
        else:
            classes = generate(self.decoder, latents, speaker, lengths, temperature, generator)  # (B, N * hop)
            wav = self.waveform(classes)
        if lengths is not None:
            mask = torch.arange(wav.size(-1), device=wav.device) < lengths.to(wav.device).unsqueeze(1) * self.hop_length
            wav = wav * mask
        return wav.unsqueeze(1)

    def waveform(self, classes: Tensor, de_emphasis: DeEmphasis | None = None) -> Tensor:
        """The decoder's sampled classes as a waveform: mu-law decoded, then de-emphasised.

        Args:
            classes: (B, n) int64 mu-law classes.
            de_emphasis: the filter of a stream decoded in pieces (``DeEmphasis(model.pre_emphasis)``,
                one per stream), which carries each row's state to the next piece; None: a new one.
        Returns:
            (B, n) float32 waveform in [-1, 1], on the classes' device.
        """
        wav = mu_law_decode(classes, self.mu_law_classes)
        return (de_emphasis or DeEmphasis(self.pre_emphasis))(wav)

    @property
    def source_filter(self) -> bool:
        """Whether the decoder is a ``SourceFilterWaveNet`` (one pass over an f0 excitation), not mu-law."""
        return isinstance(self.decoder, SourceFilterWaveNet)

    def excitation_filter(self) -> ExcitationFilter | None:
        """A new stream's LPC synthesis filter (``lpc.ExcitationFilter``) for a decoder whose output is an
        excitation (``decoder.lpc_order`` > 0); else None."""
        if not self.source_filter or not self.decoder.lpc_order:
            return None
        return ExcitationFilter(self.log_mel, self.hop_length, self.sample_rate, self.decoder.lpc_order)

    def feature_log_mel(self, features: Tensor) -> Tensor:
        """The mel decoder's predicted log-mel inside ``conditioning_features``: (B, D', N) -> (B, n_mels, N)."""
        D = self.encoder.proj.out_channels if self.latent_conditioning else 0
        return features[:, D : D + self.mel_decoder.n_mels]

    def conditioning_features(self, latents: Tensor, speaker: Tensor, lengths: Tensor | None = None) -> Tensor:
        """What the WaveNet is conditioned on: the quantized latents (unless ``latent_conditioning`` is
        off), and with ``mel_conditioning`` the mel decoder's prediction for the given speakers after
        them; a source-filter decoder's also has the f0 decoder's predicted voicing and ln f0
        (``nsf.f0_features``) last.

        Each utterance is predicted on its own first ``lengths[b]`` frames (zeros after), so a batch
        gives every utterance the features it gets alone, whatever the padding.

        Args:
            latents: (B, D, N) quantized latents; speaker: (B,) int64 ids; lengths: (B,) frames or None.
        Returns:
            (B, D', N): D (0 without latent conditioning), + n_mels with mel conditioning, + 2 with a
            source-filter decoder.
        """
        return self.synthesis_inputs(latents, speaker, lengths)[0]

    def synthesis_inputs(
        self, latents: Tensor, speaker: Tensor, lengths: Tensor | None = None
    ) -> tuple[Tensor, Tensor | None]:
        """``conditioning_features`` and, for a source-filter decoder, the predicted f0 that drives its source.

        Returns:
            (B, D', N) features and (B, N) f0 in Hz (0 where unvoiced), or None for a mu-law decoder.
        """
        if not self.mel_conditioning and not self.source_filter:
            return latents, None
        if lengths is None:
            return self._predicted_features(latents, speaker)
        B, D, N = latents.shape
        out = latents.new_zeros(B, self.decoder.cond_in_channels, N)
        f0 = latents.new_zeros(B, N) if self.source_filter else None
        for b, n in enumerate(lengths.tolist()):
            one, f0_one = self._predicted_features(latents[b : b + 1, :, :n], speaker[b : b + 1])  # (1, D', n)
            out[b : b + 1, :, :n] = one
            if f0 is not None:
                f0[b, :n] = f0_one[0]
        return out, f0

    def _predicted_features(self, latents: Tensor, speaker: Tensor) -> tuple[Tensor, Tensor | None]:
        parts = [latents] if self.latent_conditioning else []
        if self.mel_conditioning:
            parts.append(self.mel_decoder(latents, speaker).to(latents.dtype))
        f0 = None
        if self.source_filter:
            f0 = f0_from_prediction(self.f0_decoder(latents, speaker))  # (B, N)
            parts.append(f0_features(f0).to(latents.dtype))
        return torch.cat(parts, 1), f0

    def encode_crop(self, crop: EncoderCrop, n_frames: int) -> Tensor:
        """(B, D, n_frames) encoder outputs of the crops in ``crop``: frames ``first_frame[b] + [0, n_frames)``."""
        z = self.encoder(crop.wav, crop.lengths)  # (B, D, N')
        index = crop.first_frame.long().unsqueeze(1) + torch.arange(n_frames, device=z.device)  # (B, n_frames)
        if int(index.max()) >= z.size(-1):
            raise ValueError(f"crop of {z.size(-1)} frames has no frame {int(index.max())}")
        return torch.gather(z, 2, index.unsqueeze(1).expand(-1, z.size(1), -1))

    def forward(self, wav: Tensor, speaker: Tensor, crop: EncoderCrop | None = None) -> VQVAEOutput:
        """Teacher-forced pass for training.

        Args:
            wav: (B, 1, T) float waveform in [-1, 1]; trimmed to N * hop samples.
            speaker: (B,) int64 speaker ids.
            crop: the same crops with the encoder's context around them; the latents are then
                those frames of encoding ``crop.wav``, as encoding the whole utterances gives them.
                None: the encoder reads ``wav`` alone.
        Returns:
            VQVAEOutput with the loss terms, quantizer metrics, codes (B, N) and logits (B, C, N * hop).
        """
        wav = self._trim(as_batch(wav))
        z = (
            self.encode_crop(crop, wav.size(-1) // self.hop_length) if crop is not None else self.encoder(wav)
        )  # (B, D, N)
        q = self.quantizer(z)
        latents = q.quantized
        adversary_loss = adversary_accuracy = None
        if self.adversary is not None:
            adversary_loss, adversary_accuracy = self.adversary(latents, speaker)
        if self.training and self.jitter_probability:
            latents = jitter(latents, self.jitter_probability)
        mel = self.mel_decoder(latents, speaker) if self.mel_decoder is not None else None  # (B, n_mels, N)
        real_mel = self.log_mel(wav.squeeze(1)) if mel is not None else None  # (B, n_mels, N)
        cond = latents if self.latent_conditioning else latents[:, :0]  # (B, D or 0, N)
        if self.mel_conditioning:
            cond = torch.cat([cond, mel.to(latents.dtype)], 1)
        f0_term = None
        if self.source_filter:
            # Teacher forcing: the real f0 drives the source and the features; the f0 decoder learns to
            # predict it from the codes and the speaker, without pulling pitch into the codes (detached).
            f0 = yin_f0(wav.squeeze(1), self.sample_rate, self.hop_length, center=True).to(wav.dtype)  # (B, N)
            f0_term = f0_loss(self.f0_decoder(latents.detach(), speaker), f0)
            cond = torch.cat([cond, f0_features(f0).to(cond.dtype)], 1)
            excitation = self.decoder.source(wav.size(0), wav.device, training=self.training)(f0)  # (B, H, T)
            out = self.decoder(excitation, cond, speaker)  # (B, T) waveform, or with lpc_order its LPC excitation
            lpc = self.excitation_filter()
            if lpc is not None:  # the real frames' filters (teacher forcing); at generation, the predicted ones
                out = lpc(out, real_mel)
            logits = out.unsqueeze(1)  # (B, 1, T) waveform
            reconstruction = multi_resolution_stft_loss(out, wav.squeeze(1))
        else:
            targets = mu_law_encode(pre_emphasis(wav.squeeze(1), self.pre_emphasis), self.mu_law_classes)  # (B, T)
            inputs = shift_right(targets, self.mu_law_classes // 2)
            logits = self.decoder(inputs, cond, speaker)  # (B, C, T)
            reconstruction = F.cross_entropy(logits.float(), targets)
        loss = reconstruction + q.loss
        if f0_term is not None:
            loss = loss + self.f0_loss_weight * f0_term
        mel_loss = reconstruction.new_zeros(())
        if mel is not None:
            mel_loss = F.l1_loss(mel.float(), real_mel)
            loss = loss + self.mel_loss_weight * mel_loss
        if adversary_loss is not None:
            loss = loss + self.adversary_weight * adversary_loss
        return VQVAEOutput(
            loss=loss,
            reconstruction_loss=reconstruction,
            mel_loss=mel_loss,
            f0_loss=f0_term,
            adversary_loss=adversary_loss,
            adversary_accuracy=adversary_accuracy,
            codebook_loss=q.codebook_loss,
            commitment_loss=q.commitment_loss,
            perplexity=q.perplexity,
            codes_used=q.codes_used,
            dead_codes=q.dead_codes,
            codes=q.codes,
            logits=logits,
        )
