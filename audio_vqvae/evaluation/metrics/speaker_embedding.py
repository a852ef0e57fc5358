"""Speaker similarity by a speaker-verification network: Resemblyzer's d-vectors and nearest centroids.

The MFCC classifier of ``metrics.speaker`` is trained in each run on a few utterances per speaker;
this judge was trained once, on thousands of speakers, to tell voices apart. Resemblyzer (Resemble
AI, Apache 2.0) is the speaker encoder of SV2TTS (Jia et al. 2018): a 3-layer LSTM trained with the
generalised end-to-end loss (Wan et al. 2018) on LibriSpeech, VoxCeleb 1 and 2. Its weights
(``pretrained.pt``, 17 MB) ship inside the ``resemblyzer`` wheel and run with torch on the CPU, no
download (``pip install -e ".[eval]"``).

An utterance becomes one 256-dimensional unit vector (``SpeakerEncoder.embed``): 16 kHz, the level
raised to -30 dBFS if below, pauses longer than about 0.2 s cut by webrtcvad (where that leaves
under ``MIN_SPEECH_SECONDS``, the whole utterance is kept), then the normalised mean of the
encoder's outputs on 1.6 s windows. A speaker's **centroid** is the normalised mean of its
utterances' vectors; voices are compared by **cosine similarity** (1: the same direction), and an
utterance is **classified** as the speaker of the nearest centroid. The centroids are made from the
same real utterances the MFCC classifier is trained on (``speaker.held_out_split``, same fraction and
seed), and the held-out rest measures the nearest-centroid accuracy on real speech.

Cosines only mean something beside those of real speech, which ``embedding_speaker_metrics``
reports: between sentences of espeak-ng voices, 0.74-0.91 for one voice, 0.48-0.68 for two.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import sys
import types
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ...errors import MissingPackageError
from .speaker import held_out_split

INSTALL_HINT = 'pip install -e ".[eval]"'
SAMPLE_RATE = 16000  # the encoder's rate
MIN_SPEECH_SECONDS = 0.25  # the voice activity detector may not leave less than this (or the whole utterance)
DEFINITION = "Resemblyzer d-vectors (GE2E speaker encoder, 256-d), cosine similarity to speaker centroids"


@contextlib.contextmanager
def _pkg_resources_shim() -> Iterator[None]:
    """webrtcvad 2.0.10 (resemblyzer's voice activity detector) reads its version with ``pkg_resources``,
    which setuptools 82 and later no longer have: a stand-in answers from ``importlib.metadata`` while
    it is imported, and is removed afterwards."""
    if "pkg_resources" in sys.modules or "webrtcvad" in sys.modules:
        yield
        return
    shim = types.ModuleType("pkg_resources")
    shim.get_distribution = lambda name: types.SimpleNamespace(version=importlib.metadata.version(name))
    sys.modules["pkg_resources"] = shim
    try:
        yield
    finally:
        if sys.modules.get("pkg_resources") is shim:
            del sys.modules["pkg_resources"]


class SpeakerEncoder:
    """Resemblyzer's pretrained ``VoiceEncoder`` and its preprocessing.

    Args:
        device: where the LSTM runs (default the CPU); threads are torch's.
    Raises:
        MissingPackageError: resemblyzer (or its webrtcvad) is not installed (``pip install -e ".[eval]"``).
    """

    dim = 256

    def __init__(self, device: str | torch.device = "cpu") -> None:
        try:
            with _pkg_resources_shim(), warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)  # its scipy.ndimage.morphology import
                import resemblyzer
        except ImportError as e:
            raise MissingPackageError(
                f"the speaker-embedding metrics need resemblyzer, which is not installed: {INSTALL_HINT}", name=e.name
            ) from e
        self._audio = resemblyzer.audio
        self._encoder = resemblyzer.VoiceEncoder(device, verbose=False)

    def embed(self, wav: Tensor, sample_rate: int) -> Tensor:
        """(T,) waveform at ``sample_rate`` -> (256,) float32 unit vector; zeros for an empty or silent one."""
        from ...data.audio import resample

        x = wav.detach().to("cpu", torch.float32).reshape(-1)
        if int(sample_rate) != SAMPLE_RATE and x.numel():
            x = resample(x, int(sample_rate), SAMPLE_RATE)
        if not x.numel() or not bool(x.abs().max() > 0):
            return torch.zeros(self.dim)
        audio = self._audio
        loud = audio.normalize_volume(x.numpy(), audio.audio_norm_target_dBFS, increase_only=True)
        speech = audio.trim_long_silences(loud.clip(-1, 1))
        if speech.size < min(loud.size, MIN_SPEECH_SECONDS * SAMPLE_RATE):
            speech = loud
        with np.errstate(invalid="ignore", divide="ignore"):
            e = self._encoder.embed_utterance(speech.astype(np.float32))
        return torch.from_numpy(np.nan_to_num(e, nan=0.0)).float()

    def embed_all(self, wavs: Sequence[Tensor], sample_rate: int) -> Tensor:
        """(B, 256) ``embed`` of each waveform (B may be 0)."""
        return torch.stack([self.embed(w, sample_rate) for w in wavs]) if wavs else torch.zeros(0, self.dim)


def unit(x: Tensor) -> Tensor:
    """Rows of (..., E) scaled to unit length; zero rows stay zero."""
    return x / x.norm(dim=-1, keepdim=True).clamp(min=1e-12)


def centroids(x: Tensor, speakers: Sequence[str]) -> tuple[list[str], Tensor]:
    """Sorted speaker names and their (S, E) centroids: the unit-length mean of each one's (B, E) embeddings."""
    if x.size(0) != len(speakers):
        raise ValueError(f"{x.size(0)} embeddings for {len(speakers)} speaker labels")
    names = sorted(set(speakers))
    return names, unit(torch.stack([x[[i for i, s in enumerate(speakers) if s == n]].mean(0) for n in names]))


def nearest(x: Tensor, names: Sequence[str], c: Tensor) -> tuple[list[str | None], Tensor]:
    """Each (B, E) embedding's nearest centroid of (S, E) ``c`` by cosine, and the (B, S) cosines.
    A zero embedding (silence) is nobody's: None."""
    cos = unit(x) @ unit(c).T  # (B, S)
    found = [names[i] if bool(v.abs().any()) else None for i, v in zip(cos.argmax(1).tolist(), x)]
    return found, cos


def embedding_speaker_metrics(
    encoder: SpeakerEncoder,
    real_wavs: Sequence[Tensor],
    real_speakers: Sequence[str],
    conversions: Sequence[tuple[Tensor, str, str]],
    sample_rate: int,
    *,
    held_out_fraction: float = 0.25,
    seed: int = 0,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Whose voice the conversions have, by nearest centroid of speaker-verification embeddings.

    Args:
        encoder: a ``SpeakerEncoder``.
        real_wavs, real_speakers: real (T,) utterances and their speakers, split as the MFCC classifier
            splits them (``held_out_split(real_speakers, held_out_fraction, seed)``): the training part
            makes the centroids, the held-out part measures them.
        conversions: (converted (T,) waveform, source speaker, target speaker) of each pair.
        sample_rate: Hz of every waveform.
    Returns:
        The summary: ``accuracy`` (held-out real utterances classified as their speaker; None when
        none is held out), ``real_own_similarity`` and ``real_other_similarity`` (their mean cosine to
        their own speaker's centroid and to the other centroids), ``target_rate`` and ``source_rate``
        (conversions classified as the target, and as the source among pairs whose source speaker has
        a centroid: ``n_source_known``), ``target_similarity`` and ``source_similarity`` (mean cosine of
        the conversions to those centroids), ``centroid_utterances``, ``held_out_utterances``,
        ``speakers``, ``definition``. And one dict per conversion: ``embedding_predicted_speaker``,
        ``embedding_target_similarity``, ``embedding_source_similarity`` (None for an unknown source).
    Raises:
        ValueError: a target speaker without real utterances, or labels not one per utterance.
    """
    speakers = [str(s) for s in real_speakers]
    if len(real_wavs) != len(speakers):
        raise ValueError(f"{len(real_wavs)} utterances but {len(speakers)} speaker labels")
    train, held = held_out_split(speakers, held_out_fraction, seed)
    x = encoder.embed_all(list(real_wavs), sample_rate)  # (B, E)
    names, c = centroids(x[train], [speakers[i] for i in train])
    missing = sorted({str(t) for _, _, t in conversions} - set(names))
    if missing:
        raise ValueError(f"target speaker(s) {missing} have no real utterances to make a centroid of")
    accuracy = own = other = None
    if held:
        found, cos = nearest(x[held], names, c)
        truth = [names.index(speakers[i]) for i in held]
        accuracy = float(np.mean([f == speakers[i] for f, i in zip(found, held)]))
        own = float(np.mean([float(cos[j, t]) for j, t in enumerate(truth)]))
        others = [float(cos[j, k]) for j, t in enumerate(truth) for k in range(len(names)) if k != t]
        other = float(np.mean(others)) if others else None
    found, cos = nearest(encoder.embed_all([w for w, _, _ in conversions], sample_rate), names, c)
    rows = []
    for (_, source, target), pred, sims in zip(conversions, found, cos):
        source, target = str(source), str(target)
        rows.append(
            {
                "embedding_predicted_speaker": pred,
                "embedding_target_similarity": float(sims[names.index(target)]),
                "embedding_source_similarity": float(sims[names.index(source)]) if source in names else None,
            }
        )
    known = [(r, s) for r, (_, s, _) in zip(rows, conversions) if str(s) in names]

    def mean(values: list[float]) -> float | None:
        return float(np.mean(values)) if values else None

    summary = {
        "definition": DEFINITION,
        "speakers": names,
        "centroid_utterances": len(train),
        "held_out_utterances": len(held),
        "accuracy": accuracy,
        "real_own_similarity": own,
        "real_other_similarity": other,
        "target_rate": mean([r["embedding_predicted_speaker"] == str(t) for r, (_, _, t) in zip(rows, conversions)]),
        "source_rate": mean([r["embedding_predicted_speaker"] == str(s) for r, s in known]),
        "n_source_known": len(known),
        "target_similarity": mean([r["embedding_target_similarity"] for r in rows]),
        "source_similarity": mean([r["embedding_source_similarity"] for r, _ in known]),
    }
    return summary, rows
