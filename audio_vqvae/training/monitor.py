"""TensorBoard logging of training: loss terms, learning rate, gradient norm, speed, codebook usage, audio."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import torch

from .. import distributed as dist

log = logging.getLogger("audio_vqvae.training")


class TrainLogger:
    """Accumulates per-step metrics on the device and writes window averages every ``flush``.

    Codebook perplexity and codes used are computed over the pooled code counts of the whole
    window (all ranks), not per batch, so they show how much of the codebook the model really uses.
    Every rank must call ``flush`` (it all-reduces); only the one with ``enabled`` writes.
    """

    def __init__(self, log_dir: str | Path, codebook_size: int, enabled: bool = True):
        self.enabled = enabled
        self.codebook_size = codebook_size
        self.writer = None
        if enabled:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(log_dir))
        self._reset()

    def _reset(self) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.counts: torch.Tensor | None = None
        self.steps = 0
        self.grad_steps = 0
        self.grad_norm = None
        self.samples = 0
        self.start = time.perf_counter()

    def accumulate(self, out, grad_norm: torch.Tensor | None, samples: int, seconds: float) -> None:
        """Add one step: ``out`` is a VQVAEOutput; ``grad_norm`` None for a skipped step."""
        for k, v in out.metrics().items():
            if k in ("vq/perplexity", "vq/codes_used", "vq/dead_codes"):
                continue  # per-batch values; the window's come from the pooled counts
            v = v.detach().float()
            self.sums[k] = self.sums[k] + v if k in self.sums else v
        counts = torch.bincount(out.codes.detach().flatten(), minlength=self.codebook_size)
        self.counts = counts if self.counts is None else self.counts + counts
        if grad_norm is not None:
            g = grad_norm.detach().float()
            self.grad_norm = g if self.grad_norm is None else self.grad_norm + g
            self.grad_steps += 1
        self.steps += 1
        self.samples += samples

    def flush(self, step: int, lr: float, quantizer) -> dict[str, float] | None:
        """Write the window's averages at ``step`` and start a new window; returns them (writer only)."""
        if not self.steps:
            return None
        keys = sorted(self.sums)
        packed = torch.stack([self.sums[k] for k in keys])
        dist.all_reduce_sum(packed)
        counts = dist.all_reduce_sum(self.counts.clone()).double()
        world = dist.world_size()
        stats = {k: float(v) / (self.steps * world) for k, v in zip(keys, packed.cpu())}
        p = counts / counts.sum()
        entropy = -(p[p > 0] * p[p > 0].log()).sum()
        stats["vq/perplexity_window"] = float(entropy.exp())
        stats["vq/codes_used_window"] = int((counts > 0).sum())
        # Codes that fell below the usage threshold at any step of the window: with revival on, each was
        # replaced (and starts a fresh grace period), so the usage EMA alone would show none of them.
        stats["vq/dead_codes_window"] = quantizer.pop_dead_codes()
        stats["vq/dead_codes"] = int((quantizer.usage < quantizer.dead_code_threshold).sum())
        stats["optim/lr"] = lr
        if self.grad_steps:
            stats["optim/grad_norm"] = float(self.grad_norm) / self.grad_steps
        stats["optim/skipped_steps"] = self.steps - self.grad_steps
        stats["speed/samples_per_s"] = self.samples / max(1e-9, time.perf_counter() - self.start)
        if torch.cuda.is_available():
            stats["memory/cuda_peak_gib"] = torch.cuda.max_memory_allocated() / 2**30
        if self.writer is not None:
            for k, v in stats.items():
                self.writer.add_scalar(k, v, step)
            self.writer.add_histogram(
                "vq/code_usage",
                torch.arange(self.codebook_size).repeat_interleave(counts.long().clamp(max=10**6).cpu()),
                step,
                bins=min(self.codebook_size, 512),
            )
            self.writer.flush()
            log.info("step %d: %s", step, "  ".join(f"{k} {v:.4g}" for k, v in stats.items()))
        self._reset()
        return stats if self.enabled else None

    def scalar(self, key: str, value: float, step: int) -> None:
        if self.writer is not None:
            self.writer.add_scalar(key, value, step)

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

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
