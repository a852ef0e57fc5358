"""Generation speed of the WaveNet decoder: native and PyTorch cached generators vs a naive one.

Prints samples/s at batch 1 and 32 for the tiny, small (20 layers, 64/128/64) and paper-size
decoders: the fused native loop (audio_vqvae.generation.fastgen, float32 and bf16 weights; CPU), CUDA-graph
replays of the sample step (audio_vqvae.generation.graphgen; CUDA), the PyTorch
cached reference and the naive generator that re-runs the receptive field for every sample, with
the ratios, the core count and peak memory, all measured in one run. Weights are random (speed
does not depend on them); rates are the best of 3 runs.

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
from audio_vqvae.generation import fastgen, generate, graphgen
from audio_vqvae.generation.fastgen import bench as fastgen_bench
from audio_vqvae.generation.fastgen.weights import auto_weight_dtype, l2_cache_bytes, streamed_bytes
from audio_vqvae.models.wavenet import WaveNet, naive_generate
from audio_vqvae.training.precision import cpu_description

SIZES = {  # decoder overrides of the paper preset; "small" is the 20-layer, 64/128/64 decoder
    "tiny": None,
    "small": {"residual_channels": 64, "gate_channels": 128, "skip_channels": 64, "n_stacks": 2},
    "paper": {},
}


def build(name: str, device: str) -> WaveNet:
    cfg = preset("tiny" if name == "tiny" else "paper")
    decoder = dataclasses.replace(cfg.decoder, **(SIZES[name] or {}))
    torch.manual_seed(0)
    net = WaveNet(
        n_classes=cfg.mu_law_classes,
        cond_in_channels=cfg.quantizer.dim,
        hop_length=64,
        input_noise=decoder.input_noise,
        **decoder.stack_sizes(),
    )
    return net.eval().to(device)


def sync(device: str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def time_cached(net: WaveNet, batch: int, n_samples: int, device: str, backend: str = "torch") -> float:
    """Samples/s (summed over the batch) of ``generation.generate(backend=...)`` for n_samples per utterance.

    "torch" is the PyTorch reference loop; "graph" the CUDA-graph replay, whose time includes its
    capture (once per call, as users run it).
    """
    frames = max(1, n_samples // net.hop_length)
    latents = torch.randn(batch, net.cond_in_channels, frames, device=device)
    speaker = torch.zeros(batch, dtype=torch.long, device=device)
    generate(net, latents[..., :1], speaker, backend=backend)  # warm-up
    sync(device)
    start = time.perf_counter()
    generate(net, latents, speaker, backend=backend)
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


VIEW_OPS = {"aten::slice", "aten::select", "aten::unsqueeze", "aten::squeeze", "aten::flatten", "aten::chunk",
            "aten::view", "aten::t", "aten::transpose", "aten::expand", "aten::to", "aten::split", "aten::lift_fresh",
            "aten::alias", "aten::detach"}  # fmt: skip


def kernels_per_step(net: WaveNet, batch: int, device: str) -> int:
    """Compute ops (kernel launches on a GPU) of one CUDA-graph-ready sample step, profiled eagerly.

    Views launch nothing and are not counted. On a GPU this is the number of graph nodes per step:
    each costs about a microsecond even inside a graph, so it bounds the speed at small batches.
    """
    from torch.profiler import profile

    latents = torch.randn(batch, net.cond_in_channels, 2, device=device)
    speaker = torch.zeros(batch, dtype=torch.long, device=device)
    sampler = graphgen.StaticSampler(net, batch, 2, 1.0, device=device)
    sampler.load(net.init_state(latents, speaker).cond, torch.rand(batch, 2 * net.hop_length, device=device))
    with torch.no_grad():
        sampler.step()
        with profile() as prof:
            sampler.step()
    return sum(e.cpu_parent is None and e.name not in VIEW_OPS for e in prof.events())


def long_utterance(device: str, seconds: float) -> None:
    """A long utterance at paper size, batch 1, through ``generation.generate`` (backend auto: native on
    the CPU, graphs on CUDA) in one pass and in chunks of 250 frames (1 s): the same speed, and memory
    bounded by the chunk, not the utterance."""
    net = build("paper", device)
    frames = int(seconds * 16000) // net.hop_length
    latents = torch.randn(1, net.cond_in_channels, frames, device=device)
    speaker = torch.zeros(1, dtype=torch.long, device=device)
    generate(net, latents[..., :2], speaker)  # warm-up: build, pack, capture
    rates, outs = {}, []
    for label, chunk in (("one pass", None), ("chunks of 250 frames", 250)):
        sync(device)
        start = time.perf_counter()
        out = generate(net, latents, speaker, generator=torch.Generator(device).manual_seed(0), chunk_frames=chunk)
        sync(device)
        rates[label] = out.numel() / (time.perf_counter() - start)
        outs.append(out)
    differ = (outs[0] != outs[1]).nonzero()
    same = "identical samples" if not len(differ) else f"NOT the same samples from sample {int(differ[0, 1]):,}"
    print(
        f"paper, batch 1, {seconds:g} s utterance: "
        + ", ".join(f"{label} {rate:,.0f} samples/s" for label, rate in rates.items())
        + f" ({same})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--quick", action="store_true", help="fewer samples (a smoke run)")
    args = parser.parse_args()
    device = args.device
    scale = 0.1 if args.quick else 1.0
    # Samples per utterance for the native, the PyTorch cached and the naive generator at each (size, batch).
    plan = {
        ("tiny", 1): (32000, 16000, 400),
        ("tiny", 32): (8000, 4000, 100),
        ("small", 1): (32000, 8000, 50),
        ("small", 32): (4000, 2000, 10),
        ("paper", 1): (16000, 4000, 16),
        ("paper", 32): (2000, 1000, 3),
    }
    native_ok = device == "cpu" and fastgen.available()
    graph_ok = torch.device(device).type == "cuda"
    print(f"device {device}, {os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"CPU: {cpu_description()}")
    l2 = l2_cache_bytes()
    print(f"L2 cache per core: {f'{l2 / 2**20:g} MiB' if l2 else 'unknown'} (the native loop streams bf16 weights "
          "where the float32 ones exceed the threads' L2: docs/speed.md)")  # fmt: skip
    if not native_ok:
        print(f"native generator not used: {fastgen.unavailable_reason() or 'not a CPU run'}")
    print(
        f"{'decoder':8} {'batch':>5} {'native fp32':>12} {'native bf16':>12} {'cuda graph':>11} {'torch cached':>13} "
        f"{'naive':>9} {'fast/torch':>11} {'torch/naive':>12} {'fast/naive':>11}  (samples/s; fast: generate()'s)"
    )
    for (name, batch), (n_native, n_cached, n_naive) in plan.items():
        net = build(name, device)
        # sanity check the naive path is the real reference: it equals generate() on a short greedy run
        lat = torch.randn(1, net.cond_in_channels, 1, device=device)
        spk = torch.zeros(1, dtype=torch.long, device=device)
        assert torch.equal(
            generate(net, lat, spk, temperature=0, backend="torch")[:, :16],
            naive_generate(net, lat, spk, 16, temperature=0),
        )
        n = max(64, int(n_native * scale))
        nan = float("nan")
        native = fastgen_bench.time_native(net, batch, n) if native_ok else nan
        native_bf16 = fastgen_bench.time_native(net, batch, n, weight_dtype=torch.bfloat16) if native_ok else nan
        graph = time_cached(net, batch, n, device, backend="graph") if graph_ok else nan
        cached = time_cached(net, batch, max(64, int(n_cached * scale)), device)
        naive = time_naive(net, batch, max(2, int(n_naive * scale)), device)
        # what generate() runs here: the graphs on a GPU, else the native loop with the weights auto picks
        auto = auto_weight_dtype(net, torch.get_num_threads())
        fast = graph if graph_ok else (native_bf16 if auto == torch.bfloat16 else native)
        print(
            f"{name:8} {batch:5d} {native:12,.0f} {native_bf16:12,.0f} {graph:11,.0f} {cached:13,.0f} {naive:9,.1f} "
            f"{fast / cached:10,.1f}x {cached / naive:11,.0f}x {fast / naive:10,.0f}x"
            + ("" if graph_ok or not native_ok else f"   (native weights: {str(auto).removeprefix('torch.')})")
        )
        if native_ok and batch == 1 and name != "tiny":  # each sample step reads every weight once
            mb = streamed_bytes(net) / 1e6
            print(f"{'':15}{mb:.1f} MB of float32 weights per sample step: {native * mb / 1e3:.0f} GB/s float32")
    for name in ("small", "paper") if native_ok else ():
        e = fastgen_bench.bf16_error(build(name, device), 512 if args.quick else 2048)
        print(
            f"{name} bf16 weights vs float32: logits max |err| {e['max_abs']:.3g}, mean {e['mean_abs']:.3g} "
            f"(logit std {e['logit_std']:.3g}), KL {e['kl']:.2g} nats/sample"
        )
    long_utterance(device, 3.0 if args.quick else 30.0)
    for name in ("small", "paper"):
        print(f"{name} CUDA-graph step: {kernels_per_step(build(name, device), 1, device)} kernels per sample step")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak resident memory {peak:,.0f} MiB")
    if torch.device(device).type == "cuda":
        print(f"peak CUDA memory {torch.cuda.max_memory_allocated() / 2**20:,.0f} MiB")


if __name__ == "__main__":
    main()
