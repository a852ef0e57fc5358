"""The audio-vqvae command line: --version, --help, info, and one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import audio_vqvae


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "audio_vqvae", *args], capture_output=True, text=True, timeout=120)


def test_version_and_help():
    out = run("--version")
    assert out.returncode == 0 and audio_vqvae.__version__ in out.stdout
    out = run("--help")
    assert out.returncode == 0 and "info" in out.stdout


def test_info_reports_receptive_fields_of_the_paper_model():
    out = run("info", "--json")
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)["model"]
    assert info["hop_length"] == 64 and info["frame_rate_hz"] == 250
    assert info["decoder_receptive_field_samples"] == 3070
    assert abs(info["decoder_receptive_field_ms"] - 191.875) < 1e-9
    out = run("info", "--preset", "tiny", "--set", "model.encoder.strides=[5,4,4,4]")
    assert out.returncode == 0, out.stderr
    assert "hop 320 samples, 50 codes/s" in out.stdout
    # one --set takes several keys, and it may repeat; the later value of a key wins
    out = run("info", "--preset", "tiny", "--json", "--set", "model.encoder.strides=[5,4,4,4]",
              "model.quantizer.codebook_size=7", "--set", "model.quantizer.codebook_size=9")  # fmt: skip
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    assert info["model"]["hop_length"] == 320 and info["config"]["model"]["quantizer"]["codebook_size"] == 9


def test_bad_key_is_a_one_line_error(tmp_path):
    out = run("info", "--set", "model.decoder.n_layer=3")
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0 and "model.decoder.n_layer" in out.stderr
    conf = tmp_path / "bad.yaml"
    conf.write_text("model:\n  quantizer:\n    codebook_size: many\n")
    out = run("info", "--config", str(conf))
    assert out.returncode == 2 and "model.quantizer.codebook_size" in out.stderr


def test_train_time_limit_must_be_a_finite_number_of_minutes(tmp_path):
    for bad in ("-1", "nan", "inf", "soon"):
        out = run("train", "--data", str(tmp_path), "--out", str(tmp_path / "exp"), "--time-limit", bad)
        assert out.returncode == 2 and "--time-limit" in out.stderr and "Traceback" not in out.stderr, bad
    assert not (tmp_path / "exp").exists()


def test_temperature_must_be_a_finite_number_0_or_more(tmp_path, capsys):
    from audio_vqvae.cli import build_parser

    commands = (
        ["convert", "--ckpt", "c.pt", "--out", str(tmp_path), "--speaker", "s", "x.wav"],
        ["reconstruct", "--ckpt", "c.pt", "--out", str(tmp_path), "x.wav"],
        ["evaluate", "conversion", "--ckpt", "c.pt", "--data", str(tmp_path), "--out", str(tmp_path / "r.json")],
    )
    for command in commands:
        for bad in ("nan", "-1", "inf", "hot"):  # nan gave two distinct sample values before
            with pytest.raises(SystemExit) as exit_:
                build_parser().parse_args([*command, "--temperature", bad])
            err = capsys.readouterr().err.strip().splitlines()[-1]
            assert exit_.value.code == 2 and "--temperature" in err and repr(bad) in err, (command, err)
        assert build_parser().parse_args([*command, "--temperature", "0"]).temperature == 0.0


def one_line_error(capsys, *args: str) -> str:
    """Run the CLI in this process; return its error, which must be one line with exit status 2."""
    from audio_vqvae.cli import main

    assert main(list(args)) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Traceback" not in err, err
    return err


def test_unreadable_checkpoints_are_one_line_errors_naming_the_file(tmp_path, capsys):
    empty, noise, text = tmp_path / "empty.pt", tmp_path / "noise.pt", tmp_path / "notes.pt"
    empty.write_bytes(b"")  # an IndexError inside the error handler before
    noise.write_bytes(bytes((i * 7919) % 256 for i in range(4096)))
    text.write_text("this is not a checkpoint\n")  # "KeyError: 101" before
    for ckpt in (empty, noise, text):
        err = one_line_error(capsys, "encode", "--ckpt", str(ckpt), "--out", str(tmp_path / "out"), "x.wav")
        assert f"{ckpt}: " in err and "weights_only" not in err, err


def test_sizes_and_periods_of_zero_are_one_line_errors_naming_the_key(tmp_path, capsys):
    err = one_line_error(capsys, "info", "--preset", "tiny", "--set", "model.decoder.n_stacks=0")
    assert "model.decoder.n_stacks" in err  # it failed deep inside a torch conv before
    for key in ("checkpoint_every", "log_every", "valid_every"):  # a ZeroDivisionError after step 1 before
        args = ["--data", str(tmp_path), "--out", str(tmp_path / "exp"), "--set", f"train.{key}=0"]
        assert f"train.{key}" in one_line_error(capsys, "train", "--preset", "tiny", *args)
    assert not (tmp_path / "exp").exists()


def test_train_stop_at_must_be_a_step_and_nothing_claims_a_checkpoint_that_was_not_written(tmp_path):
    out = run("train", "--data", str(tmp_path), "--out", str(tmp_path / "exp"), "--stop-at", "-5")
    assert out.returncode == 2 and "--stop-at" in out.stderr and "Traceback" not in out.stderr
    assert "checkpoint" not in out.stdout and not (tmp_path / "exp").exists()
    out = run("train", "--data", str(tmp_path), "--out", str(tmp_path / "exp"), "--set", "train.steps=0")
    assert out.returncode == 2 and "train.steps" in out.stderr and "checkpoint" not in out.stdout


def test_a_segment_shorter_than_one_hop_names_the_key(tmp_path, capsys):
    args = ["--data", str(tmp_path), "--out", str(tmp_path / "exp"), "--preset", "tiny"]
    err = one_line_error(capsys, "train", *args, "--set", "data.segment_length=10")  # "segment_length 0" before
    assert "'data.segment_length' must be at least one hop" in err and "got 10" in err, err
    assert not (tmp_path / "exp").exists()
