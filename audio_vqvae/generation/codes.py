"""Sampling code sequences from a learned prior (``models.prior.CodePrior``): temperature, top-k, top-p.

Decoding is incremental (the prior's key/value cache), so each code costs one position's pass
however long the sequence is. A prompt is fed through the same cache and then continued.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..models.prior import CodePrior


def filter_logits(logits: Tensor, top_k: int | None = None, top_p: float | None = None) -> Tensor:
    """Logits with all but the ``top_k`` largest, and all outside the smallest set whose probability
    reaches ``top_p`` (nucleus sampling, Holtzman et al. 2020), set to -inf; the most likely code always stays.

    Args:
        logits: (B, K).
        top_k: keep this many; None or >= K: all.
        top_p: in (0, 1]; None or 1: all.
    Returns:
        (B, K) float logits.
    """
    logits = logits.float()
    if top_k is not None:
        if top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {top_k}")
        if top_k < logits.size(-1):
            kth = logits.topk(top_k, dim=-1).values[:, -1:]  # (B, 1)
            logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1.0:
        if not top_p > 0.0:
            raise ValueError(f"top_p must be in (0, 1], got {top_p}")
        ordered, order = logits.sort(dim=-1, descending=True)  # (B, K) each
        probs = ordered.softmax(-1)
        drop_sorted = probs.cumsum(-1) - probs >= top_p  # the codes ranked above already reach top_p
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)  # back to code order
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


@torch.no_grad()
def sample_codes(
    prior: CodePrior,
    n_codes: int,
    *,
    batch: int = 1,
    speaker: Tensor | None = None,
    prompt: Tensor | None = None,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Sample code sequences, from scratch or continuing a prompt.

    Args:
        prior: the model (put in eval mode here).
        n_codes: codes to sample after the prompt.
        batch: sequences, when there is no prompt.
        speaker: (B,) int64 ids for a speaker-conditioned prior.
        prompt: (B, P) int64 codes each sequence starts with; P + n_codes <= max_len.
        temperature: logits are divided by it; 0 is greedy.
        top_k, top_p: see ``filter_logits``.
        generator: the random stream (on the prior's device).
    Returns:
        (B, P + n_codes) int64 codes: the prompt, then the samples.
    """
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    prior.eval()
    device = prior.head.weight.device
    prompt = torch.zeros(batch, 0, dtype=torch.long, device=device) if prompt is None else prompt.to(device).long()
    if prompt.dim() != 2:
        raise ValueError(f"prompt must have shape (B, P), got {tuple(prompt.shape)}")
    B, P = prompt.shape
    if P + n_codes > prior.max_len:
        raise ValueError(f"{P} prompt codes + {n_codes} new ones exceed the prior's max_len {prior.max_len}")
    if prompt.numel() and (int(prompt.min()) < 0 or int(prompt.max()) >= prior.codebook_size):
        raise ValueError(f"prompt codes must be in [0, {prior.codebook_size})")
    speaker = None if speaker is None else speaker.to(device).long().expand(B)
    cache = prior.new_cache(B)
    out = torch.empty(B, P + n_codes, dtype=torch.long, device=device)
    out[:, :P] = prompt
    previous = None
    for t in range(P + n_codes):
        logits = prior.step(previous, cache, speaker)  # (B, K)
        if t < P:
            previous = prompt[:, t]
            continue
        if temperature == 0:
            previous = logits.argmax(-1)
        else:
            probs = filter_logits(logits / temperature, top_k, top_p).softmax(-1)
            previous = torch.multinomial(probs, 1, generator=generator)[:, 0]
        out[:, t] = previous
    return out
