"""Samples/s of the native generator beside the PyTorch reference, and the bf16 weights' error.

    python -m audio_vqvae.generation.fastgen.bench [--quick] [--repeats 3] [--threads N]

Each figure is the best of ``repeats`` timed runs (other processes share the cores), in samples per
second summed over the batch. Weights are random: speed does not depend on them. bench/generate.py
can call ``run()`` and print its rows.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable

import torch

from ...models.wavenet import WaveNet, shift_right
from ..native import generate, generate_with_logits
from . import available, unavailable_reason
from .weights import auto_weight_dtype, l2_cache_bytes, streamed_bytes

# decoder sizes: paper (30 layers, 128/256/128) and small (20 layers, 64/128/64)
SIZES = {
    "paper": dict(residual_channels=128, gate_channels=256, skip_channels=128, layers_per_stack=10, n_stacks=3),
    "small": dict(residual_channels=64, gate_channels=128, skip_channels=64, layers_per_stack=10, n_stacks=2),
}
# (size, batch): samples per utterance for the native and the reference generator
PLAN = {
    ("paper", 1): (16000, 1000),
    ("paper", 32): (2000, 320),
    ("small", 1): (32000, 2000),
}


def build(size: str) -> WaveNet:
    torch.manual_seed(0)
    return WaveNet(n_classes=256, cond_in_channels=64, hop_length=64, **SIZES[size]).eval()


def best_rate(fn: Callable[[], object], n_samples: int, repeats: int) -> float:
    """Best samples/s over ``repeats`` calls of fn, which generates n_samples in all."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return n_samples / best


def time_native(
    net: WaveNet, batch: int, n_samples: int, repeats: int = 3, threads: int | None = None,
    weight_dtype: torch.dtype = torch.float32,
) -> float:  # fmt: skip
    """Samples/s (summed over the batch, best of ``repeats``) of the native generator for n_samples per
    utterance: the counterpart of ``time_cached`` in bench/generate.py."""
    frames = max(1, n_samples // net.hop_length)
    latents = torch.randn(batch, net.cond_in_channels, frames)
    speaker = torch.zeros(batch, dtype=torch.long)
    generate(net, latents[..., :1], speaker, threads=threads, weight_dtype=weight_dtype)  # warm-up: build, pack
    run = lambda: generate(net, latents, speaker, threads=threads, weight_dtype=weight_dtype)  # noqa: E731
    return best_rate(run, batch * frames * net.hop_length, repeats)


def rates(net: WaveNet, batch: int, n_fast: int, n_ref: int, repeats: int, threads: int | None) -> dict[str, float]:
    """Samples/s of the reference, the native float32 and the native bf16-weight generators."""
    hop = net.hop_length
    speaker = torch.zeros(batch, dtype=torch.long)
    lat_ref = torch.randn(batch, net.cond_in_channels, max(1, n_ref // hop))
    from .. import generate as generate_any  # the front door; imported here, it imports this package

    torch_loop = lambda: generate_any(net, lat_ref, speaker, backend="torch")  # noqa: E731
    reference = best_rate(torch_loop, lat_ref.size(-1) * hop * batch, repeats)
    return {
        "reference": reference,
        "native": time_native(net, batch, n_fast, repeats, threads),
        "native bf16": time_native(net, batch, n_fast, repeats, threads, torch.bfloat16),
    }


def bf16_error(net: WaveNet, n_samples: int = 2048) -> dict[str, float]:
    """Logits of bf16 weights against float32 on the same sample path (teacher-forced float32 reference).

    Returns the max and mean absolute logit error, the logit scale (std) for context, and the KL
    divergence of the bf16 softmax from the float32 one, nats per sample, averaged.
    """
    torch.manual_seed(1)
    latents = torch.randn(1, net.cond_in_channels, n_samples // net.hop_length)
    speaker = torch.zeros(1, dtype=torch.long)
    classes, logits16 = generate_with_logits(net, latents, speaker, weight_dtype=torch.bfloat16)
    with torch.no_grad():
        logits32 = net(shift_right(classes, net.n_classes // 2), latents, speaker).transpose(1, 2)  # (1, T, C)
    err = (logits16 - logits32).abs()
    kl = torch.nn.functional.kl_div(logits16.log_softmax(-1), logits32.log_softmax(-1), log_target=True,
                                    reduction="none").sum(-1)  # fmt: skip
    return {"max_abs": err.max().item(), "mean_abs": err.mean().item(), "logit_std": logits32.std().item(),
            "kl": kl.mean().item()}  # fmt: skip


def run(quick: bool = False, repeats: int = 3, threads: int | None = None) -> list[str]:
    """The benchmark's printed lines."""
    if not available():
        return [f"native generator unavailable: {unavailable_reason()}"]
    lines = [
        f"{os.cpu_count()} cores, {threads or torch.get_num_threads()} threads, torch {torch.__version__}, "
        f"best of {repeats}",
        f"{'decoder':8} {'batch':>5} {'reference/s':>12} {'native/s':>10} {'ratio':>6} {'bf16/s':>9} {'ratio':>6}",
    ]
    scale = 0.1 if quick else 1.0
    n_threads = threads or torch.get_num_threads()
    l2 = l2_cache_bytes()
    streams = []
    for (size, batch), (n_fast, n_ref) in PLAN.items():
        net = build(size)
        r = rates(net, batch, max(64, int(n_fast * scale)), max(64, int(n_ref * scale)), repeats, threads)
        lines.append(
            f"{size:8} {batch:5d} {r['reference']:12,.0f} {r['native']:10,.0f} {r['native'] / r['reference']:5.1f}x"
            f" {r['native bf16']:9,.0f} {r['native bf16'] / r['reference']:5.1f}x"
        )
        if batch == 1:  # each sample step reads every weight once: rate x bytes is the bandwidth it draws
            mb = streamed_bytes(net) / 1e6
            streams.append(
                f"{size} batch 1: {mb:.1f} MB of float32 weights per sample, {r['native'] * mb / 1e3:.0f} GB/s "
                f"(bf16 {r['native bf16'] * mb / 2e3:.0f} GB/s); auto weights: "
                f"{str(auto_weight_dtype(net, n_threads)).removeprefix('torch.')}"
            )
    l2_text = f"{l2 / 2**20:g} MiB per core" if l2 else "unknown"
    lines.append(f"L2 cache {l2_text}, {n_threads} threads (auto: float32 weights where they fit the threads' L2)")
    lines += streams
    for size in SIZES:
        e = bf16_error(build(size), 512 if quick else 2048)
        lines.append(
            f"{size} bf16 weights vs float32: logits max |err| {e['max_abs']:.3g}, mean {e['mean_abs']:.3g} "
            f"(logit std {e['logit_std']:.3g}), KL {e['kl']:.2g} nats/sample"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer samples (a smoke run)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    for line in run(args.quick, args.repeats, args.threads):
        print(line, flush=True)


if __name__ == "__main__":
    main()
