"""VQVAE: encode/decode lengths, batching, speakers, loss terms, and a tiny model that learns."""

from __future__ import annotations

import math

import pytest
import torch

from audio_vqvae import VQVAE
from audio_vqvae.config import apply_overrides, preset


def tiny_model(overrides: dict | None = None, seed: int = 0) -> VQVAE:
    torch.manual_seed(seed)
    return VQVAE.from_config(apply_overrides(preset("tiny"), overrides))


def speechlike(B: int, T: int, seed: int = 0) -> torch.Tensor:
    """A few harmonics with a slow envelope: (B, 1, T)."""
    gen = torch.Generator().manual_seed(seed)
    t = torch.arange(T) / 16000
    f0 = 100 + 150 * torch.rand(B, 1, generator=gen)
    wav = sum(torch.sin(2 * math.pi * k * f0 * t) / k for k in range(1, 5))
    env = 0.5 + 0.5 * torch.sin(2 * math.pi * 3 * t + torch.rand(B, 1, generator=gen) * 6)
    return (0.3 * wav * env).unsqueeze(1)


def test_encode_gives_t_floordiv_hop_codes_and_decode_gives_n_hop_samples():
    model = tiny_model().eval()
    assert model.hop_length == 64
    for T in (64, 100, 1000, 1337):
        codes = model.encode(torch.randn(T) * 0.1)
        assert codes.shape == (1, T // 64) and codes.dtype == torch.long
        assert codes.min() >= 0 and codes.max() < 32
    wav = model.decode(codes[:, :3], speaker=1, temperature=0)
    assert wav.shape == (1, 1, 3 * 64) and wav.abs().max() <= 1


def test_batched_decode_equals_decoding_each_utterance_alone():
    model = tiny_model().eval()
    codes = torch.randint(0, 32, (2, 4))
    lengths = torch.tensor([4, 2])
    speaker = torch.tensor([0, 3])
    both = model.decode(codes, speaker, lengths=lengths, temperature=0)
    assert both.shape == (2, 1, 256)
    assert (both[1, :, 128:] == 0).all()
    for b in range(2):
        n = int(lengths[b])
        alone = model.decode(codes[b : b + 1, :n], int(speaker[b]), temperature=0)
        assert torch.allclose(both[b : b + 1, :, : n * 64], alone)


def test_different_speakers_give_different_outputs_for_the_same_codes():
    model = tiny_model().eval()
    codes = torch.randint(0, 32, (1, 3))
    outs = [model.decode(codes, s, generator=torch.Generator().manual_seed(0)) for s in range(4)]
    for i in range(4):
        for j in range(i + 1, 4):
            assert not torch.equal(outs[i], outs[j]), (i, j)
    with pytest.raises(ValueError, match="speaker ids"):
        model.decode(codes, 4)
    with pytest.raises(ValueError, match="codes must be in"):
        model.decode(torch.tensor([[32]]), 0)


def test_forward_loss_is_the_sum_of_its_terms():
    model = tiny_model()
    wav = speechlike(2, 1000)  # trimmed to 960 = 15 frames
    out = model(wav, torch.tensor([0, 1]))
    assert out.logits.shape == (2, 256, 960) and out.codes.shape == (2, 15)
    expected = out.reconstruction_loss + out.mel_loss + out.codebook_loss + 0.25 * out.commitment_loss
    assert torch.allclose(out.loss, expected)
    assert abs(out.reconstruction_loss.item() - math.log(256)) < 1.0  # untrained: near uniform over 256
    assert set(out.metrics()) >= {"loss/total", "vq/perplexity", "vq/codes_used", "vq/dead_codes"}
    out.loss.backward()
    grads = {n: p.grad for n, p in model.named_parameters()}
    assert all(g is not None and torch.isfinite(g).all() for g in grads.values())
    assert grads["encoder.convs.0.weight"].abs().sum() > 0  # the decoder's gradient reaches the encoder


def test_bad_waveforms_are_rejected():
    model = tiny_model()
    with pytest.raises(ValueError, match="shorter than one frame"):
        model(torch.zeros(1, 1, 10), torch.tensor([0]))
    with pytest.raises(ValueError, match="mono waveform"):
        model.encode(torch.zeros(1, 2, 100))


def test_jitter_only_in_training():
    # Euclidean lookup, so the raw latents written into the codebook below are what the codes pick.
    model = tiny_model({"jitter_probability": 0.5, "quantizer": {"cosine_similarity": False}})
    wav = speechlike(1, 640)
    with torch.no_grad():  # give each of the 10 frames its own code, so moving a frame changes the latents
        model.quantizer.codebook[:10] = model.encoder(wav)[0].t()
    model.eval()
    assert len(model.encode(wav).unique()) >= 5  # periodic input: some frames share a code
    a = model(wav, torch.tensor([0])).logits
    b = model(wav, torch.tensor([0])).logits
    assert torch.equal(a, b)
    model.train()
    torch.manual_seed(0)
    c = model(wav, torch.tensor([0])).logits
    assert not torch.allclose(a, c)


def test_tiny_model_overfits_one_batch():
    model = tiny_model()
    wav = speechlike(2, 2048, seed=1)
    speaker = torch.tensor([0, 2])
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(200):
        out = model(wav, speaker)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        losses.append(out.loss.item())
        if losses[-1] <= losses[0] / 2:
            break
    assert min(losses) <= losses[0] / 2, (losses[0], min(losses), len(losses))


def test_out_of_range_codes_are_a_clear_error_on_every_decoding_path():
    from audio_vqvae.inference.synthesis import decode_chunked

    model = tiny_model().eval()
    bad = torch.tensor([[0, 40]])
    for one_pass_bytes in (2**30, 0):  # the one-call path and the chunked path
        with pytest.raises(ValueError, match=r"codes must be in \[0, 32\)"):
            decode_chunked(model, bad, torch.tensor([0]), one_pass_bytes=one_pass_bytes)
