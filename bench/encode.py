"""Encoding speed of the default encoder on the CPU, as a multiple of real time, and its peak memory.

Encodes one long random waveform to codes (encoder + nearest-code search) with the chunked
encoder that ``audio-vqvae encode`` uses, after a short warm-up, in one timed run with torch
threads = the cores this process may use. Weights are random (speed does not depend on them).

    python bench/encode.py [--seconds 600] [--chunk-seconds 4] [--batch-seconds 16]
                           [--set encoder.channels=256 ...] [--whole] [--bf16]

``--set`` changes the model config (e.g. the encoder of an older default, for a before/after);
``--whole`` also times ``model.encode`` of the whole waveform at once (memory grows with length).
"""

from __future__ import annotations

import argparse
import os
import resource
import time

import torch

from audio_vqvae.config import apply_overrides, parse_assignments, preset
from audio_vqvae.inference.windows import BATCH_SECONDS, CHUNK_SECONDS, encode_chunked
from audio_vqvae.models.vqvae import VQVAE


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def gflop_per_second_of_audio(model: VQVAE) -> float:
    """Multiply-adds x 2 of the encoder and the code search for one second of audio."""
    enc, rate = model.encoder, model.sample_rate
    flops, c_in, frames = 0.0, 1, float(rate)
    for conv, c in zip(enc.convs, enc.channels):
        frames /= conv.stride[0]
        flops += 2 * frames * c_in * c * conv.kernel_size[0]
        c_in = c
    flops += len(enc.residual) * 2 * frames * c_in * c_in * 4  # kernel-3 and 1x1 conv per block
    flops += 2 * frames * c_in * model.quantizer.dim + 2 * frames * model.quantizer.dim * model.quantizer.codebook_size
    return flops / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=600.0, help="audio length (default 600)")
    parser.add_argument("--chunk-seconds", type=float, default=CHUNK_SECONDS)
    parser.add_argument("--batch-seconds", type=float, default=BATCH_SECONDS)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="model config override")
    parser.add_argument("--whole", action="store_true", help="also time model.encode on the whole waveform")
    parser.add_argument("--bf16", action="store_true", help="run under bfloat16 autocast")
    args = parser.parse_args()

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    torch.set_num_threads(cores)
    cfg = apply_overrides(preset("paper"), parse_assignments(args.set))
    torch.manual_seed(0)
    model = VQVAE.from_config(cfg).eval()
    rate = model.sample_rate
    wav = torch.randn(int(args.seconds * rate)) * 0.1
    enc = model.encoder
    print(
        f"encoder: strides {list(enc.strides)}, channels {list(enc.channels)}, {len(enc.residual)} residual blocks, "
        f"{sum(p.numel() for p in enc.parameters()):,} parameters, {gflop_per_second_of_audio(model):.3f} GFLOP "
        f"per second of audio"
    )
    print(f"torch {torch.__version__}, {cores} cores, {torch.get_num_threads()} threads, {args.seconds:g} s of audio")
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16)

    def chunked() -> int:
        with torch.inference_mode(), autocast:
            out = encode_chunked(model, [wav], chunk_seconds=args.chunk_seconds, batch_seconds=args.batch_seconds)
            return sum(e.codes.numel() for e in out)

    with torch.inference_mode(), autocast:
        model.encode(wav[: 2 * rate])  # warm-up
        list(encode_chunked(model, [wav[: 30 * rate]], chunk_seconds=args.chunk_seconds))
    rss0 = peak_rss_mb()
    start = time.perf_counter()
    frames = chunked()
    elapsed = time.perf_counter() - start
    print(
        f"chunked ({args.chunk_seconds:g} s windows, {args.batch_seconds:g} s per pass): {frames} codes in "
        f"{elapsed:.2f} s = {args.seconds / elapsed:.0f}x real time; peak RSS {peak_rss_mb():.0f} MB "
        f"(+{peak_rss_mb() - rss0:.0f} MB over the warm-up's)"
    )
    if args.whole:
        rss0 = peak_rss_mb()
        start = time.perf_counter()
        with torch.inference_mode(), autocast:
            codes = model.encode(wav)
        elapsed = time.perf_counter() - start
        print(
            f"whole file: {codes.numel()} codes in {elapsed:.2f} s = {args.seconds / elapsed:.0f}x real time; "
            f"peak RSS {peak_rss_mb():.0f} MB (+{peak_rss_mb() - rss0:.0f} MB)"
        )


if __name__ == "__main__":
    main()
