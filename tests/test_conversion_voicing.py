"""evaluate_conversion reports voicing and names its MCD."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from audio_vqvae import VQVAE, preset
from audio_vqvae.data.synthetic import synthesize_corpus
from audio_vqvae.evaluation.evaluate import ConversionPair, evaluate_conversion, format_conversion_report
from audio_vqvae.evaluation.metrics.spectral import MCD_DEFINITION, mel_cepstral_distortion

SR = 16000


def _harmonic(f0: float, n: int) -> torch.Tensor:
    t = np.arange(n) / SR
    x = 0.1 * sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 12))
    return torch.from_numpy(x.astype(np.float32))


def test_conversion_report_has_voicing_and_the_standard_mcd():
    corpus = list(synthesize_corpus(n_speakers=2, n_sentences=4))
    by_id = {u.id: u for u in corpus}
    cfg = preset("tiny")
    cfg.decoder.n_speakers = 2
    torch.manual_seed(0)
    model = VQVAE.from_config(cfg).eval()
    n = 8000
    whisper = 0.05 * torch.randn(n, generator=torch.Generator().manual_seed(0))  # an unvoiced "conversion"
    pairs = [
        ConversionPair(whisper, torch.from_numpy(by_id["spk00_000"].wav), "spk00", "spk01", _harmonic(150, n)),
        ConversionPair(_harmonic(150, n), torch.from_numpy(by_id["spk01_001"].wav), "spk01", "spk00"),
    ]
    real = [(u.id, torch.from_numpy(u.wav), u.speaker) for u in corpus]
    result = evaluate_conversion(model, pairs, real, reconstructions=[(_harmonic(150, n), whisper)])
    json.dumps(result)
    voicing, content, rec = result["voicing"], result["content"], result["reconstruction"]
    assert voicing["voiced_converted"] == pytest.approx(0.5, abs=0.05)  # half noise, half tone, by frames
    assert voicing["voiced_target_real"] > 0.95 and voicing["n_target_real"] == 1
    assert voicing["f0_converted_hz"] == pytest.approx(150, rel=0.02)
    assert voicing["f0_target_real_hz"] == pytest.approx(150, rel=0.02)
    assert 0 < voicing["voiced_source_real"] <= 1 and voicing["f0_source_real_hz"] is not None
    first, second = result["pairs"]
    assert first["voiced_converted"] < 0.05 and first["f0_converted_hz"] is None
    assert second["voiced_target_real"] is None and second["f0_target_real_hz"] is None
    assert rec["voiced_resynthesis"] < 0.05 and rec["voiced_original"] > 0.95
    assert content["mcd_definition"] == MCD_DEFINITION and content["mcd_alpha"] == 0.42
    assert first["mcd_target"] == pytest.approx(mel_cepstral_distortion(pairs[0].target, whisper, SR))
    report = format_conversion_report(result)
    assert "voiced frames converted" in report and "median f0 converted" in report
    assert "order 24, alpha 0.42, c0 excluded, DTW" in report
