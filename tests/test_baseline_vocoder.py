"""The source-filter baseline: a pulse-plus-noise LPC vocoder at the source's f0 moved to the target's range."""

from __future__ import annotations

import math

import pytest
import torch

from audio_vqvae.evaluation.baseline_vocoder import log_f0_statistics, move_f0
from audio_vqvae.evaluation.metrics.pitch import yin
from audio_vqvae.models.lpc import noise_vocoder, pulse_vocoder
from audio_vqvae.models.mel import LogMel

SR, HOP = 16000, 64


def _vowel_frames(n: int) -> torch.Tensor:
    """Log-mel frames of a vowel-like tone (harmonics of 150 Hz under a formant-ish tilt), (1, 40, n)."""
    t = torch.arange(n * HOP + HOP, dtype=torch.float64) / SR
    wav = sum(torch.sin(2 * math.pi * 150 * k * t) / k**1.5 for k in range(1, 30))
    return LogMel(SR, HOP, 40)(0.1 * wav.float().unsqueeze(0))[..., :n]


def test_pulses_voice_at_the_given_f0_and_noise_stays_unvoiced():
    front = LogMel(SR, HOP, 40)
    mel = _vowel_frames(250)  # 1 s
    f0 = torch.cat([torch.full((1, 125), 120.0), torch.zeros(1, 125)], 1)
    out = pulse_vocoder(mel, f0, front, HOP, SR, torch.Generator().manual_seed(0))[0]
    first, second = yin(out[: SR // 2], SR), yin(out[SR // 2 :], SR)
    assert first.voiced_fraction > 0.8 and first.median_f0 == pytest.approx(120, rel=0.03)
    assert second.voiced_fraction < 0.1
    # f0 = 0 everywhere is the noise vocoder, to the sample
    zero = pulse_vocoder(mel, torch.zeros(1, 250), front, HOP, SR, torch.Generator().manual_seed(0))
    assert torch.equal(zero, noise_vocoder(mel, front, HOP, SR, torch.Generator().manual_seed(0)))
    # the pulses carry the frame's excitation power: voiced and unvoiced halves are about as loud
    assert out[: SR // 2].pow(2).mean() == pytest.approx(float(out[SR // 2 :].pow(2).mean()), rel=0.5)


def test_f0_moves_onto_the_target_range_in_log_domain():
    source = torch.tensor([0.0, 100.0, 200.0, 0.0, 141.42])
    stats = log_f0_statistics([source])
    assert stats[0] == pytest.approx(math.log(141.42), abs=1e-3)
    target = (math.log(220.0), 2 * stats[1])  # a higher voice with twice the spread
    moved = move_f0(source, stats, target)
    assert moved[0] == 0 and moved[3] == 0  # unvoiced frames stay unvoiced
    assert moved[4] == pytest.approx(220.0, rel=1e-3)  # the mean goes to the target's mean
    assert moved[2] / moved[1] == pytest.approx(4.0, rel=1e-3)  # an octave apart becomes two
    torch.testing.assert_close(move_f0(source, None, target)[1:3], torch.full((2,), 220.0))  # no statistics: the mean
    assert log_f0_statistics([torch.zeros(5)]) is None


def test_the_converter_voices_at_the_source_contour_moved_to_the_targets_range(monkeypatch):
    """With the mel decoder's prediction replaced by a vowel's real frames, a 120 Hz source converted to a
    speaker whose real speech is at 200 Hz comes out voiced at 200 Hz; the model's codes are not needed."""
    from audio_vqvae.config import preset
    from audio_vqvae.evaluation.baseline_vocoder import SourceFilterBaseline
    from audio_vqvae.models.vqvae import VQVAE

    torch.manual_seed(0)
    model = VQVAE.from_config(preset("tiny")).eval()
    model.speakers = ["low", "high"]

    def tone(f0: float) -> torch.Tensor:
        t = torch.arange(SR, dtype=torch.float64) / SR
        return (0.1 * sum(torch.sin(2 * math.pi * f0 * k * t) / k for k in range(1, 20))).float()

    frames = LogMel(SR, model.hop_length, model.mel_decoder.n_mels)
    monkeypatch.setattr(model.mel_decoder, "forward", lambda latents, speaker: frames(tone(150).unsqueeze(0)))
    converter = SourceFilterBaseline({"high": [tone(200)], "low": [tone(120)]}, seed=0)
    (out,) = converter(model, [tone(120)], ["high"])
    track = yin(out, SR)
    assert track.voiced_fraction > 0.8 and track.median_f0 == pytest.approx(200, rel=0.03)
    assert converter.statistics["high"][0] == pytest.approx(math.log(200), abs=0.01)


def test_the_baseline_takes_the_lpc_order_of_the_models_own_filters(monkeypatch):
    """An LPC WaveNet's baseline draws its envelope with the model's order (the same filters from the same
    frames); a model without LPC filters gets the default order, and the report names the order."""
    from audio_vqvae.config import DecoderConfig, preset
    from audio_vqvae.evaluation.baseline_vocoder import DEFAULT_ORDER, definition, lpc_order
    from audio_vqvae.models.vqvae import VQVAE

    cfg = preset("tiny")
    assert lpc_order(VQVAE.from_config(cfg)) == DEFAULT_ORDER == 16
    cfg.mel_conditioning = True
    cfg.decoder = DecoderConfig(kind="source_filter", lpc_order=6, residual_channels=4, gate_channels=8,
                                skip_channels=4, layers_per_stack=2, n_stacks=1, cond_channels=4)  # fmt: skip
    model = VQVAE.from_config(cfg).eval()
    model.speakers = ["a"]
    assert lpc_order(model) == 6 and "(order 6)" in definition(model)
    import audio_vqvae.evaluation.baseline_vocoder as baseline

    orders = []
    monkeypatch.setattr(baseline, "pulse_vocoder", lambda *a: orders.append(a[-1]) or pulse_vocoder(*a))
    t = torch.arange(SR // 2) / SR
    tone = 0.1 * torch.sin(2 * math.pi * 150 * t)
    baseline.SourceFilterBaseline({"a": [tone]})(model, [tone], ["a"])
    assert orders == [6]
