"""Recipes run end to end on tiny data: the offline demo at a reduced size."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from audio_vqvae.checkpoint import load_checkpoint

ROOT = Path(__file__).resolve().parents[1]


def run_script(script: str, *args: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "OMP_NUM_THREADS": "1",
    }
    return subprocess.run(["bash", script, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


def test_demo_runs_at_reduced_size(tmp_path):
    out = run_script("recipes/demo/run.sh", "--out", str(tmp_path / "demo"), "--steps", "4")
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    assert "SYNTHETIC" in out.stdout  # the corpus says what it is
    state = load_checkpoint(tmp_path / "demo" / "model" / "last.pt")
    assert state["step"] == 4 and len(state["speakers"]) == 4


def test_demo_stops_on_a_failing_stage(tmp_path):
    (tmp_path / "demo").mkdir()
    out = run_script("recipes/demo/run.sh", "--out", str(tmp_path / "demo"), "--stage", "2")  # no corpus prepared
    assert out.returncode != 0 and "train.jsonl" in out.stderr
