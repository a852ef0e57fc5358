"""Language-model metrics over code sequences: bits per code of a prior, and n-gram baselines.

Held-out negative log-likelihood in bits per code (and, times the code rate, bits per second) says
how predictable the units are. A learned prior has to beat the unigram and bigram models estimated
on the same training codes to show that it models more than code frequencies and adjacent pairs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor
from torch.nn import functional as F

LOG2 = math.log(2.0)


def ngram_bits(
    train: Sequence[Tensor], test: Sequence[Tensor], codebook_size: int, order: int, alpha: float = 0.1
) -> float:
    """Bits per code of ``test`` under an add-``alpha`` smoothed unigram (order 1) or bigram (order 2)
    model counted on ``train``. A bigram's first code is scored by the unigram model.

    Args:
        train, test: (L,) int64 code sequences in [0, K).
        codebook_size: K.
        order: 1 or 2.
        alpha: added to every count (Lidstone smoothing), so unseen codes and pairs keep some probability.
    Returns:
        Mean bits per code over all test codes.
    """
    if order not in (1, 2):
        raise ValueError(f"order must be 1 or 2, got {order}")
    K = codebook_size
    unigram = torch.full((K,), alpha, dtype=torch.float64)
    bigram = torch.full((K, K), alpha, dtype=torch.float64)
    for seq in train:
        seq = seq.long().view(-1)
        unigram += torch.bincount(seq, minlength=K).double()
        if seq.numel() > 1:
            bigram.view(-1).index_add_(0, seq[:-1] * K + seq[1:], torch.ones(seq.numel() - 1, dtype=torch.float64))
    log_unigram = (unigram / unigram.sum()).log()
    log_bigram = (bigram / bigram.sum(1, keepdim=True)).log()
    total, count = 0.0, 0
    for seq in test:
        seq = seq.long().view(-1)
        if not seq.numel():
            continue
        if order == 1:
            total -= float(log_unigram[seq].sum())
        else:
            total -= float(log_unigram[seq[0]]) + float(log_bigram[seq[:-1], seq[1:]].sum())
        count += seq.numel()
    if not count:
        raise ValueError("no test codes to score")
    return total / count / LOG2


@torch.no_grad()
def prior_bits(prior, sequences: Sequence[Tensor], speakers: Sequence[int] | None = None) -> float:
    """Bits per code of ``sequences`` under a ``models.prior.CodePrior``.

    A sequence longer than the prior's ``max_len`` is scored in consecutive windows of ``max_len``,
    each from a fresh context (the prior never saw more in training).

    Args:
        prior: the model (put in eval mode here).
        sequences: (L,) int64 code sequences.
        speakers: one id per sequence for a speaker-conditioned prior.
    Returns:
        Mean bits per code over all codes.
    """
    prior.eval()
    device = prior.head.weight.device
    total, count = 0.0, 0
    for i, seq in enumerate(sequences):
        seq = seq.long().view(-1).to(device)
        speaker = None if speakers is None else torch.tensor([speakers[i]], device=device)
        for start in range(0, seq.numel(), prior.max_len):
            window = seq[start : start + prior.max_len].unsqueeze(0)  # (1, L)
            logits = prior(window, speaker)  # (1, L, K)
            total += float(F.cross_entropy(logits[0].float(), window[0], reduction="sum"))
            count += window.numel()
    if not count:
        raise ValueError("no codes to score")
    return total / count / LOG2
