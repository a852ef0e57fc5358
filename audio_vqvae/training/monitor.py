"""TensorBoard logging of training: loss terms, learning rate, gradient norm, speed; for the VQ-VAE also
codebook usage and audio."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import torch

from .. import distributed as dist

log = logging.getLogger("audio_vqvae.training")


class StepLogger:
    """Accumulates per-step metrics on the device and writes window averages every ``flush``: the
    model's ``out.metrics()``, the gradient norm, skipped steps, speed, and ``window_stats`` of a subclass.

    Every rank must call ``flush`` (it all-reduces); only the one with ``enabled`` writes.

    Args:
        log_dir: TensorBoard folder.
        speed_key: the name of the items-per-second scalar (``speed/samples_per_s``, ``speed/codes_per_s``).
        enabled: write (rank 0).
    """

    def __init__(self, log_dir: str | Path, speed_key: str, enabled: bool = True):
        self.enabled = enabled
        self.speed_key = speed_key
        self.writer = None
        if enabled:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(log_dir))
        self._reset()

    def _reset(self) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.steps = 0
        self.grad_steps = 0
        self.grad_norm = None
        self.items = 0
        self.start = time.perf_counter()

    def window_metrics(self, out) -> dict[str, torch.Tensor]:
        """The per-step metrics of ``out`` averaged over a window (all of ``out.metrics()`` here)."""
        return out.metrics()

    def accumulate_window(self, out) -> None:
        """Anything else a subclass pools over the window (code counts)."""

    def window_stats(self, stats: dict[str, float]) -> None:
        """Add a subclass's pooled figures to ``stats`` at ``flush`` (all ranks call it)."""

    def accumulate(self, out, grad_norm: torch.Tensor | None, items: int, seconds: float) -> None:
        """Add one step: ``out`` has ``metrics()``; ``grad_norm`` None for a skipped step; ``items``
        (samples, codes) went through the model, all ranks together."""
        for k, v in self.window_metrics(out).items():
            v = v.detach().float()
            self.sums[k] = self.sums[k] + v if k in self.sums else v
        self.accumulate_window(out)
        if grad_norm is not None:
            g = grad_norm.detach().float()
            self.grad_norm = g if self.grad_norm is None else self.grad_norm + g
            self.grad_steps += 1
        self.steps += 1
        self.items += items

    def flush(self, step: int, lr: float) -> dict[str, float] | None:
        """Write the window's averages at ``step`` and start a new window; returns them (writer only)."""
        if not self.steps:
            return None
        keys = sorted(self.sums)
        packed = torch.stack([self.sums[k] for k in keys])
        dist.all_reduce_sum(packed)
        world = dist.world_size()
        stats = {k: float(v) / (self.steps * world) for k, v in zip(keys, packed.cpu())}
        self.window_stats(stats)
        stats["optim/lr"] = lr
        if self.grad_steps:
            stats["optim/grad_norm"] = float(self.grad_norm) / self.grad_steps
        stats["optim/skipped_steps"] = self.steps - self.grad_steps
        stats[self.speed_key] = self.items / max(1e-9, time.perf_counter() - self.start)
        if torch.cuda.is_available():
            stats["memory/cuda_peak_gib"] = torch.cuda.max_memory_allocated() / 2**30
        if self.writer is not None:
            for k, v in stats.items():
                self.writer.add_scalar(k, v, step)
            self.write_window(step)
            self.writer.flush()
            log.info("step %d: %s", step, "  ".join(f"{k} {v:.4g}" for k, v in stats.items()))
        self._reset()
        return stats if self.enabled else None

    def write_window(self, step: int) -> None:
        """Write a subclass's histograms (writer only)."""

    def scalar(self, key: str, value: float, step: int) -> None:
        if self.writer is not None:
            self.writer.add_scalar(key, value, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


class TrainLogger(StepLogger):
    """The VQ-VAE's logger: codebook perplexity and codes used over the pooled code counts of the whole
    window (all ranks), not per batch, so they show how much of the codebook the model really uses;
    dead codes; and a validation utterance with its reconstruction (``audio``).

    Args:
        log_dir: TensorBoard folder; quantizer: the model's (its dead-code statistics);
        enabled: write (rank 0).
    """

    def __init__(self, log_dir: str | Path, quantizer, enabled: bool = True):
        self.quantizer = quantizer
        self.codebook_size = quantizer.codebook_size
        super().__init__(log_dir, "speed/samples_per_s", enabled)

    def _reset(self) -> None:
        super()._reset()
        self.counts: torch.Tensor | None = None
        self.pooled: torch.Tensor | None = None

    def window_metrics(self, out) -> dict[str, torch.Tensor]:
        skip = ("vq/perplexity", "vq/codes_used", "vq/dead_codes")  # per batch; the window's come from the counts
        return {k: v for k, v in out.metrics().items() if k not in skip}

    def accumulate_window(self, out) -> None:
        counts = torch.bincount(out.codes.detach().flatten(), minlength=self.codebook_size)
        self.counts = counts if self.counts is None else self.counts + counts

    def window_stats(self, stats: dict[str, float]) -> None:
        counts = dist.all_reduce_sum(self.counts.clone()).double()
        p = counts / counts.sum()
        entropy = -(p[p > 0] * p[p > 0].log()).sum()
        stats["vq/perplexity_window"] = float(entropy.exp())
        stats["vq/codes_used_window"] = int((counts > 0).sum())
        # Codes that fell below the usage threshold at any step of the window: with revival on, each was
        # replaced (and starts a fresh grace period), so the usage EMA alone would show none of them.
        stats["vq/dead_codes_window"] = self.quantizer.pop_dead_codes()
        stats["vq/dead_codes"] = int((self.quantizer.usage < self.quantizer.dead_code_threshold).sum())
        self.pooled = counts

    def write_window(self, step: int) -> None:
        self.writer.add_histogram(
            "vq/code_usage",
            torch.arange(self.codebook_size).repeat_interleave(self.pooled.long().clamp(max=10**6).cpu()),
            step,
            bins=min(self.codebook_size, 512),
        )

    @torch.no_grad()
    def audio(self, model, dataset, seconds: float, step: int) -> None:
        """Log a validation utterance and its reconstruction with its own speaker."""
        if self.writer is None or not len(dataset):
            return
        model.eval()
        sr, hop = model.sample_rate, model.hop_length
        n = max(hop, int(seconds * sr) // hop * hop)
        wav = dataset.read(0, 0, dataset.segment_length)[:n]
        device = next(model.parameters()).device
        codes = model.encode(wav.to(device))
        speaker = dataset.speaker_ids[0]
        generator = torch.Generator(device=device).manual_seed(step)  # leaves the global RNG alone (resume)
        recon = model.decode(codes, speaker, generator=generator)
        self.writer.add_audio("audio/original", wav.unsqueeze(0), step, sample_rate=sr)
        self.writer.add_audio("audio/reconstruction", recon[0].float().cpu(), step, sample_rate=sr)
        model.train()
