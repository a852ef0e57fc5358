"""``train.precision: auto``: bf16 autocast where the hardware runs it natively, fp32 (CPU) or fp16 (GPU) elsewhere.

bf16 autocast on a CPU is fast only with native bf16 arithmetic (x86 ``avx512_bf16`` or AMX,
Arm ``bf16``); elsewhere oneDNN emulates it, and a training step runs at about half its fp32 speed
(docs/speed.md). A GPU runs bf16 natively from Ampere on; older ones get fp16 with loss scaling.
"""

from __future__ import annotations

import logging
import platform
from pathlib import Path

import torch

log = logging.getLogger("audio_vqvae.training")

NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16", "bf16")  # x86 (/proc/cpuinfo flags), Arm (Features)


def cpu_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> set[str]:
    """The CPU's feature flags as Linux lists them (``flags`` on x86, ``Features`` on Arm); empty elsewhere."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return set(value.split())
    return set()


FLAGS_THAT_MATTER = (
    "avx2",
    "fma",
    "avx512f",
    "avx512_bf16",
    "avx512_vnni",
    "amx_bf16",
    "amx_tile",
    "asimd",
    "sve",
    "bf16",
)


def cpu_description(cpuinfo: str | Path = "/proc/cpuinfo") -> str:
    """The CPU's model name and the flags that decide matmul speed (vector width, native bf16), for benchmarks."""
    name = platform.processor() or platform.machine()
    try:
        for line in Path(cpuinfo).read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                name = value.strip()
                break
    except OSError:
        pass
    flags = [f for f in FLAGS_THAT_MATTER if f in cpu_flags(cpuinfo)]
    return f"{name}; flags: {' '.join(flags) or 'none of ' + ', '.join(FLAGS_THAT_MATTER)}"


def resolve_precision(precision: str, device: torch.device, flags: set[str] | None = None) -> tuple[str, str]:
    """The precision a run uses, and why.

    Args:
        precision: ``train.precision``: "auto", "fp32", "bf16" or "fp16".
        device: the training device.
        flags: the CPU's flags (``cpu_flags()`` when None).
    Returns:
        ("fp32" | "bf16" | "fp16", a reason to log).
    """
    if precision != "auto":
        return precision, "set in the config"
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return "bf16", f"{torch.cuda.get_device_name(device)} runs bf16 natively"
        return "fp16", f"{torch.cuda.get_device_name(device)} has no native bf16: fp16 with loss scaling"
    if device.type != "cpu":
        return "fp32", f"no automatic choice for {device.type}"
    flags = cpu_flags() if flags is None else flags
    native = sorted(f for f in NATIVE_BF16_FLAGS if f in flags)
    if native:
        return "bf16", f"the CPU has native bf16 ({', '.join(native)})"
    cpu = platform.processor() or platform.machine()
    return "fp32", f"the CPU ({cpu}) has no native bf16 (no avx512_bf16, amx_bf16 or bf16 flag): bf16 would be slower"


def training_precision(precision: str, device: torch.device, log_it: bool = True) -> str:
    """``resolve_precision``, logged at start with its reason (and a warning for fp16 on a CPU)."""
    resolved, reason = resolve_precision(precision, device)
    if log_it:
        log.info("precision %s (train.precision %s: %s)", resolved, precision, reason)
        if resolved == "fp16" and device.type != "cuda":
            log.warning("train.precision fp16 on the CPU is slow and meant for tests: bf16 is the CPU's half precision")
    return resolved
