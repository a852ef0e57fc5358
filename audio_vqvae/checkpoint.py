"""Checkpoints: atomic writes, the resolved config and speaker list inside, ``weights_only`` loading."""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .config import Config, apply_overrides, merge
from .fileio import atomic_write

FORMAT = 1
STEP_PATTERN = re.compile(r"^step_(\d+)\.pt$")


class CheckpointError(RuntimeError):
    """A checkpoint is missing, unreadable or not ours; the message names the file."""


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    """Write ``state`` with torch.save to a temporary file in the same folder, fsync, then rename.

    A crash at any point leaves either the old file or the new one at ``path``, never a torn one.
    """
    return atomic_write(path, lambda f: torch.save({"format": FORMAT, **state}, f))


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint with ``torch.load(weights_only=True)`` (no arbitrary code is unpickled)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # torch raises many types for a torn or foreign file
        raise CheckpointError(
            f"{path}: not a readable checkpoint ({type(e).__name__}: {str(e).splitlines()[0]})"
        ) from None
    if not isinstance(state, dict) or state.get("format") != FORMAT or "config" not in state:
        raise CheckpointError(f"{path}: not an audio_vqvae checkpoint")
    return state


# Keys added after checkpoints were first written, with the value that reproduces the older models:
# a checkpoint without them was trained without these features, whatever today's defaults are.
LEGACY_VALUES: dict[str, Any] = {
    "model": {
        "mel_loss_weight": None,
        "encoder": {"layer_norm": False, "frontend": "waveform"},
        "quantizer": {"batch_norm": False, "cosine_similarity": False},
    }
}


def config_from_checkpoint(state: dict[str, Any]) -> Config:
    """The resolved experiment config stored in a checkpoint (keys it predates get their legacy values)."""
    return apply_overrides(Config(), merge(LEGACY_VALUES, state["config"]))


def rng_state() -> dict[str, Any]:
    """Every random-number generator's state, as tensors and plain values (``weights_only``-safe)."""
    np_state = np.random.get_state()
    py_version, py_internal, py_gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {
            "keys": torch.from_numpy(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "python": {"version": py_version, "internal": torch.tensor(py_internal, dtype=torch.int64), "gauss": py_gauss},
    }


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what ``rng_state`` saved."""
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    n = state["numpy"]
    np.random.set_state(
        ("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"])
    )
    p = state["python"]
    random.setstate((p["version"], tuple(p["internal"].tolist()), p["gauss"]))


def step_checkpoints(folder: str | Path) -> list[Path]:
    """Numbered checkpoints ``step_NNNNNNNN.pt`` in a folder, oldest first."""
    folder = Path(folder)
    found = [(int(m.group(1)), p) for p in folder.glob("step_*.pt") if (m := STEP_PATTERN.match(p.name))]
    return [p for _, p in sorted(found)]


def prune_checkpoints(folder: str | Path, keep: int) -> list[Path]:
    """Delete all but the newest ``keep`` numbered checkpoints (``last.pt`` and ``best.pt`` stay)."""
    old = step_checkpoints(folder)[: -keep or None] if keep > 0 else step_checkpoints(folder)
    for p in old:
        p.unlink()
    return old
