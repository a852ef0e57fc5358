"""Training: the CLI run learns, resume is exact, the non-finite guard, 2-process DDP, clear errors."""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from stop_signal import sigterm_once_started

from audio_vqvae import distributed
from audio_vqvae.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from audio_vqvae.config import ConfigError, experiment_config, merge, parse_assignments
from audio_vqvae.models.vqvae import VQVAE
from audio_vqvae.training import TrainingError, lr_factor, train

ROOT = Path(__file__).resolve().parents[1]
BASE = {
    "data": {"segment_length": 1024, "batch_size": 4, "num_workers": 0, "valid_utterances": 3},
    "optim": {"lr": 0.003, "warmup_steps": 5},
    "train": {
        "steps": 12,
        "log_every": 4,
        "valid_every": 4,
        "audio_every": 8,
        "audio_seconds": 0.02,
        "checkpoint_every": 4,
        "keep_checkpoints": 2,
    },
}


def write_conf(path: Path, extra: dict | None = None) -> Path:
    path.write_text(yaml.safe_dump(merge(BASE, extra or {})))
    return path


def cli(*args: str, env: dict | None = None, launcher: list[str] | None = None) -> subprocess.CompletedProcess:
    cmd = (launcher or [sys.executable, "-m"]) + ["audio_vqvae", *args]
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT, env=full_env)


def scalars(exp: Path, tag: str) -> list[float]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(exp / "tensorboard"))
    acc.Reload()
    return [e.value for e in acc.Scalars(tag)]


def test_lr_schedule_warms_up_then_decays():
    f = [lr_factor(s, 10, 100, 0.1) for s in range(100)]
    assert f[0] == pytest.approx(0.1) and f[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(f[10:], f[11:])) and f[-1] == pytest.approx(0.1, abs=1e-3)


def test_cli_training_run_on_the_synthetic_corpus_learns_logs_and_checkpoints(synthetic_corpus, tmp_path):
    extra = {
        "optim": {"lr": 0.01, "min_lr_ratio": 0.5},
        "train": {"steps": 120, "log_every": 20, "valid_every": 60, "audio_every": 120, "checkpoint_every": 40},
    }
    conf = write_conf(tmp_path / "c.yaml", extra)
    exp = tmp_path / "exp"
    out = cli("train", "--preset", "tiny", "--config", str(conf), "--data", str(synthetic_corpus), "--out", str(exp))
    assert out.returncode == 0, out.stderr[-3000:]
    losses = scalars(exp, "loss/total")
    assert len(losses) == 6 and sum(losses[-3:]) / 3 < 0.9 * losses[0], losses
    for tag in (
        "loss/reconstruction",
        "vq/commitment",
        "vq/perplexity_window",
        "vq/codes_used_window",
        "vq/dead_codes",
        "vq/dead_codes_window",
        "loss/mel",
        "optim/lr",
        "optim/grad_norm",
        "speed/samples_per_s",
        "valid/loss",
    ):
        assert scalars(exp, tag), tag
    state = load_checkpoint(exp / "last.pt")
    assert state["step"] == 120 and state["speakers"] == ["spk00", "spk01", "spk02"]
    assert state["config"]["model"]["decoder"]["n_speakers"] == 3  # set from the speaker list
    assert sorted(p.name for p in exp.glob("*.pt")) == ["best.pt", "last.pt", "step_00000080.pt", "step_00000120.pt"]
    assert yaml.safe_load((exp / "config.yaml").read_text())["train"]["steps"] == 120


def _final_state(exp: Path) -> dict:
    state = load_checkpoint(exp / "last.pt")
    return {"model": state["model"], "optimizer": state["optimizer"]["state"], "step": state["step"]}


def test_resume_in_a_new_process_gives_identical_parameters(prepared_corpus, tmp_path):
    # EMA codebook, k-means init, dead-code revival and time-jitter all consume state or random numbers.
    extra = {
        "model": {
            "jitter_probability": 0.3,
            "quantizer": {"ema_decay": 0.9, "kmeans_init": True, "revive_dead_codes": True},
        },
        "data": {"num_workers": 1},
    }
    conf = write_conf(tmp_path / "c.yaml", extra)
    args = ["train", "--preset", "tiny", "--config", str(conf), "--data", str(prepared_corpus)]
    straight, split = tmp_path / "straight", tmp_path / "split"
    assert (r := cli(*args, "--out", str(straight))).returncode == 0, r.stderr[-3000:]
    assert (r := cli(*args, "--out", str(split), "--stop-at", "6")).returncode == 0, r.stderr[-3000:]
    assert load_checkpoint(split / "last.pt")["step"] == 6
    assert (r := cli(*args, "--out", str(split))).returncode == 0, r.stderr[-3000:]  # resumes automatically
    a, b = _final_state(straight), _final_state(split)
    assert a["step"] == b["step"] == 12
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    for i in a["optimizer"]:
        for k in a["optimizer"][i]:
            assert torch.equal(a["optimizer"][i][k], b["optimizer"][i][k]), (i, k)
    # and the run really trained: parameters moved from their initial values
    torch.manual_seed(0)
    init = VQVAE.from_config(experiment_config("tiny", {"model": {"decoder": {"n_speakers": 3}}}).model).state_dict()
    assert not torch.equal(init["decoder.head.3.weight"], a["model"]["decoder.head.3.weight"])


def test_time_limit_stops_after_the_step_that_ends_past_it_and_resume_is_exact(prepared_corpus, tmp_path):
    from audio_vqvae.cli import main

    conf = write_conf(tmp_path / "c.yaml", {"train": {"audio_every": None}})
    cfg = experiment_config("tiny", yaml.safe_load(conf.read_text()))
    exp = tmp_path / "limited"
    args = ["train", "--preset", "tiny", "--config", str(conf), "--data", str(prepared_corpus), "--out", str(exp)]
    assert main([*args, "--time-limit", "0"]) == 0  # the CLI's minutes, passed on as seconds
    assert load_checkpoint(exp / "last.pt")["step"] == 1  # a limit of 0: the first step ends past it
    assert train(cfg, prepared_corpus, exp, time_limit=0).step == 2
    assert load_checkpoint(exp / "last.pt")["step"] == 2
    assert train(cfg, prepared_corpus, exp, time_limit=3600).step == 12  # resumes to train.steps
    straight = train(cfg, prepared_corpus, tmp_path / "straight")
    a, b = _final_state(tmp_path / "straight"), _final_state(exp)
    assert straight.step == a["step"] == b["step"] == 12
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k


def test_nonfinite_steps_are_skipped_then_stop_training_keeping_the_checkpoint(
    prepared_corpus, tmp_path, monkeypatch, caplog
):
    cfg = experiment_config("tiny", {**BASE, "train": {**BASE["train"], "steps": 8, "max_nonfinite_steps": 3}})
    original = VQVAE.forward
    bad_calls: set[int] = {3, 4}
    calls = {"n": 0}

    def forward(self, wav, speaker, crop=None):
        out = original(self, wav, speaker, crop)
        if self.training:
            calls["n"] += 1
            if calls["n"] in bad_calls or "all" in bad_calls:
                out.loss = out.loss * float("nan")
        return out

    monkeypatch.setattr(VQVAE, "forward", forward)
    exp = tmp_path / "exp"
    with caplog.at_level(logging.WARNING, logger="audio_vqvae.training"):
        result = train(cfg, prepared_corpus, exp, stop_at=6)
    assert result.step == 6
    assert sum("non-finite" in r.message for r in caplog.records) == 2
    good = (exp / "last.pt").read_bytes()
    bad_calls.add("all")
    with pytest.raises(TrainingError, match="3 non-finite steps in a row.*last.pt"):
        train(dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, steps=20)), prepared_corpus, exp)
    assert (exp / "last.pt").read_bytes() == good


def test_two_process_ddp_keeps_replicas_identical(prepared_corpus, tmp_path):
    extra = {
        "model": {"quantizer": {"ema_decay": 0.9, "kmeans_init": True, "revive_dead_codes": True}},
        "train": {"steps": 6, "checkpoint_every": 3, "valid_every": 3, "audio_every": None},
    }
    conf = write_conf(tmp_path / "c.yaml", extra)
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m"]
    out = cli(
        "train",
        "--preset",
        "tiny",
        "--config",
        str(conf),
        "--data",
        str(prepared_corpus),
        "--out",
        str(tmp_path / "exp"),
        launcher=launcher,
    )
    assert out.returncode == 0, out.stderr[-4000:]
    state = load_checkpoint(tmp_path / "exp" / "last.pt")
    assert state["world_size"] == 2 and state["step"] == 6
    steps = [line for line in (tmp_path / "exp" / "train.log").read_text().splitlines() if " step 6: " in line]
    assert len(steps) == 2  # rank 0's lines only (training and validation), each once
    # the replica check that ran at each checkpoint compares these checksums across ranks
    model = VQVAE.from_config(experiment_config("tiny").model)
    before = distributed.parameter_checksum(model)
    with torch.no_grad():
        model.quantizer.usage[0] += 1e-3 if hasattr(model.quantizer, "usage") else 0
        next(model.parameters()).view(-1)[0] += 1e-6
    assert not torch.equal(before, distributed.parameter_checksum(model))


def test_train_log_holds_the_step_lines_and_a_resumed_run_appends(prepared_corpus, tmp_path):
    cfg = experiment_config("tiny", merge(BASE, {"train": {"audio_every": None}}))
    exp = tmp_path / "exp"
    assert train(cfg, prepared_corpus, exp, stop_at=4).step == 4  # no logging.basicConfig: the console is quiet
    first = (exp / "train.log").read_text(encoding="utf-8")
    assert (exp / "tensorboard").is_dir()
    step_lines = [line for line in first.splitlines() if " INFO step 4: " in line]
    assert len(step_lines) == 2 and "loss/total" in step_lines[0] and "validation loss" in step_lines[1]
    assert "starting" in first and " step 8: " not in first
    assert train(cfg, prepared_corpus, exp).step == 12
    second = (exp / "train.log").read_text(encoding="utf-8")
    assert second.startswith(first)  # appended, not rewritten
    added = second[len(first) :]
    assert "resuming at step 4" in added and " INFO step 12: " in added and " step 4: " not in added
    assert logging.getLogger("audio_vqvae").handlers == []  # the file is let go when training returns


def test_user_errors_are_one_line(prepared_corpus, tmp_path):
    conf = write_conf(tmp_path / "c.yaml")
    base = ["train", "--preset", "tiny", "--config", str(conf), "--data", str(prepared_corpus)]
    out = cli(*base, "--out", str(tmp_path / "e1"), "--set", "train.bogus=1")
    assert out.returncode == 2 and "train.bogus" in out.stderr and out.stderr.strip().count("\n") == 0
    out = cli("train", "--preset", "tiny", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "e2"))
    assert out.returncode == 2 and "nowhere" in out.stderr and out.stderr.strip().count("\n") == 0
    exp = tmp_path / "e3"
    assert cli(*base, "--out", str(exp), "--stop-at", "2").returncode == 0
    out = cli(*base, "--out", str(exp), "--no-resume")
    assert out.returncode == 2 and "already holds a checkpoint" in out.stderr
    out = cli(*base, "--out", str(exp), "--set", "model.decoder.n_stacks=1")
    assert out.returncode == 2 and "model.decoder.n_stacks" in out.stderr
    out = cli(*base, "--out", str(tmp_path / "e4"), "--resume")
    assert out.returncode == 2 and "nothing to resume" in out.stderr
    out = cli(*base, "--out", str(exp), "--set", "train.steps=4")  # more steps is a legal change on resume
    assert out.returncode == 0, out.stderr[-2000:]
    assert load_checkpoint(exp / "last.pt")["step"] == 4


def test_bf16_autocast_training_on_cpu_tracks_fp32(prepared_corpus, tmp_path):
    def run(precision: str) -> list[float]:
        cfg = experiment_config(
            "tiny",
            {
                **BASE,
                "optim": {"lr": 0.01, "warmup_steps": 2},
                "train": {**BASE["train"], "steps": 40, "log_every": 10, "precision": precision, "audio_every": None},
            },
        )
        losses = []
        original = VQVAE.forward

        def forward(self, wav, speaker, crop=None):
            out = original(self, wav, speaker, crop)
            if self.training:
                expected = torch.bfloat16 if precision == "bf16" else torch.float32
                assert out.logits.dtype == expected  # autocast really ran the convs in bf16
                losses.append(out.loss.item())
            return out

        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(VQVAE, "forward", forward)
            assert train(cfg, prepared_corpus, tmp_path / precision).step == 40
        return losses

    fp32, bf16 = run("fp32"), run("bf16")
    assert all(math.isfinite(x) for x in bf16)
    mean = lambda xs: sum(xs) / len(xs)  # noqa: E731
    assert mean(bf16[-10:]) < 0.97 * mean(bf16[:5]), bf16  # it learns
    assert abs(mean(bf16[-10:]) - mean(fp32[-10:])) < 0.05 * mean(fp32[-10:]), (fp32[-10:], bf16[-10:])


def test_fp16_loss_scale_overflows_are_skipped_without_tripping_the_nonfinite_guard(prepared_corpus, tmp_path, caplog):
    """GradScaler starts too high on purpose: its overflow steps back off the scale, not stop training."""
    train_cfg = {**BASE["train"], "steps": 30, "precision": "fp16", "device": "cpu", "max_nonfinite_steps": 3}
    cfg = experiment_config("tiny", {**BASE, "train": {**train_cfg, "audio_every": None}})
    real = torch.amp.GradScaler
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(torch.amp, "GradScaler", lambda device, enabled: real(device, init_scale=2.0**40, enabled=enabled))
        with caplog.at_level(logging.DEBUG, logger="audio_vqvae.training"):
            assert train(cfg, prepared_corpus, tmp_path / "fp16").step == 30
    overflows = sum("fp16 gradient overflow" in r.message for r in caplog.records)
    assert overflows > 3, "the test needs more overflows in a row than max_nonfinite_steps"
    assert not any("non-finite" in r.message for r in caplog.records)
    state = load_checkpoint(tmp_path / "fp16" / "last.pt")
    assert state["scaler"]["scale"] < 2.0**40
    adam_steps = int(state["optimizer"]["state"][0]["step"])
    assert adam_steps == 30 - overflows, "every step that did not overflow updated the weights"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_cuda_amp_training_runs_and_its_checkpoint_loads_on_the_cpu(prepared_corpus, tmp_path, precision):
    cfg = experiment_config(
        "tiny", {**BASE, "train": {**BASE["train"], "steps": 8, "precision": precision, "device": "cuda"}}
    )
    result = train(cfg, prepared_corpus, tmp_path / precision)
    assert result.step == 8 and math.isfinite(result.best_valid_loss)
    model = VQVAE.load(result.last_checkpoint)  # weights saved from the GPU load on the CPU
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert next(model.parameters()).device.type == "cpu"


def test_sigterm_saves_a_checkpoint_at_the_current_step_and_exits_cleanly(prepared_corpus, tmp_path):
    """A scheduler's SIGTERM, sent to the whole process group (DataLoader worker included)."""
    exp = tmp_path / "exp"
    sets = ["train.steps=100000", "train.checkpoint_every=100000", "train.valid_every=100000", "data.num_workers=1"]
    conf = write_conf(tmp_path / "c.yaml")
    cmd = ["train", "--preset", "tiny", "--config", str(conf), "--data", str(prepared_corpus), "--out", str(exp)]
    returncode, out, err = sigterm_once_started([*cmd, "--set", *sets])
    assert returncode == 128 + signal.SIGTERM, err[-3000:]
    assert "Traceback" not in err and "stopped by SIGTERM after step" in err
    step = load_checkpoint(exp / "last.pt")["step"]
    assert 1 <= step < 100000
    assert out.strip() == f"stopped by SIGTERM at step {step}; checkpoint {exp / 'last.pt'}; run again to resume"
    cfg = experiment_config("tiny", merge(BASE, parse_assignments(sets)))
    assert train(cfg, prepared_corpus, exp, stop_at=step + 1).step == step + 1  # and it resumes


def test_missing_audio_files_are_reported_before_training_starts(prepared_corpus, tmp_path):
    corpus = tmp_path / "corpus"
    shutil.copytree(prepared_corpus, corpus)
    for wav in sorted((corpus / "wav" / "spk1").glob("*.wav"))[:2]:
        wav.unlink()
    cfg = experiment_config("tiny", BASE)
    with pytest.raises(TrainingError, match=r"train\.jsonl: 2 of its 9 audio files are missing: .*spk1_000\.wav"):
        train(cfg, corpus, tmp_path / "exp")
    assert not (tmp_path / "exp").exists()


def test_bad_periods_steps_and_checkpoints_are_refused_before_training(prepared_corpus, tmp_path):
    cfg = experiment_config("tiny", BASE)
    for key in ("checkpoint_every", "log_every", "valid_every"):  # a ZeroDivisionError after step 1 before
        bad = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, **{key: 0}))
        with pytest.raises(ConfigError, match=f"train.{key}"):
            train(bad, prepared_corpus, tmp_path / "exp")
    with pytest.raises(TrainingError, match="stop_at must be a step >= 1, got -5"):
        train(cfg, prepared_corpus, tmp_path / "exp", stop_at=-5)
    assert not (tmp_path / "exp").exists()
    exp = tmp_path / "empty"
    exp.mkdir()
    (exp / "last.pt").write_bytes(b"")  # a 0-byte last.pt: an IndexError inside the error handler before
    with pytest.raises(CheckpointError, match=r"last\.pt: empty file"):
        train(cfg, prepared_corpus, exp)
    state = load_checkpoint(train(cfg, prepared_corpus, tmp_path / "ok", stop_at=1).last_checkpoint)
    del state["optimizer"], state["format"], state["model_sha256"]
    save_checkpoint(exp / "last.pt", state)  # a hand-edited checkpoint: weights, but no optimizer state
    with pytest.raises(TrainingError, match=r"last\.pt: cannot resume from it: no optimizer"):
        train(cfg, prepared_corpus, exp)


def test_stale_temporaries_of_a_killed_save_are_removed_when_training_starts(prepared_corpus, tmp_path):
    exp = tmp_path / "exp"
    exp.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # a process id that is gone, as a killed run's is
    names = [".last.pt.{}-a1b2c3.tmp", ".best.pt.{}-x9y8.tmp", ".step_00000004.pt.{}-q7.tmp"]
    stale = [exp / name.format(dead.pid) for name in names]
    for p in stale:
        p.write_bytes(b"PK half a checkpoint")  # what kill -9 during torch.save leaves
    assert train(experiment_config("tiny", BASE), prepared_corpus, exp, stop_at=1).step == 1
    assert not any(p.exists() for p in stale) and (exp / "last.pt").is_file()
