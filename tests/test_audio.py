"""Tests for audio_vqvae.data.audio: mu-law, loading and resampling, errors naming the file, atomic writes."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from audio_vqvae.data.audio import (
    AudioError,
    AudioStream,
    audio_info,
    is_silent,
    load_audio,
    mu_law_decode,
    mu_law_encode,
    resample,
    save_audio,
    trim_silence,
)


def sine(freq: float, sr: int, seconds: float, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(round(sr * seconds)) / sr
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def peak_frequency(wav: torch.Tensor, sr: int) -> float:
    spectrum = torch.fft.rfft(wav * torch.hann_window(wav.numel()))
    return float(spectrum.abs().argmax()) * sr / wav.numel()


# ---------------------------------------------------------------- mu-law


def test_mu_law_decode_then_encode_is_identity_for_all_classes():
    q = torch.arange(256)
    assert torch.equal(mu_law_encode(mu_law_decode(q)), q)


def test_mu_law_error_bounded_by_local_step():
    x = torch.linspace(-1, 1, 100_001)
    err = (mu_law_decode(mu_law_encode(x)) - x).abs()
    # one class spans dx/dq = 2 ln(1 + mu) (1 + mu |x|) / mu^2 at amplitude |x|, so the error is at most
    # half of that; within half a class the slope grows by at most (1 + mu) ** (1 / mu) = 1.022 (hence 1.03)
    mu = 255
    half_step = math.log1p(mu) * (1 + mu * x.abs()) / mu**2
    assert (err <= 1.03 * half_step + 1e-6).all()
    assert err[x.abs() < 1e-3].max() < 1.2e-4 < 0.01 < err[x.abs() > 0.9].max()


def test_mu_law_encode_is_monotonic_int64_in_range():
    x = torch.linspace(-1, 1, 100_001)  # finer than the smallest class (1.7e-4 wide, at 0)
    q = mu_law_encode(x)
    assert q.dtype == torch.int64
    assert int(q.min()) == 0 and int(q.max()) == 255
    assert (q.diff() >= 0).all()
    assert len(q.unique()) == 256


def test_mu_law_clamps_out_of_range_and_keeps_shape():
    x = torch.tensor([[-5.0, -1.0, 1.0, 7.5]])
    q = mu_law_encode(x)
    assert q.shape == x.shape
    assert q.tolist() == [[0, 0, 255, 255]]


def test_mu_law_zero_class():
    assert mu_law_encode(torch.zeros(3)).tolist() == [128, 128, 128]
    assert mu_law_encode(torch.tensor([-1e-6])).item() == 127
    # 0.0 lies halfway between classes 127 and 128, which decode symmetrically about 0
    x = mu_law_decode(torch.tensor([127, 128]))
    assert x[0] == -x[1] and 0 < x[1] < 1e-4
    assert mu_law_encode(torch.zeros(1), classes=16).item() == 8


# ---------------------------------------------------------------- loading


def test_load_audio_round_trip_16k(tmp_path):
    x = torch.from_numpy(sine(440, 16000, 0.25, amplitude=0.9))
    x[0], x[1] = 1.0, -1.0
    path = save_audio(tmp_path / "a.wav", x, 16000)
    assert sf.info(str(path)).subtype == "PCM_16"
    y = load_audio(path, 16000)
    assert y.dtype == torch.float32 and y.shape == x.shape
    assert (y - x).abs().max() <= 1 / 32768


def test_load_audio_48k_stereo_flac_is_mono_16k(tmp_path):
    n = 48000 * 3 // 10 + 7  # not a multiple of 3
    left = sine(1000, 48000, n / 48000)
    right = 0.5 * left
    path = tmp_path / "s.flac"
    sf.write(str(path), np.stack([left, right], axis=1), 48000, subtype="PCM_24")
    y = load_audio(path, 16000)
    assert y.dim() == 1 and y.dtype == torch.float32
    assert abs(y.numel() - round(n * 16000 / 48000)) <= 1
    assert peak_frequency(y, 16000) == pytest.approx(1000, abs=16000 / y.numel())
    # averaged channels: amplitude 0.75 * 0.5 in the middle (away from the filter's edges)
    assert float(y[200:-200].abs().max()) == pytest.approx(0.375, abs=0.01)


def test_load_audio_upsamples_8k(tmp_path):
    path = tmp_path / "n.wav"
    sf.write(str(path), sine(500, 8000, 0.2), 8000)
    y = load_audio(path, 16000)
    assert abs(y.numel() - 3200) <= 1
    assert peak_frequency(y, 16000) == pytest.approx(500, abs=16000 / y.numel())


@pytest.mark.parametrize("subtype", ["PCM_16", "PCM_24", "FLOAT", "DOUBLE"])
def test_load_audio_sample_formats_give_float32(tmp_path, subtype):
    x = sine(300, 16000, 0.1)
    path = tmp_path / f"{subtype}.wav"
    sf.write(str(path), x, 16000, subtype=subtype)
    y = load_audio(path, 16000)
    assert y.dtype == torch.float32
    assert np.abs(y.numpy() - x).max() <= 1 / 32768


def test_audio_info(tmp_path):
    path = tmp_path / "i.wav"
    sf.write(str(path), np.zeros((22050, 2), dtype=np.float32), 44100)
    info = audio_info(path)
    assert (info.sample_rate, info.n_samples, info.channels, info.duration) == (44100, 22050, 2, 0.5)
    assert info.path == path


def test_resample_identity_and_batch_shape():
    x = torch.randn(2, 3, 480)
    assert resample(x, 16000, 16000) is x
    assert resample(x, 48000, 16000).shape == (2, 3, 160)


def test_module_imports_loads_and_resamples_without_torchaudio(tmp_path):
    path = tmp_path / "a.wav"
    sf.write(str(path), sine(300, 16000, 0.1), 16000)
    sf.write(str(tmp_path / "b.wav"), sine(300, 48000, 0.1), 48000)
    code = (
        "import sys; sys.modules['torchaudio'] = None\n"
        "from audio_vqvae.data.audio import load_audio\n"
        f"assert load_audio({str(path)!r}, 16000).numel() == 1600\n"
        f"assert load_audio({str(tmp_path / 'b.wav')!r}, 16000).numel() == 1600  # resampled with soxr\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 0, result.stderr


# ---------------------------------------------------------------- reading in blocks


def test_stream_of_a_48k_stereo_file_joins_to_load_audio_for_any_block_size(tmp_path):
    """Blocks of 1000 frames (many) or 2**16 give the samples of load_audio, and as many as the header says."""
    n = 48000 * 2 + 7
    left = sine(440, 48000, n / 48000)
    path = tmp_path / "s.flac"
    sf.write(str(path), np.stack([left, 0.25 * left], axis=1), 48000, subtype="PCM_24")
    whole = load_audio(path, 16000)
    for block_frames in (1000, 2**16):
        stream = AudioStream(path, 16000, block_frames=block_frames)
        blocks = list(stream)
        assert len(blocks) >= n // block_frames // 2  # soxr gives nothing for some blocks (its filter's delay)
        assert all(b.dtype == torch.float32 and b.dim() == 1 for b in blocks)
        joined = torch.cat(blocks)
        assert joined.numel() == stream.n_samples == whole.numel() == round(n / 3)
        assert torch.allclose(joined, whole, atol=1e-6, rtol=0)


def test_stream_at_the_model_rate_is_the_file_itself(tmp_path):
    x = sine(300, 16000, 0.5)
    path = tmp_path / "a.wav"
    sf.write(str(path), x, 16000, subtype="FLOAT")
    blocks = list(AudioStream(path, 16000, block_frames=999))
    assert [b.numel() for b in blocks] == [999] * 8 + [8000 - 8 * 999]
    assert torch.equal(torch.cat(blocks), torch.from_numpy(x))


def test_stream_gives_no_block_with_nan_and_counts_them_all(tmp_path):
    x = sine(300, 16000, 1.0)
    x[12000], x[15000] = np.nan, np.inf  # both after the first blocks
    path = tmp_path / "late.wav"
    sf.write(str(path), x, 16000, subtype="FLOAT")
    given = []
    with pytest.raises(AudioError, match=r"2 of 16000 samples are not finite") as info:
        for block in AudioStream(path, 16000, block_frames=4000):
            given.append(block)
    assert str(info.value).startswith(f"{path}: ")
    assert sum(b.numel() for b in given) == 12000 and all(torch.isfinite(b).all() for b in given)


def test_stream_too_short_and_missing_files_name_the_file(tmp_path):
    path = tmp_path / "short.wav"
    sf.write(str(path), sine(300, 48000, 0.01), 48000)  # 480 samples -> 160 at 16 kHz
    with pytest.raises(AudioError, match=r"too short: 160 samples, need at least 161"):
        list(AudioStream(path, 16000, min_samples=161, block_frames=100))
    with pytest.raises(AudioError, match="not found") as info:
        AudioStream(tmp_path / "nope.wav")  # the header is read at once
    assert str(info.value).startswith(f"{tmp_path / 'nope.wav'}: ")


# ---------------------------------------------------------------- errors name the file


def _missing(tmp_path: Path) -> Path:
    return tmp_path / "nope.wav"


def _text_as_wav(tmp_path: Path) -> Path:
    path = tmp_path / "text.wav"
    path.write_text("this is not audio\n" * 20)
    return path


def _empty(tmp_path: Path) -> Path:
    path = tmp_path / "empty.wav"
    sf.write(str(path), np.zeros(0, dtype=np.float32), 16000)
    return path


def _nan(tmp_path: Path) -> Path:
    path = tmp_path / "nan.wav"
    x = sine(300, 16000, 0.1)
    x[10], x[20], x[30] = np.nan, np.inf, -np.inf
    sf.write(str(path), x, 16000, subtype="FLOAT")
    return path


def _folder(tmp_path: Path) -> Path:
    path = tmp_path / "dir.wav"
    path.mkdir()
    return path


@pytest.mark.parametrize(
    "make, words",
    [
        (_missing, "not found"),
        (_text_as_wav, "cannot read"),
        (_empty, "empty"),
        (_nan, "3 of 1600 samples are not finite"),
        (_folder, "not a file"),
    ],
)
def test_load_audio_errors_name_the_file(tmp_path, make, words):
    path = make(tmp_path)
    with pytest.raises(AudioError) as info:
        load_audio(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ")
    assert words in message
    assert "\n" not in message


def test_load_audio_too_short_after_resampling(tmp_path):
    path = tmp_path / "short.wav"
    sf.write(str(path), sine(300, 48000, 0.01), 48000)  # 480 samples -> 160 at 16 kHz
    assert load_audio(path, 16000, min_samples=160).numel() == 160
    with pytest.raises(AudioError, match=r"too short: 160 samples, need at least 161") as info:
        load_audio(path, 16000, min_samples=161)
    assert str(info.value).startswith(f"{path}: ")


def test_audio_info_unreadable_names_the_file(tmp_path):
    path = _text_as_wav(tmp_path)
    with pytest.raises(AudioError, match="cannot read") as info:
        audio_info(path)
    assert str(info.value).startswith(f"{path}: ") and "\n" not in str(info.value)


# ---------------------------------------------------------------- saving


def test_save_audio_refuses_to_overwrite(tmp_path):
    path = tmp_path / "out.wav"
    save_audio(path, sine(300, 16000, 0.1), 16000)
    before = path.read_bytes()
    with pytest.raises(FileExistsError, match="out.wav"):
        save_audio(path, np.zeros(800, dtype=np.float32), 16000)
    assert path.read_bytes() == before
    save_audio(path, np.zeros(800, dtype=np.float32), 16000, overwrite=True)
    assert sf.info(str(path)).frames == 800
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.wav"]


def test_save_audio_shapes_clipping_and_parents(tmp_path):
    x = torch.tensor([0.0, 2.0, -3.0, 0.5]).reshape(1, 1, 4)
    path = save_audio(tmp_path / "a" / "b" / "c.wav", x, 16000)
    assert path.parent.is_dir()
    y = load_audio(path, 16000)
    assert y.tolist() == pytest.approx([0.0, 32767 / 32768, -1.0, 0.5])
    save_audio(tmp_path / "d.wav", x[0], 16000)
    with pytest.raises(ValueError, match="shape"):
        save_audio(tmp_path / "e.wav", torch.zeros(2, 100), 16000)
    assert not (tmp_path / "e.wav").exists()


def test_save_audio_failed_write_leaves_nothing(tmp_path, monkeypatch):
    def broken_write(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(sf, "write", broken_write)
    with pytest.raises(RuntimeError, match="disk full"):
        save_audio(tmp_path / "x.wav", np.zeros(100, dtype=np.float32), 16000)
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- silence


def test_is_silent():
    assert is_silent(torch.zeros(1600))
    assert is_silent(torch.from_numpy(sine(300, 16000, 0.1, amplitude=10 ** (-80 / 20))))
    assert not is_silent(torch.from_numpy(sine(300, 16000, 0.1, amplitude=0.1)))
    assert not is_silent(torch.from_numpy(sine(300, 16000, 0.1, amplitude=10 ** (-50 / 20))))


def test_trim_silence_keeps_the_tone():
    tone = torch.from_numpy(sine(300, 16000, 0.5))
    wav = torch.cat([torch.zeros(8000), tone, torch.zeros(12000)])
    out = trim_silence(wav, 16000)
    assert 8000 <= out.numel() <= 8000 + 2 * 400
    # only zeros were cut, so the tone is all there, with at most one frame (400 samples) of margin a side
    assert float(out.abs().sum()) == pytest.approx(float(tone.abs().sum()))
    assert trim_silence(torch.zeros(2, 1000), 16000).shape == (2, 0)
    assert trim_silence(tone, 16000).shape == tone.shape
