"""The code prior from the command line: train-prior learns and resumes exactly, sample writes speech and
its codes, evaluate prior scores bits beside n-gram baselines, and bad token files are one-line errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile as sf
import torch
from cli_run import one_line_error, run
from stop_signal import sigterm_once_started
from trained_tiny import trained_checkpoint

from audio_vqvae import VQVAE
from audio_vqvae.checkpoint import load_checkpoint
from audio_vqvae.cli import main
from audio_vqvae.config import PriorExperiment, apply_overrides, parse_assignments
from audio_vqvae.data.manifest import read_manifest
from audio_vqvae.errors import CheckpointError
from audio_vqvae.inference.tokens import read_tokens
from audio_vqvae.models.prior import CodePrior
from audio_vqvae.training.prior import train_prior

TINY = [
    "model.d_model=16", "model.n_layers=2", "model.n_heads=2", "model.max_len=40", "model.dropout=0.0",
    "data.batch_size=4", "optim.warmup_steps=1", "optim.lr=0.01",
    "train.log_every=5", "train.valid_every=10", "train.checkpoint_every=10",
]  # fmt: skip


def pattern(uid: str, n: int, K: int) -> list[int]:
    """Pairs of a code along a fixed cycle (a a b b c c ...), from an offset of the utterance's: after one
    code a bigram can only guess between repeating it and moving on (1 bit), while the two codes before
    tell which (0 bits)."""
    offset = sum(map(ord, uid)) % K
    return [(7 * (i // 2 + offset)) % K for i in range(n)]


def write_tokens(folder: Path, rows: list[tuple[str, list[int]]], K: int, meta: bool = True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "units.txt").write_text("".join(f"{uid}|{' '.join(map(str, c))}\n" for uid, c in rows))
    if meta:
        (folder / "tokens.json").write_text(json.dumps({"codebook_size": K, "frame_rate": 250.0, "hop_length": 64}))
    return folder


@pytest.fixture(scope="module")
def tokens(prepared_corpus, tmp_path_factory) -> dict[str, Path]:
    """Patterned codes (K = 32, the tiny VQ-VAE's) for the corpus's train and valid utterances."""
    root = tmp_path_factory.mktemp("tokens")
    out = {}
    for split in ("train", "valid"):
        rows = [
            (r.id, pattern(r.id, 60 + 7 * i, 32))
            for i, r in enumerate(read_manifest(prepared_corpus / f"{split}.jsonl"))
        ]
        out[split] = write_tokens(root / split, rows, 32)
    return out


@pytest.fixture(scope="module")
def prior_ckpt(tokens, prepared_corpus, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("prior") / "exp"
    code = main(["train-prior", "--tokens", str(tokens["train"]), "--valid-tokens", str(tokens["valid"]),
                 "--data", str(prepared_corpus), "--out", str(out), "--set", *TINY, "train.steps=300"])  # fmt: skip
    assert code == 0
    return out / "last.pt"


def test_the_prior_learns_the_codes_beyond_a_bigram(prior_ckpt, tokens, prepared_corpus, tmp_path, capsys):
    prior = CodePrior.load(prior_ckpt)
    assert prior.speakers == ["spk0", "spk1", "spk2"] and prior.codebook_size == 32
    assert (prior_ckpt.parent / "best.pt").is_file() and (prior_ckpt.parent / "tensorboard").is_dir()
    report = tmp_path / "report.json"
    code, _ = run(capsys, "evaluate", "prior", "--prior", prior_ckpt, "--tokens", tokens["train"],
                  "--test-tokens", tokens["valid"], "--data", prepared_corpus, "--out", report)  # fmt: skip
    assert code == 0
    bits = json.loads(report.read_text())["bits"]
    assert bits["prior_bits_per_code"] < bits["bigram_bits_per_code"] < bits["unigram_bits_per_code"], bits
    assert bits["prior_bits_per_second"] == pytest.approx(250 * bits["prior_bits_per_code"])


def test_resuming_gives_the_weights_of_an_uninterrupted_run(tokens, prepared_corpus, tmp_path):
    cfg = apply_overrides(PriorExperiment(), parse_assignments(TINY + ["train.steps=12", "model.dropout=0.1"]))
    whole = train_prior(cfg, tokens["train"], tmp_path / "a", valid_tokens=tokens["valid"], data_dir=prepared_corpus)
    first = train_prior(cfg, tokens["train"], tmp_path / "b", data_dir=prepared_corpus,
                        valid_tokens=tokens["valid"], stop_at=7)  # fmt: skip
    assert first.step == 7
    rest = train_prior(cfg, tokens["train"], tmp_path / "b", data_dir=prepared_corpus, valid_tokens=tokens["valid"])
    assert whole.step == rest.step == 12
    a, b = load_checkpoint(whole.last_checkpoint)["model"], load_checkpoint(rest.last_checkpoint)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_sample_writes_speech_and_codes_that_continue_the_prompt(prior_ckpt, prepared_corpus, tmp_path, capsys):
    vqvae = trained_checkpoint(prepared_corpus, tmp_path.parent / "vq")
    out = tmp_path / "samples"
    code, _ = run(capsys, "sample", "--prior", prior_ckpt, "--vqvae", vqvae, "--speaker", "spk1", "--seconds", "0.1",
                  "--count", "3", "--out", out)  # fmt: skip
    assert code == 0
    assert sorted(p.name for p in out.iterdir()) == ["sample_000.wav", "sample_001.wav", "sample_002.wav", "units.txt"]
    rows = read_tokens(out / "units.txt")
    assert [len(c) for _, c in rows] == [25, 25, 25]
    prompt = prepared_corpus / read_manifest(prepared_corpus / "valid.jsonl")[0].path
    code, _ = run(capsys, "sample", "--prior", prior_ckpt, "--vqvae", vqvae, "--speaker", "spk1", "--seconds", "0.1",
                  "--prompt", prompt, "--prompt-seconds", "0.05", "--out", out / "p", "--temperature", "0")  # fmt: skip
    assert code == 0
    ((uid, codes),) = read_tokens(out / "p" / "units.txt")
    model = VQVAE.load(vqvae)
    assert codes[:12].tolist() == model.encode(torch.from_numpy(sf.read(prompt)[0]).float())[0, :12].tolist()
    assert (out / "p" / f"{uid}.wav").is_file() and len(codes) == 12 + 25
    err = one_line_error(capsys, "sample", "--prior", prior_ckpt, "--vqvae", vqvae, "--speaker", "spk1",
                         "--seconds", "1", "--out", out / "long")  # fmt: skip
    assert "exceed the prior's context of 40 codes" in err
    err = one_line_error(capsys, "sample", "--prior", prior_ckpt, "--vqvae", vqvae, "--speaker", "nobody",
                         "--out", out / "x", "--seconds", "0.1")  # fmt: skip
    assert "nobody" in err


def test_a_codebook_that_does_not_match_the_vqvae_is_one_line(tokens, prepared_corpus, tmp_path, capsys):
    rows = [(uid, [c % 16 for c in codes.tolist()]) for uid, codes in read_tokens(tokens["train"] / "units.txt")]
    small = write_tokens(tmp_path / "k16", rows, 16)
    code = main(
        ["train-prior", "--tokens", str(small), "--out", str(tmp_path / "exp"), "--set", *TINY, "train.steps=2"]
    )
    assert code == 0
    vqvae = trained_checkpoint(prepared_corpus, tmp_path.parent / "vq")
    err = one_line_error(capsys, "sample", "--prior", tmp_path / "exp" / "last.pt", "--vqvae", vqvae,
                         "--speaker", "spk0", "--seconds", "0.1", "--out", tmp_path / "s")  # fmt: skip
    assert "codebook of 16" in err and "32" in err


def test_bad_token_files_are_one_line_errors(tokens, prepared_corpus, tmp_path, capsys):
    def train_prior_error(folder: Path, *extra) -> str:
        return one_line_error(capsys, "train-prior", "--tokens", folder, "--out", tmp_path / "exp",
                              "--set", *TINY, "train.steps=1", *extra)  # fmt: skip

    bad = write_tokens(tmp_path / "bad", [("spk0_000", [1, 2, 40])], 32)
    err = train_prior_error(bad)
    assert "units.txt" in err and "spk0_000" in err and "outside [0, 32)" in err
    err = train_prior_error(write_tokens(tmp_path / "nometa", [("spk0_000", [1, 2])], 32, meta=False))
    assert "tokens.json" in err
    err = train_prior_error(
        write_tokens(tmp_path / "stranger", [("who", [1, 2])], 32), "--data=" + str(prepared_corpus)
    )
    assert "'who'" in err and "manifests" in err
    err = train_prior_error(tmp_path / "missing")
    assert "no such units file or folder" in err
    err = train_prior_error(tokens["train"], "model.n_heads=3")
    assert "model" in err and "multiple of n_heads" in err


def test_checkpoints_of_the_two_models_are_not_mixed_up(prior_ckpt, prepared_corpus, tmp_path):
    with pytest.raises(CheckpointError, match="code prior's checkpoint"):
        VQVAE.load(prior_ckpt)
    with pytest.raises(CheckpointError, match="not a code prior's checkpoint"):
        CodePrior.load(trained_checkpoint(prepared_corpus, tmp_path / "vq"))


def test_sigterm_stops_the_prior_with_a_checkpoint_that_resumes(tokens, tmp_path):
    """The shared loop's clean stop, through train-prior: exit status 128 + 15, last.pt at the step."""
    exp = tmp_path / "exp"
    sets = [*TINY, "train.steps=100000", "train.checkpoint_every=100000", "train.valid_every=100000"]
    returncode, out, err = sigterm_once_started(["train-prior", "--tokens", str(tokens["train"]), "--out", str(exp),
                                                 "--set", *sets])  # fmt: skip
    assert returncode == 128 + signal.SIGTERM, err[-3000:]
    assert "Traceback" not in err and "stopped by SIGTERM after step" in err
    step = load_checkpoint(exp / "last.pt")["step"]
    assert 1 <= step < 100000 and out.strip().startswith(f"stopped by SIGTERM at step {step}")
    cfg = apply_overrides(PriorExperiment(), parse_assignments(sets))
    assert train_prior(cfg, tokens["train"], exp, stop_at=step + 1).step == step + 1  # and it resumes


def test_two_processes_under_torchrun_train_one_prior(tokens, prepared_corpus, tmp_path):
    """torchrun with 2 CPU processes (gloo): the checkpoint says so, and the replicas agreed at each checkpoint."""
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m"]
    out = subprocess.run(
        [*launcher, "audio_vqvae", "train-prior", "--tokens", str(tokens["train"]), "--valid-tokens",
         str(tokens["valid"]), "--data", str(prepared_corpus), "--out", str(tmp_path / "exp"), "--set", *TINY,
         "train.steps=6", "train.checkpoint_every=3"],
        env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-4000:]
    state = load_checkpoint(tmp_path / "exp" / "last.pt")
    assert state["world_size"] == 2 and state["step"] == 6 and state["kind"] == "prior"
