"""The auxiliary mel path: log-mel targets on the code grid, the speaker-conditioned mel decoder, and
the mel-conditioned WaveNet's conditioning features."""

from __future__ import annotations

import pytest
import torch

from audio_vqvae.config import ConfigError, apply_overrides, preset
from audio_vqvae.data.spectrum import log_mel_frames
from audio_vqvae.models.mel import LogMel, MelDecoder
from audio_vqvae.models.vqvae import VQVAE


def test_log_mel_matches_the_metrics_frames_and_is_batch_invariant():
    torch.manual_seed(0)
    wavs = [torch.randn(640 * 3 + 17) * 0.1, torch.randn(640 * 3 + 17) * 0.01]
    log_mel = LogMel(16000, 64, n_mels=40)
    batch = log_mel(torch.stack(wavs))  # (2, 40, N)
    assert batch.shape == (2, 40, len(wavs[0]) // 64)
    for b, wav in enumerate(wavs):
        reference = log_mel_frames(wav, 16000, 64, n_mels=40).T  # (40, N), ln(power + 1e-10)
        assert torch.allclose(batch[b].exp() - 1e-5, reference.exp() - 1e-10, rtol=1e-4, atol=1e-9)
        assert torch.allclose(log_mel(wav.unsqueeze(0))[0], batch[b], atol=1e-5)


def test_mel_decoder_shapes_speaker_and_locality():
    torch.manual_seed(0)
    dec = MelDecoder(in_channels=4, n_mels=10, channels=8, n_layers=2, kernel_size=3, n_speakers=3, speaker_dim=5)
    latents = torch.randn(2, 4, 30)
    out = dec(latents, torch.tensor([0, 1]))
    assert out.shape == (2, 10, 30)
    assert not torch.allclose(out[0], dec(latents[:1], torch.tensor([2]))[0])  # the speaker matters
    moved = latents.clone()
    moved[:, :, 0] += 1.0  # frame 0 reaches (1 + n_layers) * (k // 2) = 3 frames: 0..3
    diff = (dec(moved, torch.tensor([0, 1])) - out).abs().amax(dim=(0, 1))
    assert (diff[:4] > 0).all() and (diff[4:] == 0).all()
    with pytest.raises(ValueError, match="odd"):
        MelDecoder(kernel_size=4)


def test_mel_loss_trains_the_encoder_through_the_straight_through_path():
    torch.manual_seed(0)
    model = VQVAE.from_config(preset("tiny")).train()
    out = model(torch.randn(2, 1, 1280) * 0.1, torch.tensor([0, 1]))
    assert out.mel_loss > 0 and "loss/mel" in out.metrics()
    model.zero_grad()
    out.mel_loss.backward()
    assert model.encoder.convs[0].weight.grad.abs().sum() > 0
    assert model.decoder.layers[0].conv.weight.grad is None  # the mel loss does not touch the WaveNet
    without = VQVAE.from_config(apply_overrides(preset("tiny"), {"mel_loss_weight": None}))
    assert without.mel_decoder is None
    assert without(torch.randn(1, 1, 640) * 0.1, torch.tensor([0])).mel_loss == 0


def test_mel_conditioning_feeds_the_predicted_spectrogram_of_the_chosen_speaker():
    torch.manual_seed(0)
    model = VQVAE.from_config(apply_overrides(preset("tiny"), {"mel_conditioning": True})).eval()
    latents = model.quantizer.dequantize(torch.randint(0, 32, (2, 12)))
    speakers = torch.tensor([0, 1])
    feats = model.conditioning_features(latents, speakers)
    assert feats.shape == (2, latents.size(1) + model.mel_decoder.n_mels, 12)
    assert torch.equal(feats[:, : latents.size(1)], latents)
    other = model.conditioning_features(latents, torch.tensor([2, 3]))
    assert not torch.allclose(feats[:, latents.size(1) :], other[:, latents.size(1) :])  # the speaker's spectrum
    # Padding: each row as if alone, zeros past its length.
    lengths = torch.tensor([12, 5])
    padded = model.conditioning_features(latents, speakers, lengths)
    alone = model.conditioning_features(latents[1:, :, :5], speakers[1:])
    assert torch.allclose(padded[1, :, :5], alone[0], atol=1e-6) and (padded[1, :, 5:] == 0).all()
    with pytest.raises(ConfigError, match="mel_loss_weight"):
        VQVAE.from_config(apply_overrides(preset("tiny"), {"mel_conditioning": True, "mel_loss_weight": None}))


def _mel_model(**encoder):
    torch.manual_seed(0)
    return VQVAE.from_config(apply_overrides(preset("tiny"), {"encoder": {"frontend": "log_mel", **encoder}})).eval()


@pytest.mark.parametrize("strides", [(2,) * 6, (5, 4, 4, 4)])
def test_log_mel_encoder_frames_context_and_padding(strides):
    model = _mel_model(strides=list(strides))
    enc, hop = model.encoder, model.hop_length
    assert hop == torch.tensor(strides).prod().item()
    wav = torch.randn(1, 1, 20 * hop + 7, dtype=torch.float64) * 0.1
    enc = enc.double()
    z = enc(wav)
    assert z.shape == (1, model.quantizer.dim, 20)
    # A frame depends on no sample outside [n * hop - left, (n + 1) * hop + right).
    n = 10
    left, right = enc.context
    for t, inside in [(n * hop - left - 1, False), ((n + 1) * hop + right, False), (n * hop, True)]:
        if 0 <= t < wav.size(-1):
            moved = wav.clone()
            moved[..., t] += 1.0
            assert torch.equal(enc(moved)[..., n], z[..., n]) != inside, t
    # Right-padded batch rows give the frames of the row alone.
    short = wav[..., : 9 * hop + 3]
    batch = torch.cat([torch.nn.functional.pad(short, (0, wav.size(-1) - short.size(-1))), wav])
    out = enc(batch, torch.tensor([short.size(-1), wav.size(-1)]))
    assert torch.allclose(out[0, :, :9], enc(short)[0], atol=1e-10)
    with pytest.raises(ValueError, match="hop_length"):
        enc(wav[..., : hop - 1])


def test_log_mel_encoder_chunked_encoding_equals_one_pass():
    from audio_vqvae.inference.windows import encode_chunked

    model = _mel_model()
    wav = torch.randn(3 * 16000 + 77) * 0.1
    z = model.encoder(wav.view(1, 1, -1)).detach()[0]  # (D, N)
    with torch.no_grad():  # codes of the signal's own latents, so they vary from frame to frame
        model.quantizer.codebook.copy_(torch.nn.functional.normalize(z[:, torch.randperm(z.size(1))[:32]].t(), dim=1))
    whole = model.encode(wav)[0]
    assert whole.unique().numel() > 10
    for chunk, batch in [(0.37, 100.0), (0.1, 0.3), (10.0, 10.0)]:
        (out,) = encode_chunked(model, [wav], chunk_seconds=chunk, batch_seconds=batch, latents="continuous")
        assert torch.equal(out.codes, whole), chunk
        assert torch.allclose(out.latents, z.T, atol=1e-5)
