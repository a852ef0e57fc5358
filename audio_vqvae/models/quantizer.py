"""Vector quantizer (van den Oord et al. 2017): loss or EMA codebook, k-means init, dead-code revival."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from .. import distributed as dist

# Usage is measured relative to a uniform share of the step's assignments (1.0 = M / K of M vectors),
# so one threshold serves any batch size and codebook size. A new or revived code starts at the uniform
# share, so a code never chosen is declared dead after ln(1 / threshold) / -ln(usage_decay) steps:
# 45 steps at the defaults (threshold 0.1, decay 0.95). An absolute threshold (assignments per step) with
# a long grace period let a codebook collapse to a few codes for hundreds of steps while reporting no
# dead code.
_USAGE_INIT = 1.0
# Momentum of the running mean and variance that the input normalisation uses in eval mode.
_NORM_MOMENTUM = 0.05
_NORM_EPS = 1e-5
# Relative margin below which a frame is a near tie (``VectorQuantizer.is_near_tie``): its code may differ
# between mathematically equal encodings (another batch, chunking or thread count), because the encoder's
# float32 outputs and the lookup's scores differ by rounding. Measured: latents differ by at
# most 6e-7, and every flipped frame had a margin of at most 2.4e-7 of its scale (about 2 float32 ulps);
# 1e-6 (about 8 ulps) leaves 4x room. tests/test_quantizer.py checks every flip is below it.
TIE_TOLERANCE = 1e-6


def code_scores(x: Tensor, codebook: Tensor) -> Tensor:
    """The scores ``nearest_codes`` minimises: ``||e||^2 - 2 x.e`` for each row of ``x`` and code ``e``.

    ``||x - e||^2 = ||x||^2 - 2 x.e + ||e||^2``; the ``||x||^2`` term is the same for every code of
    a row, so it is left out: it cannot change the argmin and adding it only costs float32 precision.
    Differences of scores within a row are therefore differences of squared Euclidean distances.
    One addmm gives a (M, K) matrix; a (M, K, D) difference tensor is never built.

    Args:
        x: (M, D) float32 vectors.
        codebook: (K, D) float32 codes.
    Returns:
        (M, K) float32 scores.
    """
    e_sq = (codebook * codebook).sum(1)  # (K,)
    return torch.addmm(e_sq.unsqueeze(0), x, codebook.t(), alpha=-2.0)


def nearest_codes(x: Tensor, codebook: Tensor) -> Tensor:
    """Index of the nearest codebook entry (squared Euclidean) for each row of ``x``.

    Args:
        x: (M, D) float32 vectors.
        codebook: (K, D) float32 codes.
    Returns:
        (M,) int64 code indices: the argmin of ``code_scores``.
    """
    return code_scores(x, codebook).argmin(1)  # (M, K) -> (M,)


def _l2_normalize(x: Tensor) -> Tensor:
    return F.normalize(x, dim=-1, eps=1e-8)


def _kmeans_plus_plus(x: Tensor, k: int) -> Tensor:
    """k-means++ seeding (Arthur & Vassilvitskii 2007): (M, D), M >= K -> (K, D) rows of x, each drawn
    with probability ~ squared distance to the nearest seed so far. Uniform sampling often puts two
    seeds in one cluster and none in another, a local minimum Lloyd iterations cannot leave.
    """
    centroids = x.new_empty(k, x.size(1))
    centroids[0] = x[torch.randint(x.size(0), (), device=x.device)]
    min_d2 = ((x - centroids[0]) ** 2).sum(1)  # (M,)
    for i in range(1, k):
        # The tiny floor keeps the draw valid once every distinct vector is already a centroid.
        pick = torch.multinomial(min_d2 + 1e-12, 1)  # (1,)
        centroids[i] = x[pick[0]]
        min_d2 = torch.minimum(min_d2, ((x - centroids[i]) ** 2).sum(1))
    return centroids


def kmeans(x: Tensor, k: int, iters: int) -> tuple[Tensor, Tensor]:
    """Lloyd's k-means with k-means++ seeding; empty clusters are re-seeded with random vectors.

    Args:
        x: (M, D) float32 vectors; k: K centroids; iters: Lloyd iterations.
    Returns:
        centroids (K, D) and their float32 sizes (K,) at the last assignment (0 where re-seeded).
    """
    m = x.size(0)
    if m >= k:
        centroids = _kmeans_plus_plus(x, k)
    else:  # fewer vectors than codes: every vector once, the rest drawn with replacement
        extra = torch.randint(m, (k - m,), device=x.device)
        centroids = torch.cat([x, x[extra]])
    counts = torch.zeros(k, device=x.device)
    for _ in range(iters):
        codes = nearest_codes(x, centroids)  # (M,)
        counts = torch.bincount(codes, minlength=k).float()  # (K,)
        sums = torch.zeros_like(centroids).index_add_(0, codes, x)  # (K, D)
        reseed = x[torch.randint(m, (k,), device=x.device)]  # (K, D)
        centroids = torch.where(counts[:, None] > 0, sums / counts.clamp(min=1)[:, None], reseed)
    return centroids, counts


@dataclass
class QuantizerOutput:
    """What ``VectorQuantizer.forward`` returns; the losses are float32 scalars."""

    quantized: Tensor  # (B, D, N) straight-through output z + (e - z).detach(), in z's dtype
    codes: Tensor  # (B, N) int64
    loss: Tensor  # codebook_loss + commitment_weight * commitment_loss
    codebook_loss: Tensor  # mean ||sg(z) - e||^2; zero under EMA updates
    commitment_loss: Tensor  # mean ||z - sg(e)||^2, unweighted
    perplexity: Tensor  # exp(entropy) of this batch's code histogram
    codes_used: Tensor  # int64, distinct codes in this batch
    dead_codes: Tensor  # int64, codes whose usage EMA is below dead_code_threshold (before revival)


class VectorQuantizer(nn.Module):
    """Nearest-neighbour vector quantizer with a straight-through gradient (van den Oord et al. 2017).

    The codebook (K, D) is learned either by the codebook loss (``ema_decay=None``, an ``nn.Parameter``)
    or by exponential moving averages of assigned vectors (a buffer under the same key). Training-mode
    forwards also track per-code usage, optionally initialise the codebook by k-means on the first
    batch, and optionally replace dead codes by recent encoder outputs. Eval-mode forwards change
    nothing. Under ``torch.distributed`` every codebook change is identical on all ranks; the initial
    state must be too (DDP broadcasts it when it wraps the model, or seed all ranks alike).

    Args:
        codebook_size: K, the number of codes.
        dim: D, the dimension of each code and of the input's channel axis.
        commitment_weight: beta, weight of the commitment loss.
        ema_decay: None to learn the codebook by its loss; a decay in (0, 1) (e.g. 0.99) for EMA updates.
        ema_epsilon: Laplace smoothing of the EMA cluster sizes.
        kmeans_init: run k-means on the first training batch to set the codebook.
        kmeans_iters: Lloyd iterations of that k-means.
        usage_decay: decay of the per-code usage EMA.
        dead_code_threshold: a code whose usage EMA, as a multiple of the uniform share M / K of a
            step's M assignments, is below this is dead (0.1: a tenth of its fair share).
        batch_norm: standardise each channel of the encoder outputs by its batch mean and variance
            before the lookup (running averages in eval mode), without a learned scale or shift
            (Łańcucki et al. 2020, "Robust training of vector quantized bottleneck models"). Outputs
            that all point one way at the start, the bias of a fresh encoder, then still spread over
            the codebook, and k-means init and revival see spread-out vectors.
        cosine_similarity: l2-normalise encoder outputs and codes, so the lookup is by cosine
            similarity and codes live on the unit sphere (Yu et al. 2021, ViT-VQGAN, sec. 3.2). The
            encoder's output scale then cannot strand codes, a cause of early codebook collapse.
        revive_dead_codes: replace dead codes by randomly chosen recent encoder outputs.
        revival_buffer_size: how many recent encoder outputs are kept for revival.
    """

    def __init__(
        self,
        codebook_size: int = 512,
        dim: int = 64,
        commitment_weight: float = 0.25,
        ema_decay: float | None = 0.99,
        ema_epsilon: float = 1e-5,
        kmeans_init: bool = True,
        kmeans_iters: int = 10,
        usage_decay: float = 0.95,
        dead_code_threshold: float = 0.1,
        revive_dead_codes: bool = True,
        revival_buffer_size: int = 4096,
        batch_norm: bool = True,
        cosine_similarity: bool = True,
    ):
        super().__init__()
        checks = [
            (codebook_size >= 1, f"codebook_size must be >= 1, got {codebook_size}"),
            (dim >= 1, f"dim must be >= 1, got {dim}"),
            (commitment_weight >= 0, f"commitment_weight must be >= 0, got {commitment_weight}"),
            (ema_decay is None or 0 < ema_decay < 1, f"ema_decay must be None or in (0, 1), got {ema_decay}"),
            (ema_epsilon > 0, f"ema_epsilon must be > 0, got {ema_epsilon}"),
            (kmeans_iters >= 1, f"kmeans_iters must be >= 1, got {kmeans_iters}"),
            (0 < usage_decay < 1, f"usage_decay must be in (0, 1), got {usage_decay}"),
            (dead_code_threshold >= 0, f"dead_code_threshold must be >= 0, got {dead_code_threshold}"),
            (revival_buffer_size >= 1, f"revival_buffer_size must be >= 1, got {revival_buffer_size}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(f"VectorQuantizer: {message}")
        self.codebook_size = codebook_size
        self.dim = dim
        self.commitment_weight = commitment_weight
        self.ema_decay = ema_decay
        self.ema_epsilon = ema_epsilon
        self.kmeans_init = kmeans_init
        self.kmeans_iters = kmeans_iters
        self.usage_decay = usage_decay
        self.dead_code_threshold = dead_code_threshold
        self.revive_dead_codes = revive_dead_codes
        self.batch_norm = batch_norm
        self.cosine_similarity = cosine_similarity

        # uniform(-1/K, 1/K) as in the paper's code: codes start near the origin, so a code's distance
        # to an encoder output is ruled by direction (-2 z.e) and first assignments spread over codes.
        codebook = torch.empty(codebook_size, dim).uniform_(-1 / codebook_size, 1 / codebook_size)
        if cosine_similarity:
            codebook = _l2_normalize(codebook)
        if ema_decay is None:
            self.codebook = nn.Parameter(codebook)
        else:
            self.register_buffer("codebook", codebook)
            # One pseudo-vector per code at its initial value, not empty clusters: embed_sum / cluster_size
            # is the codebook from step 0, and a code never chosen stays put instead of jumping to 0 / eps.
            self.register_buffer("cluster_size", torch.ones(codebook_size))
            self.register_buffer("embed_sum", codebook.clone())
        self.register_buffer("usage", torch.full((codebook_size,), _USAGE_INIT))
        # Codes found dead at any step since the training logger last read them (revived or not).
        self.register_buffer("_died", torch.zeros(codebook_size, dtype=torch.bool), persistent=False)
        if batch_norm:
            self.register_buffer("running_mean", torch.zeros(dim))
            self.register_buffer("running_var", torch.ones(dim))
        # True once the codebook holds its real initial values; saved so a reload does not re-run k-means.
        self.register_buffer("initialized", torch.tensor(not kmeans_init))
        # Mirror of ``initialized`` on the host, so forward never reads a device tensor to branch on.
        self._kmeans_pending = kmeans_init
        self.register_load_state_dict_post_hook(_sync_kmeans_pending)
        if revive_dead_codes:
            # Persistent, with the count of vectors written: a resumed run revives from the same candidates
            # as an uninterrupted one (exact resume), at the cost of revival_buffer_size * D floats.
            self.register_buffer("revival_buffer", torch.zeros(revival_buffer_size, dim))
            self.register_buffer("revival_count", torch.zeros((), dtype=torch.long))
            # Each rank remembers its own encoder outputs; revival uses rank 0's candidates, broadcast.
            self.rank_local_buffers = ("revival_buffer", "revival_count")
            self._buffer_pos = 0
            self._buffer_filled = 0

    def extra_repr(self) -> str:
        mode = "loss" if self.ema_decay is None else f"ema_decay={self.ema_decay}"
        flags = "".join(f", {n}" for n in ("batch_norm", "cosine_similarity") if getattr(self, n))
        return f"codebook_size={self.codebook_size}, dim={self.dim}, {mode}{flags}"

    def _normalize_input(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        """Batch norm and/or l2 normalisation of flat encoder outputs (M, D); also the batch's
        detached (2, D) mean and variance in training mode with batch_norm, else None."""
        stats = None
        if self.batch_norm:
            if self.training:
                mean, var = x.mean(0), x.var(0, unbiased=False)  # (D,) each; gradients flow through both
                stats = torch.stack([mean, var]).detach()
            else:
                mean, var = self.running_mean, self.running_var
            x = (x - mean) * torch.rsqrt(var + _NORM_EPS)
        if self.cosine_similarity:
            x = _l2_normalize(x)
        return x, stats

    def embeddings(self) -> Tensor:
        """The (K, D) code vectors the lookup uses: the codebook, l2-normalised under cosine similarity.

        Under EMA updates the stored codebook is kept normalised; a loss-trained one is normalised here,
        so its gradient flows through the normalisation."""
        if self.cosine_similarity and self.ema_decay is None:
            return _l2_normalize(self.codebook)
        return self.codebook

    def forward(self, z: Tensor) -> QuantizerOutput:
        """Quantize encoder outputs; in training mode also update the codebook statistics.

        Args:
            z: (B, D, N) encoder outputs, any float dtype.
        Returns:
            QuantizerOutput with ``quantized`` (B, D, N) in z's dtype and ``codes`` (B, N).
        """
        self._check_input(z)
        # All quantizer arithmetic in float32: bf16/fp16 distances flip near ties and EMA sums lose mass.
        with torch.autocast(device_type=z.device.type, enabled=False):
            z32 = z.float()
            x, stats = self._normalize_input(_flatten(z32))  # (B*N, D)
            if self.batch_norm or self.cosine_similarity:
                z32 = _unflatten(x, z.shape)  # (B, D, N): the straight-through path starts at the normalised z
            if self.training and self._kmeans_pending:
                self._init_by_kmeans(x.detach())
            codebook = self.embeddings()  # (K, D)
            with torch.no_grad():
                codes = nearest_codes(x, codebook)  # (B*N,)
            e = F.embedding(codes, codebook)  # (B*N, D); carries the codebook's gradient in loss mode
            commitment_loss = F.mse_loss(x, e.detach())
            if self.ema_decay is None:
                codebook_loss = F.mse_loss(e, x.detach())
            else:
                codebook_loss = x.new_zeros(())
            # Straight-through estimator (paper eq. 3): forward value e, gradient w.r.t. z exactly identity.
            quantized = z32 + (_unflatten(e, z.shape) - z32).detach()  # (B, D, N)
            with torch.no_grad():
                counts = torch.bincount(codes, minlength=self.codebook_size).float()  # (K,)
                if self.training:
                    dead = self._update(x.detach(), codes, counts, stats)
                else:
                    dead = self.usage < self.dead_code_threshold
                probs = counts / counts.sum().clamp(min=1)
                perplexity = torch.exp(torch.special.entr(probs).sum())
        return QuantizerOutput(
            quantized=quantized.to(z.dtype),
            codes=codes.view(z.size(0), z.size(2)),
            loss=codebook_loss + self.commitment_weight * commitment_loss,
            codebook_loss=codebook_loss,
            commitment_loss=commitment_loss,
            perplexity=perplexity,
            codes_used=(counts > 0).sum(),
            dead_codes=dead.sum(),
        )

    @torch.no_grad()
    def pop_dead_codes(self) -> int:
        """Codes found dead (usage below the threshold) at any training step since the last call, then
        forgotten: with revival on, each was replaced by an encoder output. One host sync."""
        n = int(self._died.sum())
        self._died.zero_()
        return n

    @torch.no_grad()
    def quantize(self, z: Tensor) -> Tensor:
        """Nearest-code indices, without side effects.

        Args:
            z: (B, D, N) encoder outputs.
        Returns:
            (B, N) int64 codes.
        """
        self._check_input(z)
        with torch.autocast(device_type=z.device.type, enabled=False):
            x, _ = self._normalize_input(_flatten(z.float()))  # (B*N, D); eval: running statistics
            return nearest_codes(x, self.embeddings()).view(z.size(0), z.size(2))

    @torch.no_grad()
    def margins(self, z: Tensor) -> Tensor:
        """How far each frame is from a tie: second-best minus best lookup score, without side effects.

        The score is the one ``quantize`` minimises (``code_scores``) on the normalised input it looks
        up (eval mode: running batch-norm statistics, then l2 normalisation under cosine similarity), so
        a margin is a gap of squared Euclidean distances between that input and its two nearest codes;
        under cosine similarity it is ``2 * (cos_best - cos_second)``, in [0, 4]. A frame whose margin
        is within float32 rounding of the encoder and the lookup (``is_near_tie``) may get either code
        depending on how its batch was computed; see ``windows.encode_chunked``.

        Args:
            z: (B, D, N) encoder outputs.
        Returns:
            (B, N) float32 margins, >= 0 (inf when K == 1).
        """
        self._check_input(z)
        with torch.autocast(device_type=z.device.type, enabled=False):
            x, _ = self._normalize_input(_flatten(z.float()))  # (B*N, D)
            scores = code_scores(x, self.embeddings())  # (B*N, K)
            if scores.size(1) < 2:
                return torch.full((z.size(0), z.size(2)), float("inf"), device=z.device)
            best, second = scores.topk(2, dim=1, largest=False).values.unbind(1)  # (B*N,) each
            return (second - best).clamp(min=0).view(z.size(0), z.size(2))

    @torch.no_grad()
    def is_near_tie(self, z: Tensor, tolerance: float = TIE_TOLERANCE) -> Tensor:
        """Frames whose code may flip under float32 rounding of z: margin < tolerance * scale.

        The scale is ``||x||^2 + max_k ||e_k||^2`` for the normalised input x and codes e (2 under cosine
        similarity): the size of the terms each score is rounded from, so the float32 error of a margin
        is a few ulps of it, however close together x and its codes are.

        Args:
            z: (B, D, N) encoder outputs.
            tolerance: relative bound (``TIE_TOLERANCE``, 1e-6, by default).
        Returns:
            (B, N) bool.
        """
        self._check_input(z)
        with torch.autocast(device_type=z.device.type, enabled=False):
            x, _ = self._normalize_input(_flatten(z.float()))  # (B*N, D)
            scale = x.square().sum(1) + self.embeddings().square().sum(1).max()  # (B*N,)
        return self.margins(z) < tolerance * scale.view(z.size(0), z.size(2))

    def dequantize(self, codes: Tensor) -> Tensor:
        """Codebook vectors of ``codes``.

        Args:
            codes: (B, N) int64 indices in [0, K).
        Returns:
            (B, D, N) float32 codebook vectors.
        """
        if codes.dim() != 2:
            raise ValueError(f"dequantize expects codes of shape (B, N), got {tuple(codes.shape)}")
        return F.embedding(codes, self.embeddings()).transpose(1, 2)  # (B, N, D) -> (B, D, N)

    def _check_input(self, z: Tensor) -> None:
        if z.dim() != 3 or z.size(1) != self.dim or not z.is_floating_point() or z.numel() == 0:
            raise ValueError(f"quantizer expects float z of shape (B, D={self.dim}, N), got {tuple(z.shape)} {z.dtype}")

    @torch.no_grad()
    def _init_by_kmeans(self, x: Tensor) -> None:
        """k-means on this batch sets the codebook (Zeghidour et al. 2021, SoundStream); rank 0's wins."""
        centroids, counts = kmeans(x, self.codebook_size, self.kmeans_iters)
        if self.cosine_similarity:
            centroids = _l2_normalize(centroids)  # spherical k-means, to first order
        dist.broadcast_(centroids)
        counts = dist.broadcast_(counts)
        self.codebook.copy_(centroids)
        # Usage starts from each cluster's share: a code k-means left empty is revived at once.
        self.usage.copy_(counts / counts.sum().clamp(min=1) * self.codebook_size)
        if self.ema_decay is not None:
            # cluster_size is an EMA of global per-step counts: scale rank 0's batch counts by the world size.
            world = dist.world_size()
            self.cluster_size.copy_(counts.mul(world).clamp(min=1))
            self.embed_sum.copy_(centroids * self.cluster_size[:, None])
        self.initialized.fill_(True)
        self._kmeans_pending = False

    @torch.no_grad()
    def _update(self, x: Tensor, codes: Tensor, counts: Tensor, stats: Tensor | None) -> Tensor:
        """EMA codebook update, usage EMA, revival, running input statistics. x (M, D), codes (M,),
        counts (K,) of this rank; stats (2, D) its batch mean and variance (batch_norm) or None.
        Returns the (K,) bool mask of codes found dead this step, before revival."""
        # A non-finite batch on any rank must not touch the statistics: the training loop skips such a
        # step, but EMA sums, usage and the revival buffer are updated here, before it can. The flag
        # rides in the same collective and gates every update on the device (no host read).
        bad = (~torch.isfinite(x).all()).float().reshape(1)
        parts = [counts]
        if self.ema_decay is not None:
            sums = torch.zeros_like(self.codebook).index_add_(0, codes, x)  # (K, D)
            parts.append(sums.flatten())
        if stats is not None:
            parts.append(stats.flatten())
        packed = dist.all_reduce_sum(torch.cat([*parts, bad]))  # one collective
        ok = packed[-1] == 0
        if stats is not None:  # every rank's running statistics: the mean of the ranks' batch statistics
            mean, var = (packed[-1 - 2 * self.dim : -1] / dist.world_size()).view(2, self.dim)
            m = _NORM_MOMENTUM
            _update_where(ok, self.running_mean, self.running_mean * (1 - m) + mean * m)
            _update_where(ok, self.running_var, self.running_var * (1 - m) + var * m)
        step_counts = packed[: self.codebook_size]
        if self.ema_decay is not None:
            ema_sums = packed[self.codebook_size : self.codebook_size * (self.dim + 1)].view_as(self.codebook)
            self._ema_update(step_counts, ema_sums, ok)
        share = step_counts / step_counts.sum().clamp(min=1) * self.codebook_size  # (K,), 1.0 = uniform
        _update_where(ok, self.usage, self.usage * self.usage_decay + share * (1 - self.usage_decay))
        dead = self.usage < self.dead_code_threshold  # (K,), identical on all ranks
        self._died |= dead & ok
        if self.revive_dead_codes:
            self._remember(x, ok)
            self._revive(dead & ok)
        return dead

    def _ema_update(self, counts: Tensor, sums: Tensor, ok: Tensor) -> None:
        """EMA codebook update (paper appendix A.1; Sonnet's VectorQuantizerEMA, Razavi et al. 2019).
        Laplace smoothing keeps cluster sizes away from zero so the division stays finite. Nothing
        changes where ``ok`` (a device bool) is False."""
        decay, eps, k = self.ema_decay, self.ema_epsilon, self.codebook_size
        _update_where(ok, self.cluster_size, self.cluster_size * decay + counts * (1 - decay))
        _update_where(ok, self.embed_sum, self.embed_sum * decay + sums * (1 - decay))
        n = self.cluster_size.sum()
        smoothed = (self.cluster_size + eps) / (n + k * eps) * n  # (K,)
        codebook = self.embed_sum / smoothed[:, None]
        self.codebook.copy_(_l2_normalize(codebook) if self.cosine_similarity else codebook)

    def _remember(self, x: Tensor, ok: Tensor) -> None:
        """Write recent encoder outputs (M, D) into the ring buffer; a random subset if M exceeds it.
        Where ``ok`` is False the slots keep their old vectors."""
        size = self.revival_buffer.size(0)
        m = x.size(0)
        if m >= size:
            _update_where(ok, self.revival_buffer, x[torch.randperm(m, device=x.device)[:size]])
            self._buffer_pos, self._buffer_filled = 0, size
        else:
            slots = (self._buffer_pos + torch.arange(m, device=x.device)) % size
            self.revival_buffer[slots] = torch.where(ok, x, self.revival_buffer[slots])
            self._buffer_pos = (self._buffer_pos + m) % size
            self._buffer_filled = min(size, self._buffer_filled + m)
        # Host mirrors stay the source of truth in forward (no device read); the buffer carries them in checkpoints.
        self.revival_count.fill_(self._buffer_filled * (size + 1) + self._buffer_pos)

    def _revive(self, dead: Tensor) -> None:
        """Replace dead codes by random recent encoder outputs (Dhariwal et al. 2020, Jukebox; Zeghidour
        et al. 2021, SoundStream). A candidate is drawn for every code and kept only where ``dead`` holds,
        so nothing reads ``dead`` on the host; rank 0's candidates are broadcast.
        """
        n, k = self._buffer_filled, self.codebook_size
        device = self.revival_buffer.device
        pick = torch.randperm(n, device=device)[:k] if n >= k else torch.randint(n, (k,), device=device)
        candidates = dist.broadcast_(self.revival_buffer[pick])  # (K, D)
        self.codebook.copy_(torch.where(dead[:, None], candidates, self.codebook))
        self.usage.masked_fill_(dead, _USAGE_INIT)  # a fresh grace period, as at the start
        if self.ema_decay is not None:
            # Same state as a code at construction: one pseudo-vector at its value.
            self.cluster_size.masked_fill_(dead, 1.0)
            self.embed_sum.copy_(torch.where(dead[:, None], candidates, self.embed_sum))


def _update_where(ok: Tensor, buffer: Tensor, new: Tensor) -> None:
    """``buffer = new`` where the scalar bool ``ok`` holds, else unchanged; no host sync."""
    buffer.copy_(torch.where(ok, new, buffer))


def _sync_kmeans_pending(module: VectorQuantizer, incompatible_keys: object) -> None:
    """After ``load_state_dict``: a checkpoint whose codebook is initialised must not re-run k-means."""
    module._kmeans_pending = module.kmeans_init and not bool(module.initialized)
    if module.revive_dead_codes:  # restore the ring buffer's host-side position (one read, at load time)
        size = module.revival_buffer.size(0)
        module._buffer_filled, module._buffer_pos = divmod(int(module.revival_count), size + 1)


def _flatten(z: Tensor) -> Tensor:
    return z.transpose(1, 2).reshape(-1, z.size(1))  # (B, D, N) -> (B*N, D)


def _unflatten(x: Tensor, shape: torch.Size) -> Tensor:
    b, d, n = shape
    return x.view(b, n, d).transpose(1, 2)  # (B*N, D) -> (B, D, N)
