"""Recipes run end to end on tiny data: the offline demo at a reduced size, and every stage of the VCTK
and unit-discovery recipes on generated stand-ins of each corpus's layout (debug configurations)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from test_prepare import fake_librispeech, fake_vctk_092

from audio_vqvae.checkpoint import load_checkpoint
from audio_vqvae.data.manifest import read_manifest

ROOT = Path(__file__).resolve().parents[1]
SHELL_FILES = [*ROOT.glob("recipes/**/*.sh"), *ROOT.glob("bench/*.sh")]
SCRIPTS = [".ci/run", *sorted(str(p.relative_to(ROOT)) for p in SHELL_FILES)]


def run_script(script: str, *args: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "OMP_NUM_THREADS": "1",
    }
    return subprocess.run(["bash", script, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


def ok(out: subprocess.CompletedProcess) -> None:
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]


def test_demo_runs_every_stage_at_reduced_size(tmp_path):
    exp = tmp_path / "demo"
    out = run_script("recipes/demo/run.sh", "--out", str(exp), "--conf", "recipes/demo/conf/tiny.yaml", "--steps", "4",
                     "--prior-conf", "recipes/demo/conf/prior_tiny.yaml")  # fmt: skip
    ok(out)
    assert "SYNTHETIC" in out.stdout  # the corpus says what it is
    for stage in range(1, 8):
        assert f"== stage {stage}:" in out.stdout
    state = load_checkpoint(exp / "model" / "last.pt")
    assert state["step"] == 4 and len(state["speakers"]) == 4
    assert len(list((exp / "converted").glob("*_to_*.wav"))) == 12  # 3 of the 20 test utterances per voice
    assert len(read_manifest(exp / "data" / "test.jsonl")) == 20
    assert (exp / "tokens" / "units.txt").is_file() and (exp / "tokens" / "durations.txt").is_file()
    units = json.loads((exp / "eval" / "units.json").read_text())
    conversion = json.loads((exp / "eval" / "conversion.json").read_text())
    assert units["abx_context"] == "any" and "baseline" in units and conversion["n_pairs"] == 12
    assert conversion["voicing"]["voiced_target_real"] > 0.1  # the real readings are voiced
    report = (exp / "report.md").read_text()
    assert "SYNTHETIC" in report and "MFCC k-means baseline" in report and "_to_spk01.wav" in report
    assert load_checkpoint(exp / "prior" / "model" / "last.pt")["step"] == 4
    assert len(list((exp / "samples").glob("sample_*.wav"))) == 4
    prior = json.loads((exp / "eval" / "prior.json").read_text())
    assert prior["voices"]["n_samples"] == 8 and "phone_likeness" in prior  # 2 for each of the 4 voices
    assert "Samples from the prior" in report and "samples/sample_000.wav" in report
    for picture in ("training.png", "code_usage.png", "spectrograms.png", "prior_sample.png"):
        assert (exp / "figures" / picture).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"figures/{picture}" in report


def test_demo_stops_on_a_failing_stage(tmp_path):
    (tmp_path / "demo").mkdir()
    out = run_script("recipes/demo/run.sh", "--out", str(tmp_path / "demo"), "--stage", "2")  # no corpus prepared
    assert out.returncode != 0 and "train.jsonl" in out.stderr
    assert "== stage 3" not in out.stdout


def test_vctk_recipe_every_stage_on_a_fake_vctk_092_tree(tmp_path):
    corpus = fake_vctk_092(tmp_path / "VCTK-Corpus-0.92")
    exp = tmp_path / "exp"
    args = ("--corpus", str(corpus), "--out", str(exp), "--conf", "debug", "--n-sources", "2", "--n-targets", "2")
    out = run_script("recipes/vctk/run.sh", *args)
    ok(out)
    assert "exists, no download" in out.stdout
    assert len(read_manifest(exp / "data" / "test.jsonl")) > 0
    assert load_checkpoint(exp / "model" / "last.pt")["step"] == 4
    pairs = (exp / "pairs.txt").read_text().splitlines()
    assert len(pairs) == 4 and len(list((exp / "converted").glob("*.wav"))) == 4
    assert json.loads((exp / "eval" / "conversion.json").read_text())["n_pairs"] == 4
    # stages run alone, from a later stage on
    out = run_script("recipes/vctk/run.sh", *args, "--stage", "4", "--stop-stage", "4")
    ok(out)
    assert "== stage 4" in out.stdout and "== stage 3" not in out.stdout


def test_vctk_recipe_fails_on_a_bad_corpus_and_a_bad_conf(tmp_path):
    (tmp_path / "empty").mkdir()
    out = run_script("recipes/vctk/run.sh", "--corpus", str(tmp_path / "empty"), "--out", str(tmp_path / "exp"))
    assert out.returncode != 0 and "== stage 2" not in out.stdout
    out = run_script("recipes/vctk/run.sh", "--conf", "huge", "--out", str(tmp_path / "exp"))
    assert out.returncode == 2 and "paper, gpu, cpu or debug" in out.stderr


@pytest.mark.parametrize("recipe", ["demo", "vctk", "units"])
def test_recipe_options_are_checked_and_help_prints_the_usage(recipe, tmp_path):
    script = f"recipes/{recipe}/run.sh"
    assert os.access(ROOT / script, os.X_OK), "the README runs it as a program"
    out = run_script(script, "--out", str(tmp_path / "exp"), "--stpes", "3")
    assert out.returncode == 2 and f"{recipe}/run.sh: unknown option --stpes" in out.stderr and "--steps" in out.stderr
    out = run_script(script, "--steps")
    assert out.returncode == 2 and "--steps needs a value" in out.stderr
    out = run_script(script, "stray")
    assert out.returncode == 2 and "unexpected argument stray" in out.stderr
    out = run_script(script, "--help")
    assert out.returncode == 0 and f"Usage: recipes/{recipe}/run.sh" in out.stdout
    assert "set -euo" not in out.stdout and not out.stdout.startswith("#"), "the header comment, as plain text"
    assert not (tmp_path / "exp").exists(), "a bad command line must not start any stage"


def phone_table(corpus: Path, path: Path) -> Path:
    """A phone alignment for every utterance of the fake LibriSpeech tree (0.5 s each)."""
    lines = ["id\tstart\tend\tphone"]
    for k, flac in enumerate(sorted(corpus.rglob("*.flac"))):
        a, b = ("AH0", "S") if k % 2 else ("IY1", "T")
        lines += [f"{flac.stem}\t0.0\t0.1\tsil", f"{flac.stem}\t0.1\t0.3\t{a}", f"{flac.stem}\t0.3\t0.5\t{b}"]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_units_recipe_every_stage_on_a_fake_librispeech_tree(tmp_path):
    corpus = fake_librispeech(tmp_path / "LibriSpeech")
    table = phone_table(corpus, tmp_path / "phones.txt")
    exp = tmp_path / "exp"
    args = (
        "--corpus",
        str(corpus),
        "--alignments",
        str(table),
        "--out",
        str(exp),
        "--conf",
        "debug",
        "--splits",
        "train valid test",
        "--sample-seconds",
        "0.5",
    )
    out = run_script("recipes/units/run.sh", *args, "--subset", "train-clean-100 dev-clean")
    ok(out)
    assert (exp / "data" / "phones.tsv").is_file()
    state = load_checkpoint(exp / "model" / "last.pt")
    assert state["step"] == 4 and state["config"]["model"]["encoder"]["strides"] in ([5, 4, 4, 4], (5, 4, 4, 4))
    test_ids = {r.id for r in read_manifest(exp / "data" / "test.jsonl")}
    assert {p.stem for p in (exp / "units" / "test" / "codes").glob("*.npy")} == test_ids
    units = json.loads((exp / "eval" / "units.json").read_text())
    assert units["hop_length"] == 320 and "baseline" in units and "model" in units
    fairseq = exp / "fairseq" / "test"
    assert {line.split("|")[0] for line in (fairseq / "units.txt").read_text().splitlines()} == test_ids
    assert (fairseq / "durations.txt").is_file() and json.loads((fairseq / "tokens.json").read_text())["deduplicated"]
    assert {p.stem for p in (exp / "zerospeech" / "test" / "vectors").glob("*.txt")} == test_ids
    prior = load_checkpoint(exp / "prior" / "last.pt")
    assert prior["kind"] == "prior" and prior["step"] == 4 and prior["config"]["model"]["codebook_size"] == 16
    assert sorted(p.name for p in (exp / "samples").glob("*.wav")) == [f"sample_{i:03d}.wav" for i in range(4)]
    report = json.loads((exp / "eval" / "prior.json").read_text())
    assert report["bits"]["test_codes"] > 0 and 0 <= report["voices"]["speaker_agreement"] <= 1
    assert "phone_likeness" in report  # the recipe's data has phones.tsv


def test_units_recipe_needs_alignments(tmp_path):
    corpus = fake_librispeech(tmp_path / "LibriSpeech")
    out = run_script("recipes/units/run.sh", "--corpus", str(corpus), "--out", str(tmp_path / "exp"))
    assert out.returncode == 2 and "--alignments" in out.stderr


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is not installed")
@pytest.mark.parametrize("script", SCRIPTS)
def test_shellcheck(script):
    out = subprocess.run(["shellcheck", "-x", script], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_pairs_spread_sources_over_speakers_and_never_target_the_source():
    from audio_vqvae.data.manifest import Utterance
    from audio_vqvae.evaluation.report import choose_pairs

    rows = [Utterance(f"{s}_{k}", f"{s}_{k}.wav", s, 1.0, 16000, 16000) for s in ("a", "b", "c") for k in range(3)]
    pairs = choose_pairs(rows, ["a", "b", "c"], n_sources=4, n_targets=2)
    assert [(r.id, t) for r, t in pairs] == [
        ("a_0", "b"),
        ("a_0", "c"),
        ("b_0", "c"),
        ("b_0", "a"),
        ("c_0", "a"),
        ("c_0", "b"),
        ("a_1", "b"),
        ("a_1", "c"),
    ]
    assert choose_pairs(rows[:3], ["a"], n_sources=2) == []  # one speaker: nothing to convert to
