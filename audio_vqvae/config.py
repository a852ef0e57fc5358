"""Nested config dataclasses: every default is defined here once; YAML and --set hold only overrides.

The field names of ``EncoderConfig``, ``QuantizerConfig`` and ``DecoderConfig`` are the keyword
arguments of the modules they build, so a module is made with ``Module(**asdict(cfg))`` and nothing
else needs to know the defaults.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from .errors import ConfigError


@dataclass
class EncoderConfig:
    """Strided 1-D conv encoder on the raw waveform (van den Oord et al. 2017, section 4.3).

    The default is the paper's: 6 convolutions of kernel 4 and stride 2, so hop 64 (250 frames/s at
    16 kHz). Any stride list works, for example (5, 4, 4, 4) for hop 320 (50 frames/s).

    The paper gives no widths. By default they double every two layers, from 32 at 8 kHz to 128 at
    the frame rate, so activations per second shrink with depth: 0.25 GFLOP per second of audio,
    encoded at over 300x real time on 2 CPU cores (bench/encode.py). 256 channels in every layer
    cost 4.4 GFLOP per second of audio (about 20x real time there); ``channels: 256`` gives that.
    """

    strides: tuple[int, ...] = (2, 2, 2, 2, 2, 2)
    kernel_sizes: tuple[int, ...] | None = None  # None: 2 * stride per layer (4 for stride 2)
    # Output channels of each strided conv, or one int for all; the residual blocks use the last.
    # None: 128 for the last, halved every two layers towards the waveform, at least 32
    # (32, 32, 64, 64, 128, 128 for six strides); see encoder.default_channels.
    channels: int | tuple[int, ...] | None = None
    n_residual_layers: int = 2  # non-strided residual blocks at the frame rate
    layer_norm: bool = True  # per-time-step layer norm after each conv (wav2vec 2.0); the paper has none
    # "waveform": the strided convs above (the paper). "log_mel": log-mel frames on the same grid (hop =
    # the strides' product), then a kernel-3 conv and the residual blocks at the last width (see
    # audio_vqvae/models/mel_encoder.py); kernel_sizes are then unused. Much faster to train.
    frontend: Literal["waveform", "log_mel"] = "waveform"
    n_mels: int = 80  # mel bands of the log_mel front end
    # log_mel only: subtract from each band its mean over a centred sliding window of this many seconds
    # (Kaldi's apply-cmvn-sliding, means only; audio_vqvae/models/cmn.py), which takes out much of
    # the voice and channel. Training crops are then read with the encoder's context. None: off.
    cmn_window_seconds: float | None = None


@dataclass
class QuantizerConfig:
    """Vector quantizer: K codes of dimension D, codebook + commitment loss, straight-through."""

    codebook_size: int = 512  # K
    dim: int = 64  # D, also the encoder's output channels and the decoder's conditioning input
    commitment_weight: float = 0.25  # beta
    ema_decay: float | None = 0.99  # None: codebook learned by the codebook loss (the paper); 0.99: EMA updates
    ema_epsilon: float = 1e-5  # Laplace smoothing of the EMA cluster sizes
    kmeans_init: bool = True  # initialise the codebook by k-means on the first training batch
    kmeans_iters: int = 10
    usage_decay: float = 0.95  # EMA of each code's share of the assignments (~20 steps), for dead codes
    dead_code_threshold: float = 0.1  # dead below this multiple of the uniform share (M / K of M vectors)
    revive_dead_codes: bool = True  # replace dead codes by recent encoder outputs (Jukebox, SoundStream)
    revival_buffer_size: int = 4096  # recent encoder outputs kept for revival
    batch_norm: bool = True  # standardise encoder outputs by batch statistics (Łańcucki et al. 2020)
    cosine_similarity: bool = True  # l2-normalised lookup on the unit sphere (Yu et al. 2021)


@dataclass
class DecoderConfig:
    """Speaker-conditioned WaveNet (van den Oord et al. 2016): over mu-law samples (the paper), or filtering a
    harmonic-plus-noise excitation at f0 into the waveform (``source_filter``, audio_vqvae/models/nsf.py)."""

    # "mu_law": autoregressive, 256-way softmax over the next sample (the paper). "source_filter": a neural
    # source-filter model (Wang et al. 2019) on the same layers, one causal pass over sines at f0, trained
    # with a multi-resolution STFT loss; it voices within a CPU hour where the mu-law WaveNet whispers.
    kind: Literal["mu_law", "source_filter"] = "mu_law"
    harmonics: int = 8  # source_filter: sines at f0, 2 f0, ..., harmonics * f0 in the excitation
    # source_filter: 0, the WaveNet outputs the waveform; p > 0, it outputs the excitation of per-frame order-p
    # all-pole filters from log-mel frames (ExcitNet, Song et al. 2019; LPCNet, Valin & Skoglund 2019): the real
    # frames' filters in training, with the STFT loss on the filtered waveform; the mel decoder's predicted frames'
    # at generation. Needs model.mel_conditioning.
    lpc_order: int = 0
    residual_channels: int = 128
    gate_channels: int = 256  # split in two halves for tanh and sigmoid
    skip_channels: int = 128
    kernel_size: int = 2
    layers_per_stack: int = 10  # dilations 1, 2, ..., 2**(layers_per_stack - 1)
    n_stacks: int = 3
    cond_channels: int = 128  # width of the frame-rate conditioning network
    n_cond_layers: int = 2  # kernel-3 convs on the quantized latents before upsampling
    n_speakers: int = 1
    speaker_dim: int = 64
    # std, in mu-law classes, of Gaussian noise on the WaveNet's previous-sample inputs in training
    # (FFTNet's injected noise; wavenet.inject_noise). 0: none (the paper).
    input_noise: float = 0.0

    def stack_sizes(self) -> dict[str, Any]:
        """The fields every decoder kind's layers (``wavenet.GatedStack``) take: all but the kinds' own options."""
        own = ("kind", "harmonics", "lpc_order", "input_noise")
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in own}


@dataclass
class MelDecoderConfig:
    """Auxiliary speaker-conditioned decoder from the codes to log-mel frames (see ``audio_vqvae.models.mel``)."""

    n_mels: int = 80
    channels: int = 256
    n_layers: int = 3
    kernel_size: int = 5


@dataclass
class ModelConfig:
    """The whole VQ-VAE. Its sizes are the paper's; preset "paper" also restores its training choices
    (loss-trained codebook, no k-means, no revival, Euclidean lookup, no mel loss)."""

    sample_rate: int = 16000
    mu_law_classes: int = 256
    jitter_probability: float | None = None  # time-jitter of the latents (Chorowski et al. 2019)
    # Weight of the L1 log-mel loss of the auxiliary mel decoder; None: no mel decoder (the paper).
    mel_loss_weight: float | None = 1.0
    # Condition the WaveNet on the mel decoder's prediction too (a vocoder of the codes' spectrogram).
    mel_conditioning: bool = False
    # The WaveNet hears the quantized latents (the paper). false: only the mel decoder's prediction (and the f0
    # features of a source_filter decoder) and the speaker, the input a conversion gives it made for the target
    # speaker, as in training (a vocoder of the predicted spectrogram). Needs mel_conditioning.
    latent_conditioning: bool = True
    # The WaveNet models x_t - a x_{t-1} (a = this) and its samples are de-emphasised: its noise then has
    # the spectral tilt of speech (LPCNet's noise shaping, audio_vqvae/models/emphasis.py). 0: off (the paper).
    pre_emphasis: float = 0.0
    # Weight of a speaker classifier on the quantized latents behind a gradient reversal, which pushes
    # speaker information out of the codes (audio_vqvae/models/adversary.py); None: none (the paper).
    speaker_adversary_weight: float | None = None
    # Weight of the f0 decoder's loss (voicing cross-entropy + L1 of ln f0); source_filter decoders only.
    f0_loss_weight: float = 1.0
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    quantizer: QuantizerConfig = field(default_factory=QuantizerConfig)
    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    mel_decoder: MelDecoderConfig = field(default_factory=MelDecoderConfig)


@dataclass
class DataConfig:
    """What the training loop reads: random crops of prepared utterances, aligned to the hop."""

    segment_length: int = 8000  # samples per training crop; rounded down to a multiple of the hop
    batch_size: int = 8  # per process
    num_workers: int = 2
    valid_utterances: int = 32  # validation crops (the first segment of each of these utterances)


@dataclass
class OptimConfig:
    """Adam with linear warm-up then cosine decay to ``min_lr_ratio * lr``."""

    lr: float = 4e-4
    betas: tuple[float, ...] = (0.9, 0.999)
    weight_decay: float = 0.0
    warmup_steps: int = 1000
    min_lr_ratio: float = 0.05
    grad_clip: float | None = 1.0  # max gradient norm; None: no clipping


@dataclass
class TrainConfig:
    """Loop length, precision, logging and checkpoint cadence."""

    steps: int = 200_000
    seed: int = 0
    # bf16: autocast (CPU or GPU); fp16: + grad scaler (GPU); auto: bf16 where the CPU or GPU runs it natively,
    # else fp32 on a CPU and fp16 on a GPU (audio_vqvae/training/precision.py), logged at start with the reason
    precision: Literal["fp32", "bf16", "fp16", "auto"] = "fp32"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    log_every: int = 100  # steps per TensorBoard point; codebook usage is pooled over this window
    valid_every: int = 2000
    audio_every: int | None = 10_000  # log a validation utterance and its reconstruction; None: never
    audio_seconds: float = 1.0
    checkpoint_every: int = 10_000
    keep_checkpoints: int = 3  # numbered checkpoints kept besides last.pt and best.pt
    max_nonfinite_steps: int = 20  # consecutive skipped steps before training stops


@dataclass
class Config:
    """An experiment: the model and how to train it. Stored whole in every checkpoint."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


@dataclass
class PriorModelConfig:
    """The code prior (``models.prior.CodePrior``): a causal Transformer over code sequences."""

    max_len: int = 1024  # context in codes (4.1 s at hop 64 and 16 kHz), and the length of the training crops
    d_model: int = 256
    n_layers: int = 6
    n_heads: int = 4
    dropout: float = 0.1
    codebook_size: int = 512  # K; set from the tokens' tokens.json by train-prior
    n_speakers: int = 0  # set from the speaker list of --data by train-prior; 0: unconditional


@dataclass
class PriorDataConfig:
    """What the prior's training loop reads: random crops of ``model.max_len`` codes (shorter utterances padded)."""

    batch_size: int = 16  # per process
    num_workers: int = 0
    valid_utterances: int = 64  # validation crops (the first segment of each of these utterances)


def _prior_train() -> TrainConfig:
    return TrainConfig(steps=20_000, valid_every=500, audio_every=None, checkpoint_every=2_000)


@dataclass
class PriorExperiment:
    """A code prior and how to train it (``audio-vqvae train-prior``). Stored whole in its checkpoints."""

    model: PriorModelConfig = field(default_factory=PriorModelConfig)
    data: PriorDataConfig = field(default_factory=PriorDataConfig)
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=3e-4, warmup_steps=200))
    train: TrainConfig = field(default_factory=_prior_train)


# The smallest legal value of integer sizes, counts and periods (per element for lists; None stays legal
# where the type allows it). Checked when overrides are applied, so `--set train.checkpoint_every=0` or
# `--set model.decoder.n_stacks=0` fails at once naming the key, not at step 1 or deep inside torch.
MINIMUM: dict[type, dict[str, int]] = {
    EncoderConfig: {"strides": 1, "kernel_sizes": 1, "channels": 1, "n_residual_layers": 0, "n_mels": 1},
    QuantizerConfig: {"codebook_size": 1, "dim": 1, "kmeans_iters": 1, "revival_buffer_size": 1},
    DecoderConfig: {
        "residual_channels": 1,
        "gate_channels": 2,
        "skip_channels": 1,
        "kernel_size": 2,
        "layers_per_stack": 1,
        "n_stacks": 1,
        "cond_channels": 1,
        "n_cond_layers": 0,
        "n_speakers": 1,
        "speaker_dim": 1,
        "harmonics": 1,
    },
    MelDecoderConfig: {"n_mels": 1, "channels": 1, "n_layers": 0, "kernel_size": 1},
    ModelConfig: {"sample_rate": 1, "mu_law_classes": 2},
    DataConfig: {"segment_length": 1, "batch_size": 1, "num_workers": 0},
    PriorModelConfig: {"max_len": 1, "d_model": 1, "n_layers": 0, "n_heads": 1, "codebook_size": 1, "n_speakers": 0},
    PriorDataConfig: {"batch_size": 1, "num_workers": 0, "valid_utterances": 0},
    OptimConfig: {"warmup_steps": 0},
    TrainConfig: {
        "steps": 1,
        "log_every": 1,
        "valid_every": 1,
        "audio_every": 1,
        "checkpoint_every": 1,
        "keep_checkpoints": 0,
        "max_nonfinite_steps": 1,
    },
}


# Named configs hold only their differences from the defaults above.
PRESETS: dict[str, dict[str, Any]] = {
    "default": {},  # the paper's sizes with the training choices that keep the codebook alive
    # van den Oord et al. 2017 as written: the codebook learned by its loss, Euclidean lookup, no extras.
    "paper": {
        "mel_loss_weight": None,
        "encoder": {"layer_norm": False},
        "quantizer": {
            "ema_decay": None,
            "kmeans_init": False,
            "revive_dead_codes": False,
            "batch_norm": False,
            "cosine_similarity": False,
        },
    },
    "tiny": {
        "encoder": {"channels": 16, "n_residual_layers": 1},
        "quantizer": {"codebook_size": 32, "dim": 8},
        "decoder": {
            "residual_channels": 8,
            "gate_channels": 16,
            "skip_channels": 8,
            "layers_per_stack": 4,
            "n_stacks": 2,
            "cond_channels": 8,
            "n_speakers": 4,
            "speaker_dim": 8,
        },
        "mel_decoder": {"n_mels": 20, "channels": 16, "n_layers": 1, "kernel_size": 3},
    },
}


def preset(name: str) -> ModelConfig:
    """Return the named model config (``default``, ``paper`` or ``tiny``)."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset '{name}'; known: {', '.join(PRESETS)}")
    return apply_overrides(ModelConfig(), PRESETS[name])


def experiment_config(preset_name: str = "default", overrides: dict[str, Any] | None = None) -> Config:
    """An experiment config whose model is the named preset, with nested ``overrides`` applied."""
    return apply_overrides(Config(model=preset(preset_name)), overrides)


def to_dict(cfg: Any) -> dict[str, Any]:
    """Plain nested dict of a config (tuples become lists), for YAML and checkpoints."""

    def plain(v: Any) -> Any:
        if isinstance(v, (tuple, list)):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    return plain(dataclasses.asdict(cfg))


def apply_overrides(cfg: Any, overrides: dict[str, Any] | None, prefix: str = "") -> Any:
    """Return a copy of ``cfg`` with ``overrides`` (a nested dict) applied.

    Unknown keys and values of the wrong type raise ``ConfigError`` naming the dotted key.
    """
    if not overrides:
        return dataclasses.replace(cfg)
    if not isinstance(overrides, dict):
        raise ConfigError(f"'{prefix.rstrip('.') or '<root>'}' must be a mapping, got {overrides!r}")
    hints = typing.get_type_hints(type(cfg))
    names = [f.name for f in dataclasses.fields(cfg)]
    changes = {}
    for key, value in overrides.items():
        dotted = prefix + str(key)
        if key not in names:
            raise ConfigError(f"unknown config key '{dotted}'; known here: {', '.join(names)}")
        current = getattr(cfg, key)
        if dataclasses.is_dataclass(current):
            changes[key] = apply_overrides(current, value, dotted + ".")
        else:
            changes[key] = _coerce(value, hints[key], dotted)
            _check_minimum(type(cfg), key, changes[key], dotted)
    return dataclasses.replace(cfg, **changes)


def validate(cfg: Any, prefix: str = "") -> None:
    """Check every value of a config built in code (``apply_overrides`` checks what it sets).

    Raises:
        ConfigError naming the dotted key of a value below its ``MINIMUM``.
    """
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value):
            validate(value, f"{prefix}{f.name}.")
        else:
            _check_minimum(type(cfg), f.name, value, prefix + f.name)


@contextmanager
def config_section(key: str) -> Iterator[None]:
    """Turn the ValueError of a module built from config section ``key`` into a ConfigError naming it.

    Sizes that no module can have but that each pass ``MINIMUM`` (an encoder kernel shorter than its
    stride, odd ``gate_channels``) are found by the module's constructor, which takes plain values and
    raises ValueError; under this context they become one line naming the section, with the module's
    error as the cause.
    """
    try:
        yield
    except ConfigError:
        raise
    except ValueError as e:
        raise ConfigError(f"config section '{key}': {e}") from e


def _check_minimum(owner: type, key: str, value: Any, dotted: str) -> None:
    minimum = MINIMUM.get(owner, {}).get(key)
    if minimum is None or value is None:
        return
    values = value if isinstance(value, (tuple, list)) else (value,)
    if all(isinstance(v, int) and v >= minimum for v in values):
        return
    nullable = type(None) in typing.get_args(typing.get_type_hints(owner)[key])
    each = " (each)" if isinstance(value, (tuple, list)) else ""
    raise ConfigError(
        f"config key '{dotted}' must be >= {minimum}{each}{' or null' if nullable else ''}, got {value!r}"
    )


def _coerce(value: Any, hint: Any, key: str) -> Any:
    """Check ``value`` against the type ``hint``; lists become tuples, ints widen to floats.

    A string that reads as a finite float (``3e-4``, which YAML 1.1 leaves a string) is a float.
    """
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if len(errors) == 1 else f"config key '{key}': bad value {value!r}")
    if origin is typing.Literal:
        if value in args:
            return value
        raise ConfigError(f"config key '{key}' must be one of {', '.join(map(str, args))}, got {value!r}")
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"config key '{key}' must be a list, got {value!r}")
        item = args[0]
        return tuple(_coerce(v, item, f"{key}[{i}]") for i, v in enumerate(value))
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                number = float(value)
            except ValueError:
                number = math.nan
            if math.isfinite(number):
                return number
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif hint is bool or hint is str:
        if isinstance(value, hint):
            return value
    elif hint is Any:
        return value
    name = getattr(hint, "__name__", str(hint))
    raise ConfigError(f"config key '{key}' must be {name}, got {value!r}")


def parse_assignments(assignments: list[str]) -> dict[str, Any]:
    """Turn ``["decoder.n_stacks=2", "encoder.strides=[5,4,4,4]"]`` into a nested override dict.

    Values are parsed as YAML, so numbers, booleans, ``null`` and lists work as written.
    """
    out: dict[str, Any] = {}
    for item in assignments:
        if "=" not in item:
            raise ConfigError(f"--set expects key=value, got '{item}'")
        key, text = item.split("=", 1)
        parts = key.strip().split(".")
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set '{key}' conflicts with an earlier assignment")
        node[parts[-1]] = yaml.safe_load(text)
    return out


def merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge two override dicts; ``extra`` wins."""
    out = dict(base)
    for k, v in extra.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def load_overrides(path: str | Path) -> dict[str, Any]:
    """Read a YAML file of overrides; an empty file is no overrides."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text ({e.reason})") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of config keys at the top level")
    return data
