"""Which weight precision the native loop streams: float32 where the weights fit the cores' L2 caches, bf16 where not.

At batch 1 every sample step multiplies one activation vector by every layer's weights, so the loop
reads all of them once per sample: at paper size (30 layers, 128/256/128) 12.0 MB in float32. Where
that exceeds the L2 caches of the threads that share it, each step streams the weights from L3 (or
memory) and the rate is that bandwidth divided by the bytes: 10,200 samples/s on a Zen 4 EPYC (about
122 GB/s for 2 cores) but 4,200 on a Xeon without avx512_bf16 (about 50 GB/s), 8.6x the PyTorch loop
there (issue 24). bf16 weights halve the bytes (float32 activations and sums; the widening is a shift),
which took that Xeon to 5,870 samples/s, 11.9x. Where the weights fit in L2, the arithmetic is the limit,
bf16 gains little, and float32 keeps the reference's samples exactly (fastgen/__init__.py).

``AUDIO_VQVAE_FASTGEN_WEIGHTS`` = ``auto`` (default) | ``float32`` | ``bfloat16`` overrides the choice.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from ...errors import ConfigError

if TYPE_CHECKING:
    from ...models.wavenet import WaveNet

ENV = "AUDIO_VQVAE_FASTGEN_WEIGHTS"
CHOICES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def _size(text: str) -> int | None:
    """Bytes of a sysfs cache size such as '2048K' or '1M'."""
    text = text.strip().upper()
    scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1:], 1)
    digits = text.rstrip("KMG")
    return int(digits) * scale if digits.isdigit() else None


@functools.cache
def l2_cache_bytes(sysfs: str | Path = "/sys/devices/system/cpu/cpu0/cache") -> int | None:
    """One core's L2 cache in bytes (Linux sysfs, else glibc's sysconf); None where unknown. Read once per path
    (every native generation asks)."""
    for index in sorted(Path(sysfs).glob("index*")):
        try:
            level = (index / "level").read_text().strip()
            kind = (index / "type").read_text().strip()
            size = _size((index / "size").read_text())
        except (OSError, ValueError):
            continue
        if level == "2" and kind in ("Unified", "Data") and size:
            return size
    try:
        size = os.sysconf("SC_LEVEL2_CACHE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None
    return size if size > 0 else None


def streamed_bytes(wavenet: WaveNet, dtype: torch.dtype = torch.float32) -> int:
    """Weight bytes one sample step reads: every layer's dilated and 1x1 output convs and the two head convs."""
    convs = [m for layer in wavenet.layers for m in (layer.conv, layer.out)] + [wavenet.head[1], wavenet.head[3]]
    return sum(m.weight.numel() for m in convs) * (2 if dtype == torch.bfloat16 else 4)


def auto_weight_dtype(wavenet: WaveNet, threads: int, l2_bytes: int | None = None) -> torch.dtype:
    """float32 where the float32 weights fit the ``threads`` cores' L2 caches (or the size is unknown), else bf16.

    ``AUDIO_VQVAE_FASTGEN_WEIGHTS`` (``float32`` or ``bfloat16``) overrides it.

    Args:
        l2_bytes: one core's L2 cache (default ``l2_cache_bytes()``).
    Raises:
        ConfigError: the variable holds another value.
    """
    choice = os.environ.get(ENV, "auto").strip().lower()
    if choice in CHOICES:
        return CHOICES[choice]
    if choice != "auto":
        raise ConfigError(f"{ENV}={choice!r}: expected auto, float32 or bfloat16")
    l2 = l2_cache_bytes() if l2_bytes is None else l2_bytes
    if not l2:
        return torch.float32
    return torch.bfloat16 if streamed_bytes(wavenet) > l2 * max(1, threads) else torch.float32
