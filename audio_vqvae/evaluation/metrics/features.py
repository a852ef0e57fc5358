"""The MFCC k-means unit baseline of the evaluation (frames from ``data.spectrum.mfcc_frames``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ...errors import OutputExistsError
from ...fileio import atomic_write

# One k-means++ start, then Lloyd iterations to max_iter (tol 0): about 8 s for K = 512 on 100,000 frames.
KMEANS_OPTIONS = {"n_init": 1, "tol": 0.0}


@dataclass
class KMeansUnits:
    """k-means units on standardised frames: the unit-discovery baseline, in scikit-learn.

    ``model`` is a fitted ``sklearn.pipeline.Pipeline`` of a ``StandardScaler`` (features are
    standardised so that no dimension dominates the Euclidean k-means) and a ``KMeans``. fairseq and
    textlesslib (``learn_kmeans.py``) fit ``MiniBatchKMeans`` because their corpora are large; on the at
    most ``max_frames`` frames fitted here the full batch costs seconds and keeps the baseline as strong
    as the in-house full-batch k-means it replaced (mini-batches scored PNMI 0.605 against its 0.633 on a
    small synthetic corpus). ``save`` writes it with joblib, so their ``quantize_with_kmeans.py``
    (``joblib.load(path).predict(frames)``) gives the units that the evaluation scored, from the same
    ``mfcc_frames``. The pipeline also carries ``n_clusters`` (K), which textlesslib's ``KMeansQuantizer``
    reads as its vocabulary size, so that loads it as it is too.

    Attributes:
        model: the fitted pipeline; ``model.predict`` maps (N, F) raw frames to (N,) units.
    """

    model: Any

    @classmethod
    def fit(
        cls, frames: Sequence[Tensor], k: int, *, iters: int = 20, max_frames: int | None = 100_000, seed: int = 0
    ) -> KMeansUnits:
        """k-means (Lloyd) with k-means++ seeding, deterministic for a given seed.

        Args:
            frames: (N_i, F) feature frames of each training utterance.
            k: number of clusters K (the model's codebook size, for a like-for-like baseline).
            iters: Lloyd iterations at most (``KMeans.max_iter``).
            max_frames: fit on at most this many frames drawn at random (all frames are still
                assigned); None uses every frame. The standardisation uses every frame.
            seed: seed of the subsample and of the k-means (no global RNG is touched).
        """
        from sklearn.cluster import KMeans  # ~0.9 s to import: only when a baseline is fitted
        from sklearn.pipeline import Pipeline
        from sklearn.preprocessing import StandardScaler

        x = torch.cat([f.detach().to("cpu", torch.float32) for f in frames]).numpy()  # (M, F)
        if x.shape[0] < k:
            raise ValueError(f"k-means with K = {k} needs at least {k} frames, got {x.shape[0]}")
        scaler = StandardScaler().fit(x)
        if max_frames is not None and x.shape[0] > max_frames:
            x = x[np.sort(np.random.default_rng(seed).choice(x.shape[0], max_frames, replace=False))]
        kmeans = KMeans(k, max_iter=iters, random_state=seed, **KMEANS_OPTIONS).fit(scaler.transform(x))
        pipeline = Pipeline([("scale", scaler), ("kmeans", kmeans)])
        pipeline.n_clusters = k  # textlesslib's KMeansQuantizer reads its vocab_size from the loaded object
        return cls(pipeline)

    @property
    def centroids(self) -> Tensor:
        """(K, F) float32 cluster centres in the standardised space."""
        return torch.from_numpy(self.model[-1].cluster_centers_).float()

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
