"""How phone-like a code sequence is: its codes read as phones, scored by a phone bigram of real speech.

Each code is read as the phone it most often covers in aligned real speech (the mapping of the VQ-VAE
paper's phone accuracy, ``units.phone_mapping_accuracy``), and the frame-level phone sequence is
scored in bits per frame under an add-alpha bigram of the aligned real speech's frame labels, which
knows both how long phones last and which follows which. Real held-out codes read this way set the
level to reach (above that of the clean alignments, since a code's phone is right about half the
time); codes drawn independently from their unigram frequencies set the level of codes with no
sequential structure. ``mean_phone_frames`` (frames per run of one phone) says the same of durations.
(Bits per phone of the merged runs does not separate them: runs of independent draws are short and
mostly of the commonest phones, which such a bigram finds likely.)
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

LOG2 = math.log(2.0)


def code_to_phone(codes: Sequence[Tensor], labels: Sequence[Sequence[str]], codebook_size: int) -> list[str]:
    """The phone each code most often covers in aligned frames; a code never seen gets the commonest phone.

    Args:
        codes: (N_i,) codes per utterance; labels: N_i phone labels each (``alignment.frame_labels``).
    Returns:
        K phone labels (ties go to the phone that sorts first).
    """
    phones = sorted({p for seq in labels for p in seq})
    if not phones:
        raise ValueError("no aligned frames to map codes to phones")
    index = {p: i for i, p in enumerate(phones)}
    counts = np.zeros((codebook_size, len(phones)), dtype=np.int64)
    for c, seq in zip(codes, labels):
        if len(seq) != c.numel():
            raise ValueError(f"{c.numel()} codes but {len(seq)} phone labels")
        np.add.at(counts, (c.numpy(), [index[p] for p in seq]), 1)
    commonest = int(counts.sum(0).argmax())
    return [phones[int(row.argmax())] if row.sum() else phones[commonest] for row in counts]


def phone_runs(seq: Sequence[str]) -> list[str]:
    """Consecutive repeats merged: a a b b b a -> a b a."""
    return [p for i, p in enumerate(seq) if i == 0 or p != seq[i - 1]]


class PhoneBigram:
    """An add-``alpha`` bigram over phone label sequences, with a begin and an end symbol.

    Args:
        sequences: label sequences to count (frame labels, or phones with runs merged).
        alpha: added to every count (phones seen anywhere in ``sequences``, plus ``<unk>``).
    """

    def __init__(self, sequences: Sequence[Sequence[str]], alpha: float = 0.1):
        vocab = sorted({p for s in sequences for p in s}) + ["<unk>", "</s>"]
        self.index = {p: i for i, p in enumerate(vocab)}
        self.begin = len(vocab)  # a row of its own, never predicted
        counts = np.full((len(vocab) + 1, len(vocab)), alpha)
        for s in sequences:
            ids = [self.begin] + [self.index[p] for p in s] + [self.index["</s>"]]
            np.add.at(counts, (ids[:-1], ids[1:]), 1)
        self.log_prob = np.log(counts / counts.sum(1, keepdims=True))

    def bits_per_phone(self, sequences: Sequence[Sequence[str]]) -> float:
        """Mean bits per label (the end symbol counted as one) of ``sequences``: per phone of merged runs,
        per frame of frame labels."""
        unk, total, n = self.index["<unk>"], 0.0, 0
        for s in sequences:
            ids = [self.begin] + [self.index.get(p, unk) for p in s] + [self.index["</s>"]]
            total -= float(self.log_prob[ids[:-1], ids[1:]].sum())
            n += len(ids) - 1
        if not n:
            raise ValueError("no phones to score")
        return total / n / LOG2


def phone_likeness(
    sequences: Sequence[Tensor], mapping: Sequence[str], bigram: PhoneBigram, frame_rate: float
) -> dict[str, float]:
    """``bits_per_frame`` of code sequences read as phones (``bigram`` of frame labels), their
    ``mean_phone_frames`` (frames per phone run) and ``phones_per_second``."""
    frames = [[mapping[int(c)] for c in seq.tolist()] for seq in sequences]
    n_runs, n_frames = sum(len(phone_runs(f)) for f in frames), sum(seq.numel() for seq in sequences)
    return {
        "bits_per_frame": bigram.bits_per_phone(frames),
        "mean_phone_frames": n_frames / max(1, n_runs),
        "phones_per_second": n_runs / max(1e-9, n_frames / frame_rate),
    }


def unigram_draws(train: Sequence[Tensor], lengths: Sequence[int], codebook_size: int, seed: int = 0) -> list[Tensor]:
    """Code sequences of ``lengths`` drawn independently from the codes' frequencies in ``train``: the
    level of codes without sequential structure."""
    counts = torch.bincount(torch.cat([t.reshape(-1) for t in train]), minlength=codebook_size).double()
    generator = torch.Generator().manual_seed(seed)
    return [torch.multinomial(counts, n, replacement=True, generator=generator) for n in lengths]
