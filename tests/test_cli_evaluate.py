"""`audio-vqvae evaluate units|conversion` end to end on the synthetic corpus with a tiny trained model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from audio_vqvae.config import experiment_config
from audio_vqvae.training import train

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def checkpoint(synthetic_corpus, tmp_path_factory) -> Path:
    overrides = {
        "model": {"quantizer": {"kmeans_init": True}},
        "data": {"segment_length": 1024, "batch_size": 4, "num_workers": 0, "valid_utterances": 2},
        "train": {"steps": 4, "log_every": 4, "valid_every": 4, "audio_every": None, "checkpoint_every": 4},
    }
    return train(
        experiment_config("tiny", overrides), synthetic_corpus, tmp_path_factory.mktemp("eval") / "exp"
    ).last_checkpoint


def cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "audio_vqvae", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )


def test_evaluate_units_reports_model_and_mfcc_baseline(checkpoint, synthetic_corpus, tmp_path):
    report = tmp_path / "units.json"
    out = cli("evaluate", "units", "--ckpt", str(checkpoint), "--data", str(synthetic_corpus), "--out", str(report),
              "--abx-context", "any", "--max-utterances", "12")  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(report.read_text())
    for system in ("model", "baseline"):
        r = result[system]
        assert 0 <= r["phone_accuracy"] <= 1 and 0 <= r["pnmi"] <= 1 and r["bitrate"] > 0
        assert r["abx_within"] is not None
    # the MFCC k-means baseline finds phone structure in the synthetic corpus
    assert result["baseline"]["phone_accuracy"] > result["baseline"]["majority_phone_accuracy"]
    assert "baseline" in out.stdout and "pnmi" in out.stdout.lower()


def test_evaluate_units_abx_items_flag_reaches_the_abx(checkpoint, synthetic_corpus, tmp_path):
    results = {}
    for span in ("phone", "triphone"):
        report = tmp_path / f"{span}.json"
        out = cli("evaluate", "units", "--ckpt", str(checkpoint), "--data", str(synthetic_corpus), "--out",
                  str(report), "--abx-context", "any", "--max-utterances", "12", "--abx-items", span)  # fmt: skip
        assert out.returncode == 0, out.stderr[-3000:]
        results[span] = json.loads(report.read_text())
        assert results[span]["abx_span"] == span
    phone, triphone = results["phone"], results["triphone"]
    assert triphone["abx_items"] >= phone["abx_items"] > 0  # a triphone span never loses an item to rounding
    assert triphone["model"]["phone_accuracy"] == phone["model"]["phone_accuracy"]  # frame metrics unchanged


def test_evaluate_conversion_reports_speaker_content_and_spectral_metrics(checkpoint, synthetic_corpus, tmp_path):
    report = tmp_path / "conv.json"
    out = cli("evaluate", "conversion", "--ckpt", str(checkpoint), "--data", str(synthetic_corpus), "--out",
              str(report), "--n-sources", "2", "--max-seconds", "0.3", "--reconstructions", "1",
              "--real-per-speaker", "4", "--temperature", "0")  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(report.read_text())
    assert len(result["pairs"]) == 4  # 2 sources x 2 other speakers
    assert 0 <= result["speaker"]["target_rate"] <= 1 and result["speaker"]["classifier_accuracy"] > 0.5
    assert 0 <= result["content"]["code_agreement"] <= 1
    assert result["content"]["n_parallel"] == 4  # the synthetic corpus is parallel: every target read the sentence
    assert result["reconstruction"]["mcd"] > 0


def test_evaluate_errors_are_one_line(checkpoint, synthetic_corpus, tmp_path):
    out = cli("evaluate", "conversion", "--ckpt", str(checkpoint), "--data", str(synthetic_corpus),
              "--targets", "nobody")  # fmt: skip
    assert out.returncode == 2 and "nobody" in out.stderr and out.stderr.strip().count("\n") == 0
    out = cli("evaluate", "units", "--ckpt", str(checkpoint), "--data", str(synthetic_corpus),
              "--alignments", str(tmp_path / "none.tsv"))  # fmt: skip
    assert out.returncode == 2 and "none.tsv" in out.stderr
    out = cli("evaluate", "units", "--ckpt", str(tmp_path / "missing.pt"), "--data", str(synthetic_corpus))
    assert out.returncode == 2 and "missing.pt" in out.stderr


def test_unit_inputs_and_run_conversion_are_the_commands_in_python(checkpoint, synthetic_corpus):
    from audio_vqvae.cli.evaluate import run_conversion, unit_inputs
    from audio_vqvae.data.manifest import read_manifest
    from audio_vqvae.evaluation.report import choose_pairs
    from audio_vqvae.models.vqvae import VQVAE

    model = VQVAE.load(checkpoint)
    train_items, eval_items, alignments = unit_inputs(model, synthetic_corpus, max_utterances=6)
    assert len(train_items) == 6 and {spk for _, _, spk in train_items} == set(model.speakers)  # spread
    assert {uid for uid, _, _ in train_items + eval_items} <= set(alignments)
    uid, wav, _ = eval_items[0]
    assert wav.dim() == 1 and len(alignments[uid]) > 0
    pairs = choose_pairs(read_manifest(synthetic_corpus / "test.jsonl"), model.speakers, 3, 2)
    result = run_conversion(
        model, synthetic_corpus, pairs, max_seconds=0.3, reconstructions=1, real_per_speaker=4, temperature=0
    )
    assert result["n_pairs"] == 6 and result["content"]["n_parallel"] == 6 and result["reconstruction"]["n"] == 1
    assert result["wall_seconds"]["generation"] > 0 and result["wall_seconds"]["metrics"] > 0
    with pytest.raises(ValueError, match="nobody"):
        run_conversion(model, synthetic_corpus, [(pairs[0][0], "nobody")])


def test_evaluate_conversion_scores_the_source_filter_baseline_beside_the_model(checkpoint, synthetic_corpus, tmp_path):
    report = tmp_path / "conv.json"
    out = cli("evaluate", "conversion", "--ckpt", str(checkpoint), "--data", str(synthetic_corpus), "--out",
              str(report), "--n-sources", "2", "--max-seconds", "0.5", "--reconstructions", "0",
              "--real-per-speaker", "4", "--baseline-vocoder")  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(report.read_text())
    baseline = result["baseline_vocoder"]
    assert "pulse train" in baseline["definition"] and baseline["n_pairs"] == result["n_pairs"] == 4
    assert 0 <= baseline["speaker"]["target_rate"] <= 1 and baseline["content"]["mcd_target"] > 0
    assert 0 <= baseline["voicing"]["voiced_converted"] <= 1  # what it voices: tests/test_baseline_vocoder.py
    assert "source-filter baseline" in out.stdout
