"""The speaker adversary: a reversed gradient into the encoder, a classifier that learns, logged metrics."""

from __future__ import annotations

import pytest
import torch

from audio_vqvae import VQVAE
from audio_vqvae.config import ConfigError, apply_overrides, preset
from audio_vqvae.models.adversary import SpeakerAdversary, reverse_gradient


def test_reverse_gradient_is_identity_forward_and_negated_scaled_backward():
    x = torch.randn(3, 4, requires_grad=True)
    y = reverse_gradient(x, 0.5)
    assert torch.equal(y, x)
    w = torch.randn(3, 4)
    (y * w).sum().backward()
    assert torch.allclose(x.grad, -0.5 * w)


def test_the_classifier_descends_and_the_latents_ascend_its_loss():
    torch.manual_seed(0)
    adversary = SpeakerAdversary(8, 3, hidden=16)
    latents = torch.randn(2, 8, 5, requires_grad=True)
    speaker = torch.tensor([0, 2])
    loss, accuracy = adversary(latents, speaker)
    loss.backward()
    plain = latents.detach().clone().requires_grad_(True)
    logits = adversary.net(plain).float()
    torch.nn.functional.cross_entropy(logits, speaker.view(-1, 1).expand(-1, 5)).backward()
    assert torch.allclose(latents.grad, -plain.grad) and plain.grad.abs().sum() > 0
    assert 0 <= float(accuracy) <= 1 and not accuracy.requires_grad
    # a few steps of the classifier alone name the speakers of fixed latents
    opt = torch.optim.Adam(adversary.parameters(), lr=1e-2)
    fixed = torch.randn(2, 8, 5) + torch.tensor([3.0, -3.0]).view(2, 1, 1)
    for _ in range(50):
        opt.zero_grad()
        adversary(fixed, speaker)[0].backward()
        opt.step()
    assert float(adversary(fixed, speaker)[1]) == 1.0


def test_the_model_adds_the_weighted_adversary_loss_and_logs_it():
    torch.manual_seed(0)
    cfg = apply_overrides(preset("tiny"), {"speaker_adversary_weight": 0.5})
    model = VQVAE.from_config(cfg)
    wav = 0.3 * torch.randn(2, 1, 64 * 16)
    out = model(wav, torch.tensor([0, 1]))
    without = out.reconstruction_loss + model.mel_loss_weight * out.mel_loss + out.codebook_loss
    without = without + model.quantizer.commitment_weight * out.commitment_loss
    assert torch.allclose(out.loss, without + 0.5 * out.adversary_loss, atol=1e-5)
    assert {"adversary/loss", "adversary/accuracy"} <= out.metrics().keys()
    out.loss.backward()
    assert all(p.grad is not None for p in model.adversary.parameters())
    plain = VQVAE.from_config(preset("tiny"))
    assert plain.adversary is None and "adversary/loss" not in plain(wav, torch.tensor([0, 1])).metrics()
    with pytest.raises(ConfigError, match="speaker_adversary_weight"):
        VQVAE.from_config(apply_overrides(preset("tiny"), {"speaker_adversary_weight": -1.0}))
