"""A learned prior over code sequences: a causal Transformer language model of the VQ-VAE's codes.

The VQ-VAE paper trains an autoregressive model over the latent codes, so that the prior is learnt
rather than static, and samples speech from it. Speech language models over discrete units do the
same with a Transformer (GSLM, Lakhotia et al. 2021). This one is a GPT (Radford et al. 2019, in the
shape of nanoGPT): token and position embeddings, pre-norm blocks of causal self-attention and an
MLP, and a head over the K codes. It can be conditioned on a speaker, whose embedding is added to
every position.

Position i predicts code i from the codes before it (a begin-of-sequence token K stands in front).
``step`` decodes one position at a time with a key/value cache, so each new code attends to the
cached keys instead of re-running the prefix. Its logits equal those of the full forward pass
(tested).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.nn import functional as F


@dataclass
class KVCache:
    """Keys and values of the positions decoded so far: per layer (B, H, max_len, head_dim), filled up to ``length``."""

    keys: list[Tensor]
    values: list[Tensor]
    length: int = 0


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention in which position i sees positions <= i.

    No dropout on the attention weights: with it, ``scaled_dot_product_attention`` takes its unfused
    path on the CPU, several times slower (docs/model.md); dropout stays on the residual branches.
    """

    def __init__(self, d_model: int, n_heads: int):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model {d_model} must be a multiple of n_heads {n_heads}")
        self.n_heads = n_heads
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)

    def _heads(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        B, L, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=-1)
        return tuple(t.view(B, L, self.n_heads, C // self.n_heads).transpose(1, 2) for t in (q, k, v))  # (B, H, L, C/H)

    def forward(self, x: Tensor) -> Tensor:
        """(B, L, C) -> (B, L, C)."""
        q, k, v = self._heads(x)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.out(y.transpose(1, 2).reshape(x.shape))

    def step(self, x: Tensor, keys: Tensor, values: Tensor, position: int) -> Tensor:
        """One new position: (B, 1, C) -> (B, 1, C); its key and value are written at ``position`` of the cache."""
        q, k, v = self._heads(x)
        keys[:, :, position : position + 1], values[:, :, position : position + 1] = k, v
        y = F.scaled_dot_product_attention(q, keys[:, :, : position + 1], values[:, :, : position + 1])
        return self.out(y.transpose(1, 2).reshape(x.shape))


class Block(nn.Module):
    """Pre-norm Transformer block: x + attention(norm(x)), then x + MLP(norm(x))."""

    def __init__(self, d_model: int, n_heads: int, dropout: float):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.attention = CausalSelfAttention(d_model, n_heads)
        self.mlp = nn.Sequential(nn.Linear(d_model, 4 * d_model), nn.GELU(), nn.Linear(4 * d_model, d_model))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.drop(self.attention(self.norm1(x)))
        return x + self.drop(self.mlp(self.norm2(x)))

    def step(self, x: Tensor, keys: Tensor, values: Tensor, position: int) -> Tensor:
        x = x + self.attention.step(self.norm1(x), keys, values, position)
        return x + self.mlp(self.norm2(x))


class CodePrior(nn.Module):
    """Causal Transformer over code sequences, optionally speaker-conditioned.

    Args:
        codebook_size: K; token K is the begin-of-sequence token.
        max_len: L_max, the longest sequence (context) it models.
        d_model, n_layers, n_heads: width, depth and attention heads.
        dropout: on the embeddings and the residual branches, in training.
        n_speakers: speakers of the speaker embedding; 0: unconditional.
    """

    def __init__(
        self,
        codebook_size: int = 512,
        max_len: int = 1024,
        d_model: int = 256,
        n_layers: int = 6,
        n_heads: int = 4,
        dropout: float = 0.1,
        n_speakers: int = 0,
    ):
        super().__init__()
        if codebook_size < 1 or max_len < 1 or n_layers < 0 or n_speakers < 0:
            raise ValueError(
                f"CodePrior needs codebook_size, max_len >= 1 and n_layers, n_speakers >= 0, "
                f"got {codebook_size}, {max_len}, {n_layers}, {n_speakers}"
            )
        self.codebook_size, self.max_len, self.n_speakers = codebook_size, max_len, n_speakers
        self.token_embedding = nn.Embedding(codebook_size + 1, d_model)  # + begin-of-sequence
        self.position_embedding = nn.Embedding(max_len, d_model)
        self.speaker_embedding = nn.Embedding(n_speakers, d_model) if n_speakers else None
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(Block(d_model, n_heads, dropout) for _ in range(n_layers))
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, codebook_size, bias=False)
        self.speakers: list[str] = []  # speaker names of the ids, set by ``load``

    @classmethod
    def from_config(cls, cfg) -> CodePrior:
        """A prior from a ``config.PriorModelConfig``; impossible sizes are a ConfigError naming the section."""
        from ..config import config_section

        with config_section("model"):
            return cls(
                cfg.codebook_size, cfg.max_len, cfg.d_model, cfg.n_layers, cfg.n_heads, cfg.dropout, cfg.n_speakers
            )

    @classmethod
    def load(cls, path: str | Path, map_location: str | torch.device = "cpu") -> CodePrior:
        """A trained prior from its checkpoint alone (``audio-vqvae train-prior`` writes them).

        Returns:
            The prior in eval mode, with ``speakers`` (names of its speaker ids; empty when unconditional),
            ``config`` (its ``PriorExperiment``), ``tokens`` (the training tokens' ``tokens.json``) and ``checkpoint``.
        Raises:
            CheckpointError: a missing or unreadable file, or one that is not a prior's.
        """
        from ..checkpoint import load_checkpoint, prior_config_from_checkpoint

        if map_location == "auto":
            map_location = "cuda" if torch.cuda.is_available() else "cpu"
        state = load_checkpoint(path, map_location)
        config = prior_config_from_checkpoint(state, path)
        prior = cls.from_config(config.model)
        prior.load_state_dict(state["model"])
        prior.speakers = [str(s) for s in state.get("speakers", [])]
        prior.config, prior.tokens, prior.checkpoint = config, state.get("tokens") or {}, Path(path)
        return prior.to(map_location).eval()

    @property
    def bos(self) -> int:
        return self.codebook_size

    def _check(self, codes: Tensor, speaker: Tensor | None) -> None:
        if codes.dim() != 2:
            raise ValueError(f"codes must have shape (B, L), got {tuple(codes.shape)}")
        if codes.size(1) > self.max_len:
            raise ValueError(f"sequence of {codes.size(1)} codes is longer than the prior's max_len {self.max_len}")
        if codes.numel() and (int(codes.min()) < 0 or int(codes.max()) >= self.codebook_size):
            raise ValueError(f"codes must be in [0, {self.codebook_size}), got {int(codes.min())}..{int(codes.max())}")
        if (speaker is None) != (self.speaker_embedding is None):
            raise ValueError("a speaker-conditioned prior needs speakers, an unconditional one takes none")

    def _embed(self, tokens: Tensor, start: int, speaker: Tensor | None) -> Tensor:
        positions = torch.arange(start, start + tokens.size(1), device=tokens.device)
        x = self.token_embedding(tokens) + self.position_embedding(positions)  # (B, L, C)
        if self.speaker_embedding is not None:
            x = x + self.speaker_embedding(speaker).unsqueeze(1)
        return x

    def forward(self, codes: Tensor, speaker: Tensor | None = None) -> Tensor:
        """Next-code logits of every position (teacher forcing).

        Args:
            codes: (B, L) int64 codes in [0, K), L <= max_len.
            speaker: (B,) int64 ids for a speaker-conditioned prior, else None.
        Returns:
            (B, L, K) float logits; position i predicts ``codes[:, i]`` from ``codes[:, :i]``.
        """
        self._check(codes, speaker)
        inputs = torch.cat([codes.new_full((codes.size(0), 1), self.bos), codes[:, :-1]], 1)  # (B, L)
        x = self.drop(self._embed(inputs, 0, speaker))
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x))

    def loss(self, codes: Tensor, speaker: Tensor | None = None, mask: Tensor | None = None) -> Tensor:
        """Mean negative log-likelihood in nats per code over ``mask`` ((B, L) bool, or any shape that
        broadcasts to it; None: all codes)."""
        return masked_nll(self(codes, speaker), codes, mask)

    def new_cache(self, batch: int, device: torch.device | None = None, dtype: torch.dtype | None = None) -> KVCache:
        """An empty cache for ``batch`` sequences of up to ``max_len`` positions."""
        param = self.head.weight  # (K, C)
        keys, values = [], []
        for block in self.blocks:
            heads = block.attention.n_heads
            shape = (batch, heads, self.max_len, param.size(1) // heads)
            keys.append(torch.zeros(shape, device=device or param.device, dtype=dtype or param.dtype))
            values.append(torch.zeros(shape, device=device or param.device, dtype=dtype or param.dtype))
        return KVCache(keys, values)

    def step(self, previous: Tensor | None, cache: KVCache, speaker: Tensor | None = None) -> Tensor:
        """Logits of the next position, given the code before it.

        Args:
            previous: (B,) the code at position ``cache.length - 1``; None at position 0 (the
                begin-of-sequence token is fed instead).
            cache: from ``new_cache``, advanced by one position here.
            speaker: (B,) as in ``forward``.
        Returns:
            (B, K) logits of the code at position ``cache.length`` (before the call).
        """
        position = cache.length
        if position >= self.max_len:
            raise ValueError(f"the prior's context is full: max_len {self.max_len}")
        B = cache.keys[0].size(0) if cache.keys else (1 if previous is None else previous.size(0))
        token = (
            torch.full((B, 1), self.bos, dtype=torch.long, device=self.head.weight.device)
            if previous is None
            else previous.view(B, 1)
        )
        x = self._embed(token, position, speaker)  # (B, 1, C)
        for block, keys, values in zip(self.blocks, cache.keys, cache.values):
            x = block.step(x, keys, values, position)
        cache.length += 1
        return self.head(self.norm(x))[:, 0]


def masked_nll(logits: Tensor, codes: Tensor, mask: Tensor | None = None) -> Tensor:
    """Mean negative log-likelihood in nats of ``codes`` under next-code ``logits`` over ``mask``.

    Args:
        logits: (B, L, K) from ``CodePrior.forward``; codes: (B, L) int64.
        mask: (B, L) bool, or any shape that broadcasts to it; None: all codes.
    """
    nll = F.cross_entropy(logits.transpose(1, 2).float(), codes, reduction="none")  # (B, L)
    if mask is None:
        return nll.mean()
    mask = mask.expand_as(nll).float()
    return (nll * mask).sum() / mask.sum().clamp_min(1)
