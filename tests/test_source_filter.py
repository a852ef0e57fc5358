"""The source-filter WaveNet: its source, causality, pieces equal to one pass, and the VQ-VAE around it."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from audio_vqvae.config import DecoderConfig, EncoderConfig, MelDecoderConfig, ModelConfig, QuantizerConfig
from audio_vqvae.errors import ConfigError
from audio_vqvae.evaluation.metrics.pitch import yin
from audio_vqvae.inference.synthesis import decode_chunked, decode_stream
from audio_vqvae.models.lpc import (
    ExcitationFilter,
    frame_filter,
    impulse_responses,
    lpc_from_log_mel,
    prediction_error,
)
from audio_vqvae.models.mel import LogMel
from audio_vqvae.models.nsf import SourceFilterWaveNet, f0_features, f0_from_prediction, f0_loss
from audio_vqvae.models.pitch import yin_f0
from audio_vqvae.models.source import HarmonicSource, NoiseStream
from audio_vqvae.models.stft_loss import multi_resolution_stft_loss
from audio_vqvae.models.vqvae import VQVAE

SR, HOP = 16000, 16


def tiny_filter(**kw) -> SourceFilterWaveNet:
    torch.manual_seed(0)
    args = dict(
        harmonics=3,
        sample_rate=SR,
        cond_in_channels=6,
        hop_length=HOP,
        residual_channels=6,
        gate_channels=10,
        skip_channels=7,
        layers_per_stack=4,
        n_stacks=2,
        cond_channels=5,
        n_cond_layers=1,
        n_speakers=3,
        speaker_dim=4,
    )
    args.update(kw)
    return SourceFilterWaveNet(**args).eval()


def tiny_model(latent_conditioning: bool = True, **decoder) -> VQVAE:
    torch.manual_seed(0)
    cfg = ModelConfig(
        mel_conditioning=True,
        latent_conditioning=latent_conditioning,
        encoder=EncoderConfig(frontend="log_mel", strides=(2, 2, 2, 2), n_mels=20, channels=8, n_residual_layers=0),
        quantizer=QuantizerConfig(codebook_size=16, dim=4, kmeans_init=False),
        decoder=DecoderConfig(
            kind="source_filter",
            harmonics=4,
            residual_channels=6,
            gate_channels=8,
            skip_channels=6,
            layers_per_stack=5,
            n_stacks=1,
            cond_channels=6,
            n_cond_layers=1,
            n_speakers=3,
            speaker_dim=4,
            **decoder,
        ),
        mel_decoder=MelDecoderConfig(n_mels=10, channels=8, n_layers=1, kernel_size=3),
    )
    return VQVAE.from_config(cfg).eval()


def _tone(f0: float, seconds: float) -> torch.Tensor:
    t = torch.arange(int(seconds * SR), dtype=torch.float64) / SR
    return 0.1 * sum(torch.sin(2 * math.pi * k * f0 * t + k) / k for k in range(1, 8))


# ---- pitch --------------------------------------------------------------------------------------------


def test_batched_yin_is_the_metric_yin_row_by_row_and_finds_the_tone():
    rows = torch.stack([_tone(120, 0.5), _tone(210, 0.5), 0.05 * torch.randn(8000, dtype=torch.float64)])
    f0 = yin_f0(rows, SR, 160)  # (3, 50)
    assert f0.shape == (3, 50)
    for row, track in zip(f0, (yin(r, SR) for r in rows)):
        np.testing.assert_allclose(row.numpy(), np.nan_to_num(track.f0), rtol=1e-9)
    assert f0[0, :40].sub(120).abs().max() < 2.5 and f0[1, :40].sub(210).abs().max() < 4
    assert (f0[2] > 0).float().mean() < 0.05  # noise is unvoiced


def test_centred_frames_follow_the_code_grid():
    # a tone that starts at sample 4000: with centre=True frame n covers the samples around (n + 1/2) hop
    x = torch.cat([torch.zeros(4000, dtype=torch.float64), _tone(150, 0.5)])
    plain, centred = yin_f0(x, SR, 64) > 0, yin_f0(x, SR, 64, center=True) > 0
    onset = 4000 // 64
    assert centred[: onset - 6].sum() == 0 and centred[onset + 6 : onset + 60].all()
    assert int(plain.float().argmax()) < int(centred.float().argmax())  # uncentred frames look ahead


# ---- source -------------------------------------------------------------------------------------------


def test_noise_stream_gives_the_same_numbers_for_any_split():
    whole = NoiseStream(2, 3, "cpu", torch.Generator().manual_seed(0), block=50).take(170)
    stream = NoiseStream(2, 3, "cpu", torch.Generator().manual_seed(0), block=50)
    pieces = torch.cat([stream.take(n) for n in (1, 49, 0, 73, 47)], -1)
    assert torch.equal(whole, pieces)


def test_source_is_sines_at_f0_where_voiced_and_noise_elsewhere():
    f0 = torch.tensor([[100.0] * 40 + [0.0] * 40, [300.0] * 80])
    src = HarmonicSource(2, 3, HOP, SR, noise_std=0.0, sine_amplitude=0.1)
    e = src(f0)  # (2, 3, 1280)
    assert e.shape == (2, 3, 80 * HOP)
    t = torch.arange(40 * HOP, dtype=torch.float64)
    for k in (1, 2, 3):  # harmonic k of row 0: 0.1 sin(2 pi k 100 t / SR), phase from 0
        expected = 0.1 * torch.sin(2 * math.pi * k * 100 * (t + 1) / SR)
        torch.testing.assert_close(e[0, k - 1, : 40 * HOP].double(), expected, atol=1e-5, rtol=0)
    unvoiced = e[0, :, 40 * HOP :]
    assert unvoiced.std() == pytest.approx(0.1 / 3, rel=0.1)  # noise of std A / 3
    # row 1: 300 Hz; the third harmonic, 900 Hz, is below Nyquist; all three are sines
    assert e[1].abs().max() <= 0.1 + 1e-6


def test_harmonics_above_nyquist_are_noise():
    e = HarmonicSource(1, 4, HOP, SR, noise_std=0.0)(torch.full((1, 20), 3000.0))  # 4 x 3 kHz > 8 kHz
    assert e[0, 2].std() == pytest.approx(0.1 / 3, rel=0.2)  # 9 kHz: above Nyquist, so noise of std A / 3...
    assert e[0, 0].pow(2).mean().sqrt() == pytest.approx(0.1 / math.sqrt(2), rel=0.05)  # ...3 kHz is a sine


def test_source_in_pieces_equals_one_pass():
    f0 = torch.cat([torch.full((2, 17), 130.0), torch.zeros(2, 9), torch.full((2, 14), 95.0)], 1)
    whole = HarmonicSource(2, 3, HOP, SR, generator=torch.Generator().manual_seed(3))(f0)
    src = HarmonicSource(2, 3, HOP, SR, generator=torch.Generator().manual_seed(3))
    pieces = torch.cat([src(f0[:, a:b]) for a, b in ((0, 1), (1, 12), (12, 30), (30, 40))], -1)
    torch.testing.assert_close(pieces, whole, atol=1e-6, rtol=0)


# ---- the filter ---------------------------------------------------------------------------------------


def test_output_is_causal_in_the_excitation_with_the_receptive_field_it_states():
    net = tiny_filter()
    N = 10
    excitation = torch.randn(1, 3, N * HOP)
    features, speaker = torch.randn(1, 6, N), torch.tensor([1])
    base = net(excitation, features, speaker)
    t = 70
    changed = excitation.clone()
    changed[..., t] += 1.0
    diff = (net(changed, features, speaker) - base).abs()[0]
    assert diff[:t].max() == 0  # nothing before t moves
    assert diff[t : t + net.receptive_field].max() > 0
    assert diff[t + net.receptive_field :].max() == 0  # and nothing past the receptive field


def test_speaker_and_features_change_the_waveform():
    net = tiny_filter()
    excitation, features = torch.randn(2, 3, 8 * HOP), torch.randn(1, 6, 8).expand(2, -1, -1)
    out = net(excitation[:1].expand(2, -1, -1), features, torch.tensor([0, 2]))
    assert not torch.allclose(out[0], out[1])
    with pytest.raises(ValueError, match="excitation has"):
        net(excitation[..., :-1], features, torch.tensor([0, 2]))


def test_f0_features_and_prediction_round_trip():
    f0 = torch.tensor([[0.0, 100.0, 220.5, 0.0, 85.0]])
    feats = f0_features(f0)
    assert feats.shape == (1, 2, 5) and feats[0, 0].tolist() == [0, 1, 1, 0, 1]
    prediction = torch.stack([feats[:, 0] * 20 - 10, feats[:, 1]], 1)  # confident voicing logits
    torch.testing.assert_close(f0_from_prediction(prediction), f0)
    assert f0_loss(prediction, f0) < 1e-3
    assert f0_loss(prediction, f0 * 1.5) > 0.1  # a wrong pitch costs


def test_stft_loss_is_zero_on_itself_and_ranks_distortions():
    x = _tone(140, 0.5).float().unsqueeze(0)
    assert multi_resolution_stft_loss(x, x) < 1e-5
    louder, noisy = (
        multi_resolution_stft_loss(1.2 * x, x),
        multi_resolution_stft_loss(x + 0.05 * torch.randn_like(x), x),
    )
    assert 0 < louder < noisy


# ---- in the VQ-VAE ------------------------------------------------------------------------------------


def test_training_pass_learns_from_the_stft_and_f0_losses_and_the_f0_decoder_leaves_the_codes_alone():
    model = tiny_model().train()
    wav = torch.stack([_tone(140, 0.25), _tone(200, 0.25)]).float().unsqueeze(1)  # (2, 1, 4000)
    out = model(wav, torch.tensor([0, 1]))
    assert out.logits.shape == (2, 1, 4000 // HOP * HOP)
    assert out.f0_loss is not None and "loss/f0" in out.metrics()
    total = out.reconstruction_loss + out.f0_loss + out.mel_loss + out.codebook_loss + 0.25 * out.commitment_loss
    torch.testing.assert_close(out.loss, total)
    out.f0_loss.backward()
    assert model.f0_decoder.conv_out.weight.grad.abs().sum() > 0
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in model.encoder.parameters())


@pytest.mark.parametrize("lpc_order, latent_conditioning", [(0, True), (4, True), (4, False)])
def test_decode_in_pieces_equals_one_pass_for_a_padded_batch(lpc_order, latent_conditioning):
    model = tiny_model(latent_conditioning, lpc_order=lpc_order)
    model.f0_decoder.conv_out.bias.data[0] = 5.0  # voiced everywhere, so the sines are in play
    codes, lengths, speaker = torch.randint(0, 16, (2, 40)), torch.tensor([40, 23]), torch.tensor([0, 2])
    whole = model.decode(codes, speaker, lengths, generator=torch.Generator().manual_seed(1))  # (2, 1, 640)
    assert whole[1, 0, 23 * HOP :].abs().max() == 0
    assert whole[1, 0, : 23 * HOP].abs().max() > 0
    repadded = codes.clone()
    repadded[1, 23:] = torch.randint(0, 16, (17,))
    other = model.decode(repadded, speaker, lengths, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(other, whole, atol=1e-6, rtol=0)  # what lies past a row's length changes nothing
    for chunk in (1, 3, 16):
        rows = decode_chunked(
            model,
            codes,
            speaker,
            lengths,
            chunk_frames=chunk,
            one_pass_bytes=0,
            generator=torch.Generator().manual_seed(1),
        )
        for b, row in enumerate(rows):
            assert row.shape == (int(lengths[b]) * HOP,)
            torch.testing.assert_close(row, whole[b, 0, : row.numel()], atol=1e-6, rtol=0)


def test_an_lpc_decoder_is_trained_through_the_real_frames_filters_and_decodes_through_the_predicted_ones():
    model = tiny_model(lpc_order=4).train()
    wav = torch.stack([_tone(140, 0.25), _tone(200, 0.25)]).float().unsqueeze(1)  # (2, 1, 4000)
    out = model(wav, torch.tensor([0, 1]))
    torch.testing.assert_close(out.reconstruction_loss, multi_resolution_stft_loss(out.logits.squeeze(1), wav[:, 0]))
    out.reconstruction_loss.backward()
    assert model.decoder.source_proj.weight.grad.abs().sum() > 0  # through the filter to the layers
    model.eval()
    codes, speaker = out.codes, torch.tensor([0, 1])
    features, f0 = model.synthesis_inputs(model.quantizer.dequantize(codes), speaker)
    with torch.no_grad():
        source = model.decoder.source(2, "cpu", torch.Generator().manual_seed(1))(f0)
        excitation = model.decoder(source, features, speaker)
    expected = ExcitationFilter(model.log_mel, HOP, SR, 4)(excitation, model.feature_log_mel(features)).clamp(-1, 1)
    decoded = model.decode(codes, speaker, generator=torch.Generator().manual_seed(1))[:, 0]
    torch.testing.assert_close(decoded, expected)
    assert not torch.allclose(decoded, excitation.float(), atol=1e-3)


def test_impulse_responses_are_the_all_pole_recursions():
    from scipy.signal import lfilter

    a = torch.tensor([[-1.6, 0.9], [0.5, 0.2]])  # two stable filters
    h = impulse_responses(a, 64)
    for row, coefficients in zip(h, a):
        impulse = np.zeros(64)
        impulse[0] = 1.0
        reference = lfilter([1.0], np.concatenate([[1.0], coefficients.double().numpy()]), impulse)
        np.testing.assert_allclose(row.numpy(), reference, atol=1e-5)


def test_frame_filter_with_one_response_is_a_convolution_and_with_two_switches_per_hop():
    x, h = torch.randn(1, 5 * HOP, dtype=torch.float64), torch.randn(1, 1, 40, dtype=torch.float64)
    same = frame_filter(x, h.expand(1, 5, 40), HOP)
    np.testing.assert_allclose(same[0].numpy(), np.convolve(x[0].numpy(), h[0, 0].numpy()), atol=1e-5)
    switched = h.expand(1, 5, 40).clone()
    switched[:, 3:] *= -1  # hops 3 and 4 through the negated response
    expected = np.convolve(x[0, : 3 * HOP].numpy(), h[0, 0].numpy())
    expected = np.pad(expected, (0, 2 * HOP))
    expected[3 * HOP :] -= np.convolve(x[0, 3 * HOP :].numpy(), h[0, 0].numpy())
    np.testing.assert_allclose(frame_filter(x, switched, HOP)[0].numpy(), expected, atol=1e-5)


def test_the_excitation_filter_in_pieces_equals_one_pass_and_rebuilds_speech_from_its_residual():
    """Any split of a stream (pieces shorter than the responses included) gives the whole's output; the
    LPC residual of a waveform, each frame at unit level, comes back as the waveform (up to the filters'
    switching at hop edges); louder frames give a louder output."""
    front_end = LogMel(SR, HOP, 20)
    wav = torch.stack([_tone(140, 0.2), 0.3 * _tone(230, 0.2) + 0.01 * torch.randn(3200, dtype=torch.float64)]).float()
    log_mel = front_end(wav)  # (2, 20, 200)
    a, gain = lpc_from_log_mel(log_mel, front_end.basis, front_end.window, 12, SR)
    residual = prediction_error(wav, a, HOP) / gain.repeat_interleave(HOP, -1)
    whole = ExcitationFilter(front_end, HOP, SR, 12)(residual, log_mel)
    lpc = ExcitationFilter(front_end, HOP, SR, 12)
    pieces = [lpc(residual[:, a * HOP : b * HOP], log_mel[..., a:b]) for a, b in ((0, 7), (7, 8), (8, 200))]
    torch.testing.assert_close(torch.cat(pieces, -1), whole, atol=1e-5, rtol=0)
    error = (whole - wav)[:, 1000:].pow(2).mean() / wav[:, 1000:].pow(2).mean()
    assert float(error) < 0.01  # within 20 dB
    louder = ExcitationFilter(front_end, HOP, SR, 12)(residual, log_mel + math.log(4.0))
    assert float(louder.std() / whole.std()) == pytest.approx(2.0, rel=0.05)  # 4x the power, up to the log floor


def test_a_piece_without_its_past_excitation_would_differ():
    """The test above can fail: cutting the carried context changes the samples after a chunk boundary."""
    model = tiny_model()
    model.f0_decoder.conv_out.bias.data[0] = 5.0
    codes, speaker = torch.randint(0, 16, (1, 20)), torch.tensor([1])
    whole = model.decode(codes, speaker, generator=torch.Generator().manual_seed(1))[0, 0]
    pieces = []
    for a in (0, 10):  # two independent halves with one continuing source: no past excitation
        sub = model.decode(codes[:, a : a + 10], speaker, generator=torch.Generator().manual_seed(1))[0, 0]
        pieces.append(sub)
    assert not torch.allclose(torch.cat(pieces)[10 * HOP :], whole[10 * HOP :], atol=1e-4)


def test_stream_ignores_sampling_options_and_rejects_bad_codes():
    model = tiny_model()
    codes = torch.randint(0, 16, (1, 12))
    pieces = list(decode_stream(model, codes, torch.tensor([0]), generator=torch.Generator().manual_seed(0)))
    assert len(pieces) == 1 and pieces[0][2] and pieces[0][1].shape == (12 * HOP,)
    with pytest.raises(ValueError, match="codes must be in"):
        list(decode_stream(model, codes + 16, torch.tensor([0])))


@pytest.mark.parametrize("latent_conditioning", [True, False])
def test_without_latent_conditioning_the_wavenet_hears_the_codes_only_through_the_predicted_mel_and_f0(
    latent_conditioning,
):
    model = tiny_model(latent_conditioning, lpc_order=4)
    assert model.decoder.cond_in_channels == (4 if latent_conditioning else 0) + 10 + 2
    # The mel and f0 decoders made deaf to the codes: what is left of the codes is what the WaveNet hears itself.
    mel = torch.randn(1, 10, 30)
    model.mel_decoder.forward = lambda latents, speaker: mel.expand(latents.size(0), -1, -1)[..., : latents.size(-1)]
    f0 = torch.tensor([[5.0], [0.3]]).expand(1, 2, 30)  # voiced, ln(f0 / 100 Hz) = 0.3
    model.f0_decoder.forward = lambda latents, speaker: f0.expand(latents.size(0), -1, -1)[..., : latents.size(-1)]
    a, b = torch.randint(0, 16, (2, 30)).unbind(0)
    wavs = [model.decode(c, 1, generator=torch.Generator().manual_seed(1)) for c in (a, b)]
    assert wavs[0].abs().max() > 0
    assert torch.equal(wavs[0], wavs[1]) == (not latent_conditioning)
    features = model.conditioning_features(model.quantizer.dequantize(a[None]), torch.tensor([1]))
    torch.testing.assert_close(model.feature_log_mel(features), mel)


def test_without_latent_conditioning_the_codes_still_learn_through_the_mel_decoder():
    model = tiny_model(False, lpc_order=4).train()
    wav = torch.stack([_tone(140, 0.25), _tone(200, 0.25)]).float().unsqueeze(1)  # (2, 1, 4000)
    out = model(wav, torch.tensor([0, 1]))
    out.reconstruction_loss.backward(retain_graph=True)
    assert model.decoder.source_proj.weight.grad.abs().sum() > 0
    # the WaveNet's loss reaches the mel decoder, and through its prediction the codes' encoder
    assert model.mel_decoder.conv_out.weight.grad.abs().sum() > 0
    assert model.encoder.proj.weight.grad.abs().sum() > 0
    model.zero_grad()
    out.mel_loss.backward()
    assert model.encoder.proj.weight.grad.abs().sum() > 0


def test_config_errors_name_the_key():
    with pytest.raises(ConfigError, match="latent_conditioning: false needs model.mel_conditioning"):
        VQVAE.from_config(ModelConfig(latent_conditioning=False))
    with pytest.raises(ConfigError, match="lpc_order must be >= 0"):
        VQVAE.from_config(ModelConfig(decoder=DecoderConfig(lpc_order=-3)))
    with pytest.raises(ConfigError, match="lpc_order is for"):
        VQVAE.from_config(ModelConfig(decoder=DecoderConfig(lpc_order=16)))
    with pytest.raises(ConfigError, match="lpc_order needs model.mel_conditioning"):
        VQVAE.from_config(ModelConfig(decoder=DecoderConfig(kind="source_filter", lpc_order=16)))
    with pytest.raises(ConfigError, match="pre_emphasis"):
        VQVAE.from_config(ModelConfig(pre_emphasis=0.85, decoder=DecoderConfig(kind="source_filter")))
    with pytest.raises(ConfigError, match="input_noise"):
        VQVAE.from_config(ModelConfig(decoder=DecoderConfig(kind="source_filter", input_noise=2.0)))


def test_a_trained_source_filter_model_voices_at_the_target_speakers_pitch(prepared_corpus, tmp_path, capsys):
    """The tiny corpus's speakers are harmonic tones at 110, 154 and 198 Hz: after a short training the
    f0 decoder has learnt each speaker's pitch, and a conversion is voiced at the target's, through
    ``VQVAE.load`` and ``audio-vqvae convert`` alike."""
    import soundfile as sf
    from cli_run import run

    from audio_vqvae.config import experiment_config
    from audio_vqvae.training import train

    cfg = experiment_config(
        "tiny",
        {
            "model": {"mel_conditioning": True, "decoder": {"kind": "source_filter", "harmonics": 4}},
            "data": {"segment_length": 2048, "batch_size": 4, "num_workers": 0, "valid_utterances": 2},
            "optim": {"lr": 0.005, "warmup_steps": 5},
            "train": {"steps": 100, "log_every": 50, "valid_every": 100, "audio_every": None, "checkpoint_every": 100},
        },
    )
    train(cfg, prepared_corpus, tmp_path / "exp")
    model = VQVAE.load(tmp_path / "exp" / "last.pt")
    assert model.source_filter and model.config.decoder.kind == "source_filter"
    source, _ = sf.read(prepared_corpus / "wav" / "spk0" / "spk0_000.wav", dtype="float32")
    codes = model.encode(torch.from_numpy(source))
    for target, f0 in (("spk0", 110), ("spk2", 198)):
        wav = model.decode(codes, target, generator=torch.Generator().manual_seed(0))[0, 0]
        track = yin(wav, SR)
        assert track.voiced_fraction > 0.5, (target, track.voiced_fraction)
        assert track.median_f0 == pytest.approx(f0, rel=0.1), (target, track.median_f0)
    code, err = run(capsys, "convert", "--ckpt", tmp_path / "exp" / "last.pt", "--speaker", "spk2", "--out",
                    tmp_path / "out", prepared_corpus / "wav" / "spk0" / "spk0_000.wav")  # fmt: skip
    assert code == 0, err
    (written,) = (tmp_path / "out").glob("*.wav")
    converted, sr = sf.read(written, dtype="float32")
    assert sr == SR and yin(converted, SR).median_f0 == pytest.approx(198, rel=0.1)
