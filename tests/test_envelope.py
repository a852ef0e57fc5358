"""The streaming envelope post-filter: pieces of any size give the whole waveform's envelope transplant."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from audio_vqvae.inference.envelope import EnvelopeFilter
from audio_vqvae.models.lpc import envelope_transplant
from audio_vqvae.models.mel import LogMel
from tests.test_lpc import ar_process

SR = 16000


def signals(hop: int, frames: int) -> tuple[torch.Tensor, torch.Tensor]:
    n = frames * hop
    low = torch.from_numpy(ar_process([0.95 * np.exp(2j * np.pi * 700 / SR)], n, seed=3)).float()
    high = torch.from_numpy(ar_process([0.95 * np.exp(2j * np.pi * 2500 / SR)], n, seed=4)).float()
    return low, high


def stream(filt: EnvelopeFilter, wav: torch.Tensor, sizes: list[int]) -> torch.Tensor:
    out, at = [], 0
    for size in sizes:
        out.append(filt(wav[at : at + size]))
        at += size
    out.append(filt(wav[at:]))
    out.append(filt.flush())
    return torch.cat(out)


@pytest.mark.parametrize("hop", [64, 160])
@pytest.mark.parametrize("sizes", [[], [1, 63, 700, 5], [3000]])
def test_pieces_of_any_size_give_the_whole_transplant(hop, sizes):
    front = LogMel(SR, hop, 80)
    low, high = signals(hop, 40)
    target = front(high.view(1, -1))  # (1, 80, 40)
    whole = envelope_transplant(low.view(1, -1), target, front, hop, SR)[0]
    got = stream(EnvelopeFilter(target[0], front, SR), low, sizes)
    assert got.shape == whole.shape
    assert torch.allclose(got, whole, atol=1e-5), (got - whole).abs().max()


def test_output_lags_the_input_by_less_than_one_window():
    hop = 64
    front = LogMel(SR, hop, 80)
    low, high = signals(hop, 40)
    filt = EnvelopeFilter(front(high.view(1, -1))[0], front, SR)
    out = filt(low[: 20 * hop])
    assert out.numel() % hop == 0
    assert 20 * hop - out.numel() < front.n_fft


def test_strength_zero_keeps_the_waveform_and_half_is_between():
    hop = 64
    front = LogMel(SR, hop, 80)
    low, high = signals(hop, 60)
    target = front(high.view(1, -1))[0]
    kept = stream(EnvelopeFilter(target, front, SR, strength=0.0), low, [500])
    assert torch.allclose(kept, low.clamp(-1, 1), atol=1e-4)

    def band_ratio(wav: torch.Tensor) -> float:
        spectrum = np.abs(np.fft.rfft(wav.numpy())) ** 2
        freqs = np.fft.rfftfreq(wav.numel(), 1 / SR)
        band = lambda f: spectrum[(freqs > f - 200) & (freqs < f + 200)].mean()  # noqa: E731
        return float(np.log(band(2500) / band(700)))

    full, half = (stream(EnvelopeFilter(target, front, SR, strength=s), low, [500]) for s in (1.0, 0.5))
    assert band_ratio(low) < band_ratio(half) < band_ratio(full)


def test_bad_arguments_are_errors():
    front = LogMel(SR, 64, 80)
    with pytest.raises(ValueError, match="strength"):
        EnvelopeFilter(torch.zeros(80, 4), front, SR, strength=1.5)
    with pytest.raises(ValueError, match="n_mels, N"):
        EnvelopeFilter(torch.zeros(1, 80, 4), front, SR)
    with pytest.raises(ValueError, match="samples for 4 frames"):
        EnvelopeFilter(torch.zeros(80, 4), front, SR)(torch.zeros(5 * 64))


def test_decoding_with_the_envelope_is_the_transplant_of_each_row_whatever_the_chunks():
    """decode_stream(envelope=1): each row is its plain decoding under the mel decoder's frames for its
    codes and speaker (whatever the batch's padding), in one pass or in chunks; a row's pieces join."""
    from audio_vqvae import VQVAE
    from audio_vqvae.config import preset
    from audio_vqvae.inference.synthesis import decode_chunked, decode_stream

    torch.manual_seed(0)
    model = VQVAE.from_config(preset("tiny")).eval()
    assert model.mel_decoder is not None
    codes, lengths, speakers = torch.randint(0, 32, (3, 30)), torch.tensor([30, 9, 17]), torch.tensor([0, 1, 2])
    plain = decode_chunked(model, codes, speakers, lengths, temperature=0)
    one_pass = decode_chunked(model, codes, speakers, lengths, temperature=0, envelope=1.0)
    chunked = decode_chunked(model, codes, speakers, lengths, temperature=0, envelope=1.0, one_pass_bytes=0,
                             chunk_frames=4)  # fmt: skip
    for b in range(3):
        n = int(lengths[b])
        with torch.no_grad():
            mel = model.mel_decoder(model.quantizer.dequantize(codes[b : b + 1, :n]), speakers[b : b + 1])
        want = envelope_transplant(plain[b].view(1, -1), mel, model.log_mel, 64, model.sample_rate)[0]
        assert one_pass[b].shape == want.shape == (n * 64,)
        assert torch.allclose(one_pass[b], want, atol=1e-5) and torch.allclose(chunked[b], want, atol=1e-5)
        assert not torch.allclose(want, plain[b], atol=1e-3)
    pieces = [(row, last) for row, _, last in decode_stream(model, codes, speakers, lengths, temperature=0,
                                                           envelope=0.5, one_pass_bytes=0, chunk_frames=4)]  # fmt: skip
    assert [last for row, last in pieces if row == 0][-1] and sum(last for _, last in pieces) == 3


def test_a_model_without_a_mel_decoder_is_a_usage_error():
    from audio_vqvae import VQVAE
    from audio_vqvae.config import apply_overrides, preset
    from audio_vqvae.errors import UsageError
    from audio_vqvae.inference import decode_tokens

    model = VQVAE.from_config(apply_overrides(preset("tiny"), {"mel_loss_weight": None})).eval()
    with pytest.raises(UsageError, match="mel decoder"):
        decode_tokens(model, [torch.zeros(5, dtype=torch.long)], 0, envelope=1.0)


def test_convert_takes_the_envelope_from_the_command_line(prepared_corpus, tmp_path, capsys):
    """`convert --envelope 0.5` writes the conversion; a strength outside [0, 1] is one line naming the option."""
    import soundfile as sf
    from cli_run import run
    from trained_tiny import trained_checkpoint, write_tone

    ckpt = trained_checkpoint(prepared_corpus, tmp_path / "vq")
    source = write_tone(tmp_path / "in" / "a.wav", 0.3)
    code, err = run(capsys, "convert", "--ckpt", ckpt, "--speaker", "spk1", "--envelope", "0.5", "--out",
                    tmp_path / "out", source)  # fmt: skip
    assert code == 0, err
    wav, rate = sf.read(tmp_path / "out" / "a_to_spk1.wav")
    assert rate == 16000 and len(wav) == int(0.3 * 16000) // 64 * 64 and abs(wav).max() > 0
    code, err = run(capsys, "convert", "--ckpt", ckpt, "--speaker", "spk1", "--out", tmp_path / "plain", source)
    assert code == 0, err
    assert not np.allclose(sf.read(tmp_path / "plain" / "a_to_spk1.wav")[0], wav, atol=1e-3)  # same seed, filtered
    with pytest.raises(SystemExit):
        run(
            capsys, "convert", "--ckpt", ckpt, "--speaker", "spk1", "--envelope", "1.5", "--out", tmp_path / "x", source
        )
    assert "--envelope: must be a number (strength) in [0, 1]" in capsys.readouterr().err
