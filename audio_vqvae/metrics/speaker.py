"""A small speaker classifier for judging voice conversion: MFCC statistics pooling and logistic regression.

Each utterance becomes one vector, the mean and standard deviation over its speech frames of
19 MFCCs (c1..c19, c0 dropped so loudness does not matter) and their deltas: the statistics
pooling of x-vectors (Snyder et al. 2018) applied to hand-made frame features instead of a
learned network. A multinomial logistic regression with an L2 penalty (fitted by scipy's
L-BFGS-B in float64, deterministic) maps these to speakers. It needs no data beyond the corpus and
trains in well under a second on a few hundred utterances.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from .features import dct_matrix, deltas, log_mel_frames


def speaker_embedding(
    wav: Tensor, sample_rate: int, *, n_mfcc: int = 20, n_mels: int = 40, speech_db: float | None = 30.0
) -> Tensor:
    """Mean and std over speech frames of MFCCs c1.. and their deltas (25 ms frames every 10 ms).

    Args:
        wav: (T,) waveform.
        sample_rate: Hz.
        n_mfcc: cepstral coefficients computed; c0 is dropped, so n_mfcc - 1 are kept.
        n_mels: mel bands.
        speech_db: frames more than this many dB below the loudest frame are silence and left
            out (a crude energy VAD, so pauses do not dilute the statistics); None keeps all.
    Returns:
        (4 * (n_mfcc - 1),) float32: [mean(c), mean(delta), std(c), std(delta)].
    """
    hop = max(1, round(0.010 * sample_rate))
    log_mel = log_mel_frames(wav, sample_rate, hop, n_mels=n_mels, win_length=round(0.025 * sample_rate))
    if log_mel.size(0) < 2:
        raise ValueError(f"utterance too short for a speaker embedding: {wav.numel()} samples")
    c = log_mel @ dct_matrix(n_mels, n_mfcc).T  # (N, n_mfcc)
    feats = torch.cat([c[:, 1:], deltas(c[:, 1:])], dim=1)  # (N, 2 (n_mfcc - 1))
    if speech_db is not None:
        energy = torch.logsumexp(log_mel, dim=1) * (10.0 / np.log(10.0))  # (N,) dB, up to a constant
        speech = energy >= energy.max() - speech_db
        if int(speech.sum()) >= 2:
            feats = feats[speech]
    return torch.cat([feats.mean(0), feats.std(0, unbiased=False)])


@dataclass
class SpeakerClassifier:
    """Multinomial logistic regression on standardised speaker embeddings.

    Attributes:
        speakers: class names; class i is ``speakers[i]``.
        mean, std: (E,) embedding statistics of the training utterances.
        weight: (S, E); bias: (S,).
        sample_rate: the rate the embeddings are computed at.
    """

    speakers: list[str]
    mean: Tensor
    std: Tensor
    weight: Tensor
    bias: Tensor
    sample_rate: int

    @classmethod
    def fit(
        cls, wavs: Sequence[Tensor], speakers: Sequence[str], sample_rate: int, *, l2: float = 1e-2, iters: int = 200
    ) -> SpeakerClassifier:
        """Train on real utterances.

        Args:
            wavs: (T_i,) waveforms.
            speakers: each one's speaker name (at least two distinct speakers).
            sample_rate: Hz.
            l2: weight of the squared-norm penalty on ``weight`` (added to the mean cross-entropy).
            iters: L-BFGS iterations at most.
        """
        return cls.fit_embeddings(embed(wavs, sample_rate), speakers, sample_rate, l2=l2, iters=iters)

    @classmethod
    def fit_embeddings(
        cls, x: Tensor, speakers: Sequence[str], sample_rate: int, *, l2: float = 1e-2, iters: int = 200
    ) -> SpeakerClassifier:
        """``fit`` on precomputed (B, E) embeddings."""
        names = sorted(set(speakers))
        if len(names) < 2:
            raise ValueError(f"a speaker classifier needs at least two speakers, got {names}")
        if x.size(0) != len(speakers):
            raise ValueError(f"{x.size(0)} embeddings for {len(speakers)} speaker labels")
        y = np.array([names.index(s) for s in speakers])
        x = x.double()
        mean, std = x.mean(0), x.std(0, unbiased=False).clamp(min=1e-8)
        z = ((x - mean) / std).numpy()  # (B, E)
        S, E = len(names), z.shape[1]
        onehot = np.eye(S)[y]  # (B, S)

        def loss_and_grad(theta: np.ndarray) -> tuple[float, np.ndarray]:
            w, b = theta[: S * E].reshape(S, E), theta[S * E :]
            logits = z @ w.T + b  # (B, S)
            logits -= logits.max(1, keepdims=True)
            log_p = logits - np.log(np.exp(logits).sum(1, keepdims=True))
            err = (np.exp(log_p) - onehot) / len(y)  # d(mean cross-entropy) / d(logits)
            loss = -np.sum(onehot * log_p) / len(y) + l2 * np.sum(w * w)
            return loss, np.concatenate([(err.T @ z + 2 * l2 * w).ravel(), err.sum(0)])

        from scipy.optimize import minimize  # scipy, not torch.optim: no torch._dynamo import (~1.5 s)

        fit = minimize(loss_and_grad, np.zeros(S * E + S), jac=True, method="L-BFGS-B", options={"maxiter": iters})
        weight = torch.from_numpy(fit.x[: S * E].reshape(S, E).copy())
        bias = torch.from_numpy(fit.x[S * E :].copy())
        return cls(names, mean, std, weight, bias, sample_rate)

    def predict_proba_embeddings(self, x: Tensor) -> Tensor:
        """(B, E) embeddings to (B, S) speaker posteriors."""
        z = (x.double() - self.mean) / self.std
        return torch.softmax(z @ self.weight.T + self.bias, dim=1)

    def predict_proba(self, wavs: Sequence[Tensor]) -> Tensor:
        """(B, S) speaker posteriors of waveforms at ``sample_rate``."""
        return self.predict_proba_embeddings(embed(wavs, self.sample_rate))

    def predict(self, wavs: Sequence[Tensor]) -> list[str]:
        """The most likely speaker of each waveform."""
        return [self.speakers[i] for i in self.predict_proba(wavs).argmax(1).tolist()]


def embed(wavs: Sequence[Tensor], sample_rate: int) -> Tensor:
    """(B, E) speaker embeddings of waveforms (``speaker_embedding``)."""
    if not wavs:
        raise ValueError("no utterances to embed")
    return torch.stack([speaker_embedding(w, sample_rate) for w in wavs])


def held_out_split(speakers: Sequence[str], fraction: float = 0.25, seed: int = 0) -> tuple[list[int], list[int]]:
    """Indices (train, held_out): about ``fraction`` of each speaker's utterances held out, at least one
    when the speaker has two or more, never all of them."""
    if not 0 <= fraction < 1:
        raise ValueError(f"fraction must be in [0, 1), got {fraction}")
    rng = np.random.default_rng(seed)
    train, held = [], []
    for s in sorted(set(speakers)):
        idx = [i for i, t in enumerate(speakers) if t == s]
        rng.shuffle(idx)
        n_held = min(len(idx) - 1, max(1, round(fraction * len(idx)))) if fraction > 0 else 0
        held += idx[:n_held]
        train += idx[n_held:]
    return sorted(train), sorted(held)


def train_speaker_classifier(
    wavs: Sequence[Tensor], speakers: Sequence[str], sample_rate: int, *, held_out_fraction: float = 0.25, seed: int = 0
) -> tuple[SpeakerClassifier, dict[str, float | int | None]]:
    """Fit a classifier on part of the real utterances and measure it on the rest.

    Args:
        wavs, speakers: real utterances and their speakers.
        sample_rate: Hz.
        held_out_fraction: share of each speaker's utterances kept out of training.
        seed: seed of the split.
    Returns:
        The classifier (trained on the training part only) and ``held_out_accuracy`` (None when
        nothing is held out), ``n_train``, ``n_held_out``, ``n_speakers``.
    """
    if len(wavs) != len(speakers):
        raise ValueError(f"{len(wavs)} utterances but {len(speakers)} speaker labels")
    x = embed(wavs, sample_rate)
    train, held = held_out_split(speakers, held_out_fraction, seed)
    clf = SpeakerClassifier.fit_embeddings(x[train], [speakers[i] for i in train], sample_rate)
    accuracy = None
    if held:
        predicted = clf.predict_proba_embeddings(x[held]).argmax(1).tolist()
        accuracy = float(np.mean([clf.speakers[p] == speakers[i] for p, i in zip(predicted, held)]))
    info = {
        "held_out_accuracy": accuracy,
        "n_train": len(train),
        "n_held_out": len(held),
        "n_speakers": len(clf.speakers),
    }
    return clf, info
