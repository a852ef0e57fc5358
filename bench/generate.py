"""Generation speed of the WaveNet decoder: cached generator vs a naive one, tiny and paper sizes.

Prints samples/s at batch 1 and 32 for each, the ratio cached / naive, the core count and peak
memory, all measured in one run. Weights are random (speed does not depend on them).

    python bench/generate.py [--device cpu|cuda] [--quick]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import resource
import time

import torch

from audio_vqvae.config import preset
from audio_vqvae.wavenet import WaveNet, naive_generate


def build(name: str, device: str) -> WaveNet:
    cfg = preset(name)
    torch.manual_seed(0)
    net = WaveNet(
        n_classes=cfg.mu_law_classes,
        cond_in_channels=cfg.quantizer.dim,
        hop_length=64,
        **dataclasses.asdict(cfg.decoder),
    )
    return net.eval().to(device)


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def time_cached(net: WaveNet, batch: int, n_samples: int, device: str) -> float:
    """Samples/s (summed over the batch) of WaveNet.generate for n_samples per utterance."""
    frames = max(1, n_samples // net.hop_length)
    latents = torch.randn(batch, net.cond_in_channels, frames, device=device)
    speaker = torch.zeros(batch, dtype=torch.long, device=device)
    net.generate(latents[..., :1], speaker)  # warm-up
    sync(device)
    start = time.perf_counter()
    net.generate(latents, speaker)
    sync(device)
    return batch * frames * net.hop_length / (time.perf_counter() - start)


def time_naive(net: WaveNet, batch: int, n_samples: int, device: str) -> float:
    """Samples/s of the generator that recomputes the receptive field for every sample.

    Each step runs the stack over min(t + 1, receptive field) samples; the steps are timed late in
    the sequence, where the window is full, which is what the naive generator costs on real lengths.
    """
    rf = net.receptive_field
    frames = (rf + n_samples) // net.hop_length + 1
    latents = torch.randn(batch, net.cond_in_channels, frames, device=device)
    speaker = torch.zeros(batch, dtype=torch.long, device=device)
    cond = net.conditioning(latents, speaker).repeat_interleave(net.hop_length, dim=-1)
    window = torch.randint(0, net.n_classes, (batch, rf), device=device)
    with torch.no_grad():
        net._run(window, [cond[:, i, :, :rf] for i in range(cond.size(1))])  # warm-up
        sync(device)
        start = time.perf_counter()
        for t in range(n_samples):  # one full-window pass per sample, as naive_generate does once t >= rf
            net._run(window, [cond[:, i, :, t : t + rf] for i in range(cond.size(1))])
        sync(device)
    return batch * n_samples / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--quick", action="store_true", help="fewer samples (a smoke run)")
    args = parser.parse_args()
    device = args.device
    scale = 0.1 if args.quick else 1.0
    # Samples per utterance for the cached and the naive generator at each (size, batch).
    plan = {
        ("tiny", 1): (16000, 400),
        ("tiny", 32): (4000, 100),
        ("paper", 1): (4000, 16),
        ("paper", 32): (1000, 3),
    }
    print(f"device {device}, {os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"{'decoder':8} {'batch':>5} {'cached samples/s':>17} {'naive samples/s':>16} {'cached/naive':>13}")
    for (name, batch), (n_cached, n_naive) in plan.items():
        net = build(name, device)
        # sanity check the naive path is the real reference: it equals generate() on a short greedy run
        lat = torch.randn(1, net.cond_in_channels, 1, device=device)
        spk = torch.zeros(1, dtype=torch.long, device=device)
        assert torch.equal(
            net.generate(lat, spk, temperature=0)[:, :16], naive_generate(net, lat, spk, 16, temperature=0)
        )
        cached = time_cached(net, batch, max(64, int(n_cached * scale)), device)
        naive = time_naive(net, batch, max(2, int(n_naive * scale)), device)
        print(f"{name:8} {batch:5d} {cached:17,.0f} {naive:16,.1f} {cached / naive:12,.0f}x")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak resident memory {peak:,.0f} MiB")
    if device == "cuda":
        print(f"peak CUDA memory {torch.cuda.max_memory_allocated() / 2**20:,.0f} MiB")


if __name__ == "__main__":
    main()
