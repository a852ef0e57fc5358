"""Shared fixtures: a small prepared corpus written in a temporary folder (no download)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audio_vqvae.data.manifest import Utterance, write_manifest, write_speakers


def write_prepared_corpus(root: Path, n_speakers: int = 3, per_speaker: int = 4, seconds: float = 0.5) -> Path:
    """A prepared-corpus folder (16 kHz wavs, manifests, speakers.txt) of harmonic tones per speaker."""
    rng = np.random.default_rng(0)
    speakers = [f"spk{i}" for i in range(n_speakers)]
    rows: dict[str, list[Utterance]] = {"train": [], "valid": []}
    for s, spk in enumerate(speakers):
        f0 = 110 * (1 + 0.4 * s)
        for u in range(per_speaker):
            n = int(seconds * 16000) + 64 * u
            t = np.arange(n) / 16000
            env = 0.5 + 0.5 * np.sin(2 * math.pi * (2 + u) * t)
            wav = sum(np.sin(2 * math.pi * k * f0 * (1 + 0.05 * u) * t) / k for k in range(1, 4)) * env * 0.3
            wav = (wav + 0.003 * rng.standard_normal(n)).astype(np.float32)
            uid = f"{spk}_{u:03d}"
            path = root / "wav" / spk / f"{uid}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(path, wav, 16000, subtype="PCM_16")
            split = "valid" if u == per_speaker - 1 else "train"
            rows[split].append(Utterance(uid, str(path.relative_to(root)), spk, n / 16000, 16000, n))
    for split, r in rows.items():
        write_manifest(root / f"{split}.jsonl", r)
    write_speakers(root / "speakers.txt", speakers)
    return root


@pytest.fixture(scope="session")
def prepared_corpus(tmp_path_factory) -> Path:
    return write_prepared_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.fixture(scope="session")
def synthetic_corpus(tmp_path_factory) -> Path:
    """The built-in synthetic corpus (formant-synthesised, not speech), prepared as users prepare it."""
    from audio_vqvae.data.corpora import synthetic

    root = tmp_path_factory.mktemp("synthetic")
    synthetic.prepare(root, n_speakers=3, n_sentences=10)
    return root
