"""A small speaker classifier for judging voice conversion: MFCC statistics pooling and logistic regression.

Each utterance becomes one vector, the mean and standard deviation over its speech frames of
19 MFCCs (c1..c19, c0 dropped so loudness does not matter) and their deltas: the statistics
pooling of x-vectors (Snyder et al. 2018) applied to hand-made frame features instead of a
learned network. A multinomial logistic regression with an L2 penalty (scikit-learn's
``LogisticRegression``, L-BFGS in float64, deterministic) maps these to speakers. It needs no data beyond the corpus and
trains in well under a second on a few hundred utterances.

``train_speaker_classifier`` also learns from noisy copies of each training utterance (white noise
at 20, 10 and 5 dB SNR), the additive-noise augmentation of x-vector training (Snyder et al. 2018).
Without it the statistics of any noisy input fall outside what the clean utterances span, and the
classifier puts them all in one class: on the flite4 dev corpus, the real target readings with white
noise at 20 dB SNR were assigned their own speaker 48 % of the time and at 10 dB 25 % (chance), which
made it blind to the voice of a conversion that carries sampling noise. With the augmentation they are
assigned their own speaker at every SNR down to 0 dB, and the noisy copies of the source speaker stay
the source speaker's (``held_out_accuracy_noisy`` reports the check at 10 dB on the held-out part).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ...data.spectrum import cepstrum, deltas, log_mel_frames


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
    c = cepstrum(log_mel, n_mfcc)  # (N, n_mfcc)
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
        weight, bias = _softmax_regression(z, y, len(names), l2, iters)
        return cls(names, mean, std, torch.from_numpy(weight), torch.from_numpy(bias), sample_rate)

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


def _softmax_regression(
    z: np.ndarray, y: np.ndarray, n_classes: int, l2: float, iters: int
) -> tuple[np.ndarray, np.ndarray]:
    """Minimise ``mean cross-entropy + l2 * ||weight||^2`` (bias not penalised) with scikit-learn.

    ``LogisticRegression`` minimises ``C * sum cross-entropy + ||weight||^2 / 2``: the same optimum
    with ``C = 1 / (2 l2 B)``. With two classes it fits one logit difference ``v = w1 - w0``; the
    softmax optimum is ``w1 = -w0 = v / 2``, whose penalty is ``l2 ||v||^2 / 2``, so ``C = 1 / (l2 B)``.

    Args:
        z: (B, E) float64 standardised embeddings; y: (B,) class indices 0..S-1 (all present).
        n_classes: S; l2: penalty weight; iters: L-BFGS iterations at most.
    Returns:
        (S, E) weight and (S,) bias, float64.
    """
    from sklearn.linear_model import LogisticRegression  # ~0.9 s to import: only when a classifier is fitted

    binary = n_classes == 2
    C = 1.0 / (l2 * len(y) * (1 if binary else 2))
    fit = LogisticRegression(C=C, solver="lbfgs", max_iter=iters, tol=1e-6).fit(z, y)
    weight, bias = fit.coef_.astype(np.float64), fit.intercept_.astype(np.float64)
    if binary:  # (1, E) logit difference to the symmetric softmax parameters
        weight, bias = np.concatenate([-weight, weight]) / 2, np.concatenate([-bias, bias]) / 2
    return weight, bias


def embed(wavs: Sequence[Tensor], sample_rate: int) -> Tensor:
    """(B, E) speaker embeddings of waveforms (``speaker_embedding``)."""
    if not wavs:
        raise ValueError("no utterances to embed")
    return torch.stack([speaker_embedding(w, sample_rate) for w in wavs])


NOISE_SNRS_DB = (20.0, 10.0, 5.0)  # the noisy copies each training utterance adds
CHECK_SNR_DB = 10.0  # the SNR of the held-out robustness check


def add_white_noise(wav: Tensor, snr_db: float, generator: torch.Generator) -> Tensor:
    """``wav`` plus Gaussian white noise ``snr_db`` below its power (over the whole waveform); (T,) -> (T,)."""
    noise = torch.randn(wav.shape, generator=generator, dtype=torch.float32).to(wav.dtype)
    return wav + noise * wav.float().pow(2).mean().sqrt() * 10 ** (-snr_db / 20)


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
    wavs: Sequence[Tensor],
    speakers: Sequence[str],
    sample_rate: int,
    *,
    held_out_fraction: float = 0.25,
    seed: int = 0,
    noise_snrs_db: Sequence[float] = NOISE_SNRS_DB,
) -> tuple[SpeakerClassifier, dict[str, float | int | None]]:
    """Fit a classifier on part of the real utterances and their noisy copies, and measure it on the rest.

    Args:
        wavs, speakers: real utterances and their speakers.
        sample_rate: Hz.
        held_out_fraction: share of each speaker's utterances kept out of training.
        seed: seed of the split and of the noise.
        noise_snrs_db: each training utterance is also learned with white noise at each of these SNRs
            (``add_white_noise``); () trains on the clean utterances alone.
    Returns:
        The classifier (trained on the training part only) and ``held_out_accuracy`` on the held-out
        utterances, ``held_out_accuracy_noisy`` on them with white noise at ``CHECK_SNR_DB`` (both None
        when nothing is held out), ``n_train`` (real utterances, without the copies), ``n_held_out``,
        ``n_speakers``.
    """
    if len(wavs) != len(speakers):
        raise ValueError(f"{len(wavs)} utterances but {len(speakers)} speaker labels")
    train, held = held_out_split(speakers, held_out_fraction, seed)
    generator = torch.Generator().manual_seed(seed)
    x = embed(wavs, sample_rate)
    train_x = [x[train]]
    for snr in noise_snrs_db:
        train_x.append(embed([add_white_noise(wavs[i], snr, generator) for i in train], sample_rate))
    labels = [speakers[i] for i in train] * (1 + len(noise_snrs_db))
    clf = SpeakerClassifier.fit_embeddings(torch.cat(train_x), labels, sample_rate)
    accuracy = noisy = None
    if held:
        truth = [speakers[i] for i in held]
        predicted = [clf.speakers[i] for i in clf.predict_proba_embeddings(x[held]).argmax(1).tolist()]
        accuracy = float(np.mean([p == t for p, t in zip(predicted, truth)]))
        noisy_wavs = [add_white_noise(wavs[i], CHECK_SNR_DB, generator) for i in held]
        noisy = float(np.mean([p == t for p, t in zip(clf.predict(noisy_wavs), truth)]))
    info = {
        "held_out_accuracy": accuracy,
        "held_out_accuracy_noisy": noisy,
        "n_train": len(train),
        "n_held_out": len(held),
        "n_speakers": len(clf.speakers),
    }
    return clf, info
