"""audio_vqvae: discrete speech units with a VQ-VAE and a speaker-conditioned WaveNet decoder."""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# Public names, imported on first use so that `audio-vqvae --help` and config code stay light.
_EXPORTS = {
    "VQVAE": "models.vqvae",
    "VQVAEOutput": "models.vqvae",
    "ModelConfig": "config",
    "EncoderConfig": "config",
    "QuantizerConfig": "config",
    "DecoderConfig": "config",
    "preset": "config",
}

__all__ = [*_EXPORTS, "__version__"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module 'audio_vqvae' has no attribute '{name}'")
