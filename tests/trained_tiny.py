"""A tiny model trained for a few steps on the test corpus, shared by the inference tests (trained once)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from audio_vqvae.config import experiment_config
from audio_vqvae.training import train

_trained: dict[str, Path] = {}

OVERRIDES = {
    "model": {"quantizer": {"kmeans_init": True}},  # codebook from encoder outputs: codes vary from the start
    "data": {"segment_length": 1024, "batch_size": 4, "num_workers": 0, "valid_utterances": 2},
    "optim": {"warmup_steps": 1},
    "train": {"steps": 8, "log_every": 4, "valid_every": 8, "audio_every": None, "checkpoint_every": 8},
}


def trained_checkpoint(corpus: Path, root: Path) -> Path:
    """``last.pt`` of a tiny model trained for 8 steps on ``corpus`` (speakers spk0, spk1, spk2)."""
    if "ckpt" not in _trained:
        result = train(experiment_config("tiny", OVERRIDES), corpus, root / "exp")
        _trained["ckpt"] = result.last_checkpoint
    return _trained["ckpt"]


def write_tone(path: Path, seconds: float, rate: int = 16000, f0: float = 180.0) -> Path:
    """A short harmonic tone with noise, as 16-bit PCM."""
    t = np.arange(int(seconds * rate)) / rate
    wav = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 4)) * 0.2
    wav = wav + 0.01 * np.random.default_rng(int(f0)).standard_normal(t.size)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, wav.astype(np.float32), rate, subtype="PCM_16")
    return path
