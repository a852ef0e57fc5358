"""Sliding-window CMN of the log-mel encoder: the window's mean, exact windowed encoding, and training
crops whose frames are those of the whole utterance."""

from __future__ import annotations

import dataclasses

import pytest
import soundfile as sf
import torch

from audio_vqvae import VQVAE
from audio_vqvae.config import preset
from audio_vqvae.data.manifest import Utterance
from audio_vqvae.errors import ConfigError
from audio_vqvae.inference.windows import encode_chunked
from audio_vqvae.models.cmn import sliding_mean, window_frames
from audio_vqvae.models.vqvae import EncoderCrop
from audio_vqvae.training.dataset import SegmentDataset, validation_batches


def cmn_model(seconds: float = 0.3) -> VQVAE:
    cfg = preset("tiny")
    encoder = dataclasses.replace(cfg.encoder, frontend="log_mel", n_mels=20, cmn_window_seconds=seconds)
    torch.manual_seed(0)
    return VQVAE.from_config(dataclasses.replace(cfg, encoder=encoder)).eval()


def test_sliding_mean_is_the_mean_of_the_valid_frames_of_each_window():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 17) * 5 + 40
    lengths = [17, 11]
    mask = (torch.arange(17) < torch.tensor(lengths).unsqueeze(1)).unsqueeze(1).float()
    left, right = 4, 2
    got = sliding_mean(x, mask, left, right)
    for b, n in enumerate(lengths):
        for t in range(17):
            frames = [m for m in range(t - left, t + right + 1) if 0 <= m < n]
            want = x[b, :, frames].double().mean(-1) if frames else torch.zeros(3, dtype=torch.float64)
            assert torch.allclose(got[b, :, t].double(), want, atol=1e-5), (b, t)
    assert torch.allclose(sliding_mean(x, None, left, right), sliding_mean(x, torch.ones(2, 1, 17), left, right))


def test_window_frames_are_centred_and_checked():
    assert window_frames(1.0, 250) == (124, 125)
    assert window_frames(0.001, 250) == (0, 0)
    with pytest.raises(ValueError, match="cmn_window_seconds"):
        window_frames(0.0, 250)


def test_cmn_removes_a_constant_gain_and_widens_the_context():
    model = cmn_model()
    plain = VQVAE.from_config(
        dataclasses.replace(model.config, encoder=dataclasses.replace(model.config.encoder, cmn_window_seconds=None))
    )
    left, right = model.encoder.cmn
    assert model.encoder.context == (plain.encoder.context[0] + left * 64, plain.encoder.context[1] + right * 64)
    assert plain.encoder.training_context == (0, 0) and model.encoder.training_context == model.encoder.context
    torch.manual_seed(1)
    wav = torch.randn(1, 1, 16000) * 0.1
    with torch.no_grad():
        # a gain is a constant added to every log-mel band, which the sliding mean takes out
        # (up to the 1e-5 floor of the log, far below these bands' power)
        assert torch.allclose(model.encoder(wav), model.encoder(wav * 3.0), atol=1e-3)


def test_cmn_is_rejected_on_the_waveform_front_end():
    cfg = preset("tiny")
    cfg = dataclasses.replace(cfg, encoder=dataclasses.replace(cfg.encoder, cmn_window_seconds=1.0))
    with pytest.raises(ConfigError, match="model.encoder.*log_mel"):
        VQVAE.from_config(cfg)


def test_windowed_encoding_equals_whole_encoding_with_cmn():
    model = cmn_model()
    torch.manual_seed(2)
    wavs = [torch.randn(n) * torch.linspace(0.02, 0.3, n) for n in (16000 * 3 + 17, 2000, 64)]
    with torch.no_grad():
        whole = [model.encoder(w.view(1, 1, -1))[0].T for w in wavs]  # (N, D)
    for chunk in (0.25, 1.0):
        got = list(encode_chunked(model, wavs, chunk_seconds=chunk, batch_seconds=2.0, latents="continuous"))
        for e, w in zip(got, whole):
            assert torch.allclose(e.latents, w, atol=1e-5), chunk


def test_training_crops_see_what_the_whole_utterance_gives(tmp_path):
    """The dataset reads each crop with the encoder's context, and the model's latents for it equal
    the frames of encoding the whole utterance: training and inference normalise alike."""
    model = cmn_model()
    torch.manual_seed(3)
    n = 16000 + 5 * 64
    wav = torch.randn(n) * torch.linspace(0.05, 0.4, n)
    path = tmp_path / "u.wav"
    sf.write(path, wav.numpy(), 16000, subtype="FLOAT")
    rows = [Utterance("u", str(path), "s", n / 16000, 16000, n)]
    segment = 64 * 20
    ds = SegmentDataset(rows, ["s"], segment, 64, 16000, model.encoder.training_context)
    with torch.no_grad():
        whole = model.encoder(wav.view(1, 1, -1))[0]  # (D, N)
        for offset in (0, 64 * 30, n // 64 * 64 - segment, n - 64 * 3):
            item = ds.crop(0, offset)
            assert torch.equal(item["wav"][0, : min(segment, n - offset)], wav[offset : offset + segment])
            batch = {k: v.unsqueeze(0) for k, v in item.items()}
            z = model.encode_crop(EncoderCrop.from_batch(batch, torch.device("cpu")), segment // 64)[0]
            frames = min(segment // 64, n // 64 - offset // 64)
            first = offset // 64
            assert torch.allclose(z[:, :frames], whole[:, first : first + frames], atol=1e-5), offset
    (batch,) = validation_batches(ds, 1, 4)
    assert batch["encoder_wav"].shape == (1, 1, ds.context[0] + segment + ds.context[1])
    assert EncoderCrop.from_batch({"wav": batch["wav"]}, torch.device("cpu")) is None


def test_a_cmn_model_trains_a_step_on_cropped_batches(tmp_path):
    model = cmn_model().train()
    n = 8000
    paths = []
    for i in range(2):
        path = tmp_path / f"u{i}.wav"
        sf.write(path, (torch.randn(n) * 0.1).numpy(), 16000, subtype="FLOAT")
        paths.append(Utterance(f"u{i}", str(path), "s", n / 16000, 16000, n))
    ds = SegmentDataset(paths, ["s"], 1024, 64, 16000, model.encoder.training_context)
    (batch,) = validation_batches(ds, 2, 2)
    out = model(batch["wav"], batch["speaker"], EncoderCrop.from_batch(batch, torch.device("cpu")))
    out.loss.backward()
    assert torch.isfinite(out.loss) and model.encoder.conv_in.weight.grad.abs().sum() > 0
