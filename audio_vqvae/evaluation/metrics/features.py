"""The standard MFCC k-means unit baseline of the evaluation, as ZeroSpeech and most unit papers build it.

Frames (``baseline_frames``): 13 MFCCs with c0, deltas and delta-deltas over +-40 ms whatever the hop
(librosa's default 9-frame regression window at a 10 ms hop; 21 frames at hop 64, 5 at hop 320), mean
and variance normalised over each utterance; on the model's code grid, 25 ms windows. Units
(``KMeansUnits``): scikit-learn's k-means with the model's K, fitted on every frame of the training
utterances. An earlier build (deltas over +-2 frames whatever the hop, global standardisation, k-means
on a 100,000-frame sample) is weaker: issue 25 measured it 7 points of phone accuracy below the standard
build with an evaluator outside this package.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ...data.spectrum import mfcc_frames
from ...errors import OutputExistsError
from ...fileio import atomic_write

DELTA_SPAN_S = 0.040  # the deltas' regression reaches this far on each side (librosa: 4 frames of 10 ms)
CMVN_FLOOR = 1e-5  # a dimension that does not vary in an utterance is divided by this, not by 0

# One k-means++ start, then Lloyd iterations until the centres move less than sklearn's default tolerance.
KMEANS_OPTIONS = {"n_init": 1, "tol": 1e-4}


def delta_width(sample_rate: int, hop_length: int) -> int:
    """Frames on each side of the deltas' regression that span ``DELTA_SPAN_S`` at this hop (at least 1)."""
    return max(1, round(DELTA_SPAN_S * sample_rate / hop_length))


def cmvn(frames: Tensor) -> Tensor:
    """Cepstral mean and variance normalisation over one utterance: (N, F) -> (N, F), each dimension's
    mean 0 and (population) standard deviation 1 over the N frames."""
    mean = frames.mean(0, keepdim=True)
    std = frames.std(0, unbiased=False, keepdim=True).clamp_min(CMVN_FLOOR)
    return (frames - mean) / std


def baseline_frames(wav: Tensor, sample_rate: int, hop_length: int, n_frames: int | None = None) -> Tensor:
    """The baseline's features of one utterance on the code grid (see the module's docstring).

    Args:
        wav: (T,) waveform; sample_rate: Hz; hop_length: samples per code.
        n_frames: N; None: T // hop_length.
    Returns:
        (N, 39) float32: c0..c12, their deltas and delta-deltas, CMVN over the utterance.
    """
    width = delta_width(sample_rate, hop_length)
    return cmvn(mfcc_frames(wav, sample_rate, hop_length, n_frames=n_frames, delta_width=width))


def baseline_description(sample_rate: int, hop_length: int, k: int, n_frames: int) -> str:
    """One line naming the baseline as built, for reports."""
    return (
        f"k-means (K={k}, scikit-learn, {n_frames} training frames) on 39-dim MFCC (c0-c12) + delta + delta2 "
        f"(+-{delta_width(sample_rate, hop_length)} frames = +-{1000 * DELTA_SPAN_S:g} ms), per-utterance CMVN, "
        f"at {sample_rate / hop_length:g} Hz"
    )


@dataclass
class KMeansUnits:
    """k-means units: the unit-discovery baseline, in scikit-learn.

    ``model`` is a fitted ``sklearn.cluster.KMeans`` on ``baseline_frames`` (already normalised per
    utterance, so no global scaler). fairseq and textlesslib (``learn_kmeans.py``) fit
    ``MiniBatchKMeans`` because their corpora are large; full-batch Lloyd on the frames fitted here
    costs minutes at most and is the stronger fit. ``save`` writes it with joblib, so their
    ``quantize_with_kmeans.py`` (``joblib.load(path).predict(frames)``) gives the units that the
    evaluation scored, from the same ``baseline_frames``; ``n_clusters`` (K) is what textlesslib's
    ``KMeansQuantizer`` reads as its vocabulary size.

    Attributes:
        model: the fitted k-means; ``model.predict`` maps (N, F) frames to (N,) units.
        n_fit_frames: the frames it was fitted on.
    """

    model: Any
    n_fit_frames: int

    @classmethod
    def fit(
        cls, frames: Sequence[Tensor], k: int, *, iters: int = 100, max_frames: int | None = None, seed: int = 0
    ) -> KMeansUnits:
        """k-means (Lloyd) with k-means++ seeding, deterministic for a given seed.

        Args:
            frames: (N_i, F) feature frames of each training utterance.
            k: number of clusters K (the model's codebook size, for a like-for-like baseline).
            iters: Lloyd iterations at most (``KMeans.max_iter``; it stops earlier once converged).
            max_frames: fit on at most this many frames drawn at random (all frames are still
                assigned); None, the default, fits on every frame.
            seed: seed of the subsample and of the k-means (no global RNG is touched).
        """
        from sklearn.cluster import KMeans  # ~0.9 s to import: only when a baseline is fitted

        x = torch.cat([f.detach().to("cpu", torch.float32) for f in frames]).numpy()  # (M, F)
        if x.shape[0] < k:
            raise ValueError(f"k-means with K = {k} needs at least {k} frames, got {x.shape[0]}")
        if max_frames is not None and x.shape[0] > max_frames:
            x = x[np.sort(np.random.default_rng(seed).choice(x.shape[0], max_frames, replace=False))]
        return cls(KMeans(k, max_iter=iters, random_state=seed, **KMEANS_OPTIONS).fit(x), x.shape[0])

    @property
    def centroids(self) -> Tensor:
        """(K, F) float32 cluster centres."""
        return torch.from_numpy(self.model.cluster_centers_).float()

    def assign(self, frames: Tensor) -> Tensor:
        """(N, F) frames to (N,) int64 cluster indices (nearest centroid): ``model.predict``."""
        x = frames.detach().to("cpu", torch.float32).numpy()
        return torch.from_numpy(self.model.predict(x).astype(np.int64))

    def vectors(self, units: Tensor) -> Tensor:
        """(N,) cluster indices to their (N, F) centroids: the baseline's counterpart of code vectors."""
        return self.centroids[units]

    def save(self, path: str | Path) -> Path:
        """Write ``model`` with ``joblib.dump``, atomically (fairseq/textlesslib load it with ``joblib.load``).

        Raises:
            OutputExistsError: ``path`` is a folder. An existing file is replaced.
        """
        import joblib

        path = Path(path)
        if path.is_dir():
            raise OutputExistsError(f"{path}: is a folder")
        return atomic_write(path, lambda f: joblib.dump(self.model, f))
