"""Training-step speed at paper size: full VQ-VAE step vs a decoder-only step, fp32 and bf16 autocast.

One run prints samples/s of a whole training step (encoder, quantizer, decoder, backward, Adam) at
batch 8 x 8,000 samples in fp32 and bf16 autocast (and fp16 autocast with loss scaling on CUDA),
beside a decoder-only step (the WaveNet alone, the bound for this model),
the ratio, the core count, and the memory per training sample.

    python bench/train.py [--device cpu|cuda] [--steps 5] [--batch 8] [--samples 8000]
"""

from __future__ import annotations

import argparse
import os
import resource
import time

import torch
import torch.nn.functional as F

from audio_vqvae.config import preset
from audio_vqvae.models.vqvae import VQVAE
from audio_vqvae.models.wavenet import shift_right
from audio_vqvae.training.precision import cpu_description, resolve_precision


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def time_steps(step, n: int, device: str) -> float:
    """Seconds per call of ``step`` (after one warm-up call)."""
    step()
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(n):
        step()
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--samples", type=int, default=8000)
    args = parser.parse_args()
    device, B, T = args.device, args.batch, args.samples
    cfg = preset("paper")
    cfg.decoder.n_speakers = 4
    torch.manual_seed(0)
    model = VQVAE.from_config(cfg).to(device).train()
    wav = (0.3 * torch.randn(B, 1, T)).clamp(-1, 1).to(device)
    speaker = torch.arange(B, device=device) % 4
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    N = T // model.hop_length
    latents = torch.randn(B, cfg.quantizer.dim, N, device=device)
    targets = torch.randint(0, 256, (B, N * model.hop_length), device=device)
    inputs = shift_right(targets, 128)
    dec_opt = torch.optim.Adam(model.decoder.parameters(), lr=1e-4)

    device_type = torch.device(device).type

    def full_step(dtype):
        # fp16 needs loss scaling (as audio_vqvae.training does with precision fp16); bf16 does not.
        scaler = torch.amp.GradScaler(device_type, enabled=dtype is torch.float16)

        def step():
            with torch.autocast(device_type, dtype=dtype, enabled=dtype is not None):
                out = model(wav, speaker)
            opt.zero_grad(set_to_none=True)
            scaler.scale(out.loss).backward()
            scaler.step(opt)
            scaler.update()

        return step

    def decoder_step(dtype):
        scaler = torch.amp.GradScaler(device_type, enabled=dtype is torch.float16)

        def step():
            with torch.autocast(device_type, dtype=dtype, enabled=dtype is not None):
                logits = model.decoder(inputs, latents, speaker)
            loss = F.cross_entropy(logits.float(), targets)
            dec_opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(dec_opt)
            scaler.update()

        return step

    print(f"device {device}, {os.cpu_count()} cores, {torch.get_num_threads()} threads, torch {torch.__version__}")
    auto, reason = resolve_precision("auto", torch.device(device))
    print(f"CPU: {cpu_description()}; train.precision auto takes {auto}: {reason}")
    print(f"paper-size model, batch {B} x {T} samples, {args.steps} timed steps each")
    print(f"{'precision':9} {'full step samples/s':>20} {'decoder-only samples/s':>23} {'full/decoder':>13}")
    base = rss_mib()
    precisions = [("fp32", None), ("bf16", torch.bfloat16)]
    if device_type == "cuda":
        precisions.append(("fp16", torch.float16))
    for name, dtype in precisions:
        full = B * T / time_steps(full_step(dtype), args.steps, device)
        dec = B * T / time_steps(decoder_step(dtype), args.steps, device)
        print(f"{name:9} {full:20,.0f} {dec:23,.0f} {full / dec:13.2f}")
    if device_type == "cuda":
        print(
            f"peak CUDA memory {torch.cuda.max_memory_allocated() / 2**20:,.0f} MiB "
            f"({torch.cuda.max_memory_allocated() / 2**10 / (B * T):.1f} KiB per training sample)"
        )
    print(
        f"peak resident memory {rss_mib():,.0f} MiB ({(rss_mib() - base) * 1024 / (B * T):.1f} KiB per training "
        "sample above the model and data)"
    )


if __name__ == "__main__":
    main()
