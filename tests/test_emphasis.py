"""Pre-emphasis of the decoder's waveform domain: exact inverse, streaming state, the training target."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from audio_vqvae import VQVAE
from audio_vqvae.config import ConfigError, apply_overrides, preset
from audio_vqvae.data.audio import mu_law_encode
from audio_vqvae.models.emphasis import DeEmphasis, pre_emphasis


def test_de_emphasis_inverts_pre_emphasis_in_any_chunking():
    torch.manual_seed(0)
    x = 0.3 * torch.randn(3, 2000).clamp(-3, 3)
    e = pre_emphasis(x, 0.85)
    assert torch.allclose(e[:, 1:], x[:, 1:] - 0.85 * x[:, :-1]) and torch.equal(e[:, 0], x[:, 0])
    whole = DeEmphasis(0.85)(e)
    assert (whole - x).abs().max() < 1e-6
    stream = DeEmphasis(0.85)
    pieces = [stream(e[:, a:b]) for a, b in [(0, 1), (1, 1), (1, 700), (700, 2000)]]
    assert torch.equal(torch.cat(pieces, 1), whole)


def test_de_emphasis_is_a_low_pass_that_clamps_and_keeps_rows_apart():
    impulse = torch.zeros(2, 50)
    impulse[0, 0] = 1.0
    y = DeEmphasis(0.5)(impulse)
    assert torch.allclose(y[0, :4], torch.tensor([1.0, 0.5, 0.25, 0.125])) and not y[1].any()
    assert DeEmphasis(0.9)(torch.ones(1, 100)).max() == 1.0  # DC gain 10, clamped to the mu-law range
    stream = DeEmphasis(0.5)
    stream(impulse)
    with pytest.raises(ValueError, match="rows"):
        stream(impulse[:1])


def test_zero_coefficient_is_the_identity_and_bad_ones_are_refused():
    x = torch.randn(2, 10)
    assert pre_emphasis(x, 0.0) is x and DeEmphasis(0.0)(x) is x
    for bad in (-0.1, 1.0, 1.5):
        with pytest.raises(ValueError, match="pre_emphasis"):
            DeEmphasis(bad)
    with pytest.raises(ConfigError, match="model.pre_emphasis"):
        VQVAE.from_config(apply_overrides(preset("tiny"), {"pre_emphasis": 1.0}))


def test_the_wavenet_learns_the_pre_emphasised_waveform():
    """The teacher-forced loss is the cross-entropy against mu-law classes of x_t - a x_{t-1}."""
    torch.manual_seed(0)
    model = VQVAE.from_config(apply_overrides(preset("tiny"), {"pre_emphasis": 0.85, "mel_loss_weight": None}))
    wav = 0.5 * torch.sin(torch.arange(64 * 20) * 0.05).view(1, 1, -1)
    out = model(wav, torch.tensor([0]))
    target = mu_law_encode(pre_emphasis(wav[:, 0], 0.85), model.mu_law_classes)
    assert torch.allclose(out.reconstruction_loss, F.cross_entropy(out.logits, target))
    plain = mu_law_encode(wav[:, 0], model.mu_law_classes)
    assert not torch.allclose(out.reconstruction_loss, F.cross_entropy(out.logits, plain))
