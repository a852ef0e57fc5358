"""bench/learn.py end to end on the synthetic corpus: two training segments, unit points, conversion."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from trained_tiny import trained_checkpoint

from audio_vqvae.checkpoint import load_checkpoint

ROOT = Path(__file__).resolve().parents[1]


def learn(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "bench/learn.py", *args]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def tiny_run(corpus: Path, exp: Path, *budget: str) -> list[str]:
    """bench/learn.py's arguments for the tiny demo model in 2 segments of ``budget`` (--minutes or --steps)."""
    return ["--data", str(corpus), "--preset", "tiny", "--config", "recipes/demo/conf/tiny.yaml",
            "--set", "train.steps=100000", *budget, "--points", "2", "--conversion-sources", "1",
            "--max-seconds", "0.3", "--abx-context", "any", "--out", str(exp)]  # fmt: skip


def test_learn_trains_in_segments_and_reports_units_and_conversion(synthetic_corpus, tmp_path):
    exp = tmp_path / "exp"
    args = tiny_run(synthetic_corpus, exp, "--minutes", "0.05")
    out = learn(*args)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    report = json.loads((exp / "learn.json").read_text())
    points = report["points"]
    assert len(points) == 2 and 0 < points[0]["step"] < points[1]["step"]
    assert points[0]["minutes"] < points[1]["minutes"] and points[1]["codes_used_window"] > 0
    assert load_checkpoint(exp / "last.pt")["step"] == points[1]["step"]  # the segments resumed one run
    for point in points:
        for system in ("model", "baseline"):
            assert 0 <= point["units"][system]["phone_accuracy"] <= 1 and "abx_within" in point["units"][system]
    conversion = report["conversion"]
    assert conversion["n_pairs"] == 6  # 1 sentence per speaker x the 2 other speakers
    assert conversion["content"]["n_parallel"] == 6 and conversion["content"]["mcd_source_target"] > 0
    assert conversion["wall_seconds"]["generation"] > 0
    assert [p["phase"] for p in report["phases"]][-1] == "conversion: metrics"
    assert "summary" in out.stdout and "MCD to target" in out.stdout and "phone acc %" in out.stdout
    # the benchmark starts from scratch: an EXP that holds a run is refused in one line
    again = learn(*args)
    assert again.returncode == 2 and "already holds a checkpoint" in again.stderr


def test_learn_with_a_step_budget_puts_its_points_at_fixed_steps(synthetic_corpus, tmp_path):
    """--steps: the same points whatever else the machine is doing (wall time varies, steps do not)."""
    exp = tmp_path / "exp"
    out = learn(*tiny_run(synthetic_corpus, exp, "--steps", "6"))
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    report = json.loads((exp / "learn.json").read_text())
    assert [p["step"] for p in report["points"]] == [3, 6] and report["steps"] == 6 and report["minutes"] is None
    assert "6 steps in 2 segments" in out.stdout
    bad = learn("--data", str(synthetic_corpus), "--steps", "1", "--points", "2", "--out", str(tmp_path / "b"))
    assert bad.returncode == 2 and "--steps must be at least --points" in bad.stderr


@pytest.mark.parametrize("excitation", ["noise", "wavenet"])
def test_lpc_vocoder_scores_the_mel_decoders_conversions(prepared_corpus, tmp_path, excitation):
    """bench/lpc_vocoder.py: the mel decoder's frames for each target, through the noise vocoder,
    scored like ``evaluate conversion``."""
    ckpt = trained_checkpoint(prepared_corpus, tmp_path)
    out_json = tmp_path / "lpc.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "bench/lpc_vocoder.py", "--ckpt", str(ckpt), "--data", str(prepared_corpus)]
    cmd += ["--split", "valid", "--n-sources", "2", "--max-seconds", "0.5", "--reconstructions", "1"]
    cmd += ["--excitation", excitation]
    cmd += ["--out", str(out_json)]
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    report = json.loads(out_json.read_text())
    assert report["n_pairs"] == 4 and report["vocoder"] == f"lpc, {excitation} excitation (models.lpc)"
    assert 0 <= report["speaker"]["target_rate"] <= 1 and report["reconstruction"]["mcd"] > 0


def test_lpc_vocoder_names_a_missing_checkpoint_in_one_line(tmp_path):
    cmd = [sys.executable, "bench/lpc_vocoder.py", "--ckpt", str(tmp_path / "gone.pt"), "--data", str(tmp_path)]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.strip() == f"bench/lpc_vocoder.py: error: {tmp_path / 'gone.pt'}: checkpoint not found"
