"""Checkpoints: atomic writes, the resolved config and speaker list inside, ``weights_only`` loading,
a sha256 of the weights checked on load."""

from __future__ import annotations

import hashlib
import pickle
import random
import re
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .config import Config, PriorExperiment, apply_overrides, merge
from .errors import CheckpointError, ConfigError
from .fileio import atomic_write

FORMAT = 1
STEP_PATTERN = re.compile(r"^step_(\d+)\.pt$")
ZIP_MAGIC = b"PK\x03\x04"  # torch.save writes a zip archive


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    """Write ``state`` with torch.save to a temporary file in the same folder, fsync, then rename.

    A crash at any point leaves either the old file or the new one at ``path``, never a torn one.
    When ``state`` holds model weights (``model``), their sha256 is stored beside them (``model_sha256``)
    so that ``load_checkpoint`` finds a file corrupted later on disk or in transit.
    """
    if isinstance(state.get("model"), dict):
        state = {**state, "model_sha256": weights_sha256(state["model"])}
    return atomic_write(path, lambda f: torch.save({"format": FORMAT, **state}, f))


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint with ``torch.load(weights_only=True)`` (no arbitrary code is unpickled) and check it.

    Checked: it is ours (format, config), its config is valid, its weights match their sha256 (when
    stored: older checkpoints have none) and have the names and shapes its config's model has.

    Raises:
        CheckpointError: one line naming the file, for a missing, empty, foreign, torn or corrupted
            file, a missing ``model`` entry, or weights that do not fit the config.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # torch raises many types for a torn or foreign file
        raise CheckpointError(f"{path}: {_unreadable(path, e)}") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT or not isinstance(state.get("config"), dict):
        raise CheckpointError(f"{path}: not an audio_vqvae checkpoint")
    weights = state.get("model")
    if not isinstance(weights, dict) or not all(isinstance(v, torch.Tensor) for v in weights.values()):
        raise CheckpointError(f"{path}: no model weights in it (no 'model' entry of tensors)")
    expected = state.get("model_sha256")
    if expected is not None and weights_sha256(weights) != expected:
        raise CheckpointError(f"{path}: corrupted: the weights do not match the sha256 saved with them")
    try:
        mismatch = weights_mismatch(model_builder(state, path), weights)
    except ConfigError as e:  # a hand-edited config, or sizes no model can have (VQVAE.from_config)
        raise CheckpointError(f"{path}: its config is not valid ({e})") from None
    if mismatch:
        raise CheckpointError(f"{path}: the weights do not fit the model its config describes ({mismatch})")
    return state


def _unreadable(path: Path, error: Exception) -> str:
    """Why torch.load failed, in words (torch's own messages suggest weights_only=False or say 'KeyError: 101')."""
    with path.open("rb") as f:
        head = f.read(len(ZIP_MAGIC))
    if not head:
        return "empty file (0 bytes), not a checkpoint"
    if head != ZIP_MAGIC:
        return "not a checkpoint (not a file written by torch.save)"
    if isinstance(error, pickle.UnpicklingError) and "weights_only" in str(error):
        return "not an audio_vqvae checkpoint (it holds Python objects, not only tensors and plain values)"
    if not zipfile.is_zipfile(path):
        return "torn or truncated checkpoint (incomplete zip archive)"
    first = (str(error).splitlines() or [""])[0]
    return f"cannot be loaded ({type(error).__name__}: {first})"


def weights_sha256(weights: dict[str, torch.Tensor]) -> str:
    """sha256 of a state dict: each tensor's name, dtype, shape and bytes, in sorted name order (hex)."""
    digest = hashlib.sha256()
    for name in sorted(weights):
        t = weights[name].detach()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update(t.cpu().contiguous().reshape(-1).view(torch.uint8).numpy())
    return digest.hexdigest()


def model_builder(state: dict[str, Any], path: str | Path) -> Callable[[], torch.nn.Module]:
    """What builds the model a checkpoint's config describes: a code prior's or a VQ-VAE's."""
    if state.get("kind") == PRIOR_KIND:
        from .models.prior import CodePrior

        prior_config = prior_config_from_checkpoint(state, path).model
        return lambda: CodePrior.from_config(prior_config)
    from .models.vqvae import VQVAE

    model_config = config_from_checkpoint(state, path).model
    return lambda: VQVAE.from_config(model_config)


def weights_mismatch(build: Callable[[], torch.nn.Module], weights: dict[str, torch.Tensor]) -> str:
    """How a state dict differs in names and shapes from the model ``build()`` makes ("" if it fits).

    The model is built on the meta device (no memory, no initialisation) with the RNG state kept.
    """
    with torch.random.fork_rng(devices=[]), torch.device("meta"):
        expected = {k: tuple(v.shape) for k, v in build().state_dict().items()}
    got = {k: tuple(v.shape) for k, v in weights.items()}
    missing = [k for k in expected if k not in got]
    unexpected = [k for k in got if k not in expected]
    shapes = [f"{k} {got[k]} not {expected[k]}" for k in expected if k in got and got[k] != expected[k]]
    parts = [
        f"{label} {', '.join(items[:3])}{', ...' if len(items) > 3 else ''}"
        for label, items in (("missing", missing), ("unexpected", unexpected), ("shape of", shapes))
        if items
    ]
    return "; ".join(parts)


# Keys added after checkpoints were first written, with the value that reproduces the older models:
# a checkpoint without them was trained without these features, whatever today's defaults are.
LEGACY_VALUES: dict[str, Any] = {
    "model": {
        "mel_loss_weight": None,
        "pre_emphasis": 0.0,
        "encoder": {"layer_norm": False, "frontend": "waveform"},
        "quantizer": {"batch_norm": False, "cosine_similarity": False},
    }
}


def config_from_checkpoint(state: dict[str, Any], path: str | Path = "checkpoint") -> Config:
    """The resolved experiment config stored in a VQ-VAE checkpoint (keys it predates get their legacy values).

    Raises:
        CheckpointError: the checkpoint is a code prior's.
    """
    if state.get("kind") == PRIOR_KIND:
        raise CheckpointError(f"{path}: a code prior's checkpoint (train-prior), not a VQ-VAE's")
    return apply_overrides(Config(), merge(LEGACY_VALUES, state["config"]))


PRIOR_KIND = "prior"  # the ``kind`` of a code prior's checkpoint (a VQ-VAE's has none)


def prior_config_from_checkpoint(state: dict[str, Any], path: str | Path) -> PriorExperiment:
    """The ``PriorExperiment`` stored in a code prior's checkpoint; CheckpointError for any other file."""
    if state.get("kind") != PRIOR_KIND:
        raise CheckpointError(f"{path}: not a code prior's checkpoint (audio-vqvae train-prior writes them)")
    return apply_overrides(PriorExperiment(), state["config"])


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
