"""bench/voice_diagnosis.py end to end on a tiny LPC model (skips without the ``eval`` extra's resemblyzer)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from audio_vqvae.data.manifest import read_manifest
from audio_vqvae.errors import MissingPackageError
from audio_vqvae.evaluation.metrics.speaker_embedding import SpeakerEncoder

ROOT = Path(__file__).resolve().parents[1]


def test_voice_diagnosis_counts_every_version_of_every_pair(synthetic_corpus, tmp_path):
    try:
        SpeakerEncoder()
    except MissingPackageError as e:
        pytest.skip(str(e))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = lambda *cmd: subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)  # noqa: E731
    model = tmp_path / "model"
    out = run(sys.executable, "-m", "audio_vqvae", "train", "--preset", "tiny", "--config",
              "recipes/demo/conf/demo.yaml", "--data", str(synthetic_corpus), "--out", str(model),
              "--set", "train.steps=2", "train.audio_every=null")  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    counts = tmp_path / "counts.json"
    out = run(sys.executable, "bench/voice_diagnosis.py", "--ckpt", str(model / "last.pt"), "--data",
              str(synthetic_corpus), "--split", "test", "--targets", "spk01", "--out", str(counts))  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    rows = json.loads(counts.read_text())
    test = read_manifest(synthetic_corpus / "test.jsonl")
    by_source = {s: sum(r.speaker == s for r in test) for s in {r.speaker for r in test}}
    for row in rows:
        assert row["target"] == "spk01" and row["n"] == by_source[row["source"]]
        assert sum(row["heard_as"].values()) == row["n"] and 0 <= row["as_target"] <= row["n"]
    versions = {(r["source"], r["version"]) for r in rows}
    resynthesis = {"real", "vocoder, real frames", "vocoder, predicted frames", "decoder"}
    assert {v for s, v in versions if s == "spk01"} == resynthesis  # the target's own utterances: all four
    assert {v for s, v in versions if s != "spk01"} == {"vocoder, predicted frames", "decoder"}  # conversions
    assert "as the target" in out.stdout
    out = run(sys.executable, "bench/voice_diagnosis.py", "--ckpt", str(model / "last.pt"), "--data",
              str(synthetic_corpus), "--targets", "nobody")  # fmt: skip
    assert out.returncode == 2 and "no speaker nobody" in out.stderr and "Traceback" not in out.stderr
