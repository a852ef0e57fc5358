"""Checkpoints: atomic writes survive a crash, weights_only loading, checksums, RNG round trip, pruning."""

from __future__ import annotations

import random
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from audio_vqvae.checkpoint import (
    CheckpointError,
    load_checkpoint,
    prune_checkpoints,
    rng_state,
    save_checkpoint,
    set_rng_state,
    step_checkpoints,
)
from audio_vqvae.config import apply_overrides, experiment_config, to_dict
from audio_vqvae.models.vqvae import VQVAE

TINY = experiment_config("tiny")


def tiny_state(**extra) -> dict:
    """What a checkpoint needs: a config and weights that fit it (a fresh tiny model's)."""
    torch.manual_seed(0)
    return {"config": to_dict(TINY), "model": VQVAE.from_config(TINY.model).state_dict(), **extra}


def test_crash_during_write_leaves_previous_checkpoint_loadable(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    save_checkpoint(path, tiny_state(step=1))
    before = path.read_bytes()
    real_save = torch.save

    def torn_save(obj, f, *a, **k):
        f.write(b"PK\x03\x04 half a checkpoint")  # some bytes reach the disk, then the process dies
        raise KeyboardInterrupt("killed mid-write")

    monkeypatch.setattr(torch, "save", torn_save)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, tiny_state(step=2))
    monkeypatch.setattr(torch, "save", real_save)
    assert path.read_bytes() == before
    assert load_checkpoint(path)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temporary file left behind


def test_foreign_and_torn_files_give_errors_naming_them(tmp_path):
    bad = tmp_path / "torn.pt"
    bad.write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="torn.pt"):
        load_checkpoint(bad)
    torch.save({"state_dict": {}}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not an audio_vqvae checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="missing.pt"):
        load_checkpoint(tmp_path / "missing.pt")


def test_model_rebuilds_from_checkpoint_alone(tmp_path):
    cfg = experiment_config("tiny")
    torch.manual_seed(0)
    model = VQVAE.from_config(cfg.model)
    save_checkpoint(tmp_path / "m.pt", {"config": to_dict(cfg), "speakers": ["a", "b"], "model": model.state_dict()})
    loaded = VQVAE.load(tmp_path / "m.pt")
    assert loaded.speakers == ["a", "b"] and not loaded.training
    for (k, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), k
    wav = torch.randn(1, 640) * 0.1
    assert torch.equal(model.eval().encode(wav), loaded.encode(wav))


def test_checkpoint_written_before_new_model_options_loads_without_them(tmp_path):
    """Keys added later (mel decoder, encoder layer norm, quantizer normalisation) take the values of
    the model the checkpoint holds, not today's defaults."""
    old = apply_overrides(
        experiment_config("tiny"),
        {"model": {"mel_loss_weight": None, "encoder": {"layer_norm": False}}},
    )
    old = apply_overrides(old, {"model": {"quantizer": {"batch_norm": False, "cosine_similarity": False}}})
    torch.manual_seed(0)
    model = VQVAE.from_config(old.model)
    config = to_dict(old)
    del config["model"]["mel_loss_weight"], config["model"]["mel_conditioning"], config["model"]["mel_decoder"]
    del config["model"]["encoder"]["layer_norm"]
    del config["model"]["quantizer"]["batch_norm"], config["model"]["quantizer"]["cosine_similarity"]
    save_checkpoint(tmp_path / "old.pt", {"config": config, "speakers": ["a"], "model": model.state_dict()})
    loaded = VQVAE.load(tmp_path / "old.pt")
    assert loaded.mel_decoder is None and not loaded.quantizer.cosine_similarity
    wav = torch.randn(1, 640) * 0.1
    assert torch.equal(model.eval().encode(wav), loaded.encode(wav))


def test_rng_state_round_trip_through_a_checkpoint(tmp_path):
    state = tiny_state()
    torch.manual_seed(1)
    np.random.seed(2)
    random.seed(3)
    save_checkpoint(tmp_path / "r.pt", {**state, "rng": rng_state()})
    expected = (torch.rand(3), np.random.rand(3), random.random())
    torch.manual_seed(9)
    np.random.seed(9)
    random.seed(9)
    set_rng_state(load_checkpoint(tmp_path / "r.pt")["rng"])
    got = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(expected[0], got[0]) and np.array_equal(expected[1], got[1]) and expected[2] == got[2]


def test_prune_keeps_newest_numbered_and_named_checkpoints(tmp_path):
    for step in (5, 10, 15, 20):
        save_checkpoint(tmp_path / f"step_{step:08d}.pt", {"config": {}})
    for name in ("last.pt", "best.pt"):
        save_checkpoint(tmp_path / name, {"config": {}})
    prune_checkpoints(tmp_path, keep=2)
    assert [p.name for p in step_checkpoints(tmp_path)] == ["step_00000015.pt", "step_00000020.pt"]
    assert (tmp_path / "last.pt").exists() and (tmp_path / "best.pt").exists()


def flip_bytes_inside_largest_tensor(src: Path, dst: Path, n: int = 16) -> None:
    """Copy a checkpoint, inverting ``n`` bytes in the middle of its largest tensor's stored data."""
    data = bytearray(src.read_bytes())
    info = max((i for i in zipfile.ZipFile(src).infolist() if "/data/" in i.filename), key=lambda i: i.file_size)
    name_len, extra_len = struct.unpack("<HH", data[info.header_offset + 26 : info.header_offset + 30])
    start = info.header_offset + 30 + name_len + extra_len + info.file_size // 2  # stored, not compressed
    data[start : start + n] = bytes(b ^ 0xFF for b in data[start : start + n])
    dst.write_bytes(bytes(data))


def test_corrupted_weights_fail_on_load_naming_the_file(tmp_path):
    save_checkpoint(tmp_path / "last.pt", tiny_state(step=3, speakers=["a"]))
    flip_bytes_inside_largest_tensor(tmp_path / "last.pt", tmp_path / "flipped.pt")
    with pytest.raises(CheckpointError, match=r"flipped\.pt: corrupted") as e:
        VQVAE.load(tmp_path / "flipped.pt")
    assert "\n" not in str(e.value)
    assert load_checkpoint(tmp_path / "last.pt")["step"] == 3  # the intact file loads


def test_checkpoint_written_before_checksums_still_loads(tmp_path):
    state = tiny_state(speakers=["a"])
    torch.save({"format": 1, **state}, tmp_path / "old.pt")  # no model_sha256, as written before it existed
    loaded = VQVAE.load(tmp_path / "old.pt")
    for k, v in state["model"].items():
        assert torch.equal(loaded.state_dict()[k], v), k


@pytest.mark.parametrize(
    "content, reason",
    [
        (b"", "empty file"),
        (bytes(range(256)) * 16, "not a checkpoint"),  # random bytes
        (b"hello world\n" * 40, "not a checkpoint"),  # a text file (torch said "KeyError: 101")
        (None, "torn or truncated"),  # the first half of a real checkpoint
    ],
)
def test_empty_foreign_and_truncated_files_are_one_line_errors(tmp_path, content, reason):
    bad = tmp_path / "bad.pt"
    if content is None:
        save_checkpoint(tmp_path / "good.pt", tiny_state())
        content = (tmp_path / "good.pt").read_bytes()[:4000]
    bad.write_bytes(content)
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(bad)
    message = str(e.value)
    assert message.startswith(f"{bad}: ") and reason in message and "\n" not in message, message
    assert "weights_only" not in message  # torch's advice to unpickle arbitrary code is not repeated


def test_checkpoint_without_weights_or_with_weights_its_config_does_not_fit(tmp_path):
    state = tiny_state()
    save_checkpoint(tmp_path / "no_model.pt", {"config": state["config"], "step": 1})
    with pytest.raises(CheckpointError, match=r"no_model\.pt: no model weights"):
        VQVAE.load(tmp_path / "no_model.pt")
    config = to_dict(apply_overrides(TINY, {"model": {"decoder": {"n_stacks": 3}}}))
    save_checkpoint(tmp_path / "edited.pt", {**state, "config": config})
    with pytest.raises(CheckpointError, match=r"edited\.pt: the weights do not fit.*missing decoder\.layers\.8"):
        VQVAE.load(tmp_path / "edited.pt")
    config["model"]["decoder"]["n_stacks"] = 0
    save_checkpoint(tmp_path / "invalid.pt", {**state, "config": config})
    with pytest.raises(CheckpointError, match=r"invalid\.pt: its config is not valid.*model\.decoder\.n_stacks"):
        VQVAE.load(tmp_path / "invalid.pt")
