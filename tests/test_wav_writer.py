"""audio_vqvae.data.wav_writer: a WAV written in pieces is save_audio's file, and appears only when complete."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from audio_vqvae.data.audio import save_audio
from audio_vqvae.data.wav_writer import WavWriter
from audio_vqvae.errors import OutputExistsError


def test_pieces_give_the_bytes_of_save_audio(tmp_path):
    x = torch.randn(10_000) * 0.7  # some samples beyond [-1, 1]: clipped alike
    save_audio(tmp_path / "whole.wav", x, 16000)
    with WavWriter(tmp_path / "pieces.wav", 16000) as out:
        assert not (tmp_path / "pieces.wav").exists()  # only a temporary while writing
        for piece in torch.split(x, [1, 999, 0, 5000, 4000]):
            out.write(piece)
    assert out.n_samples == 10_000
    assert (tmp_path / "pieces.wav").read_bytes() == (tmp_path / "whole.wav").read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pieces.wav", "whole.wav"]


def test_an_error_leaves_nothing_and_an_existing_file_untouched(tmp_path):
    path = tmp_path / "out.wav"
    save_audio(path, np.zeros(800, dtype=np.float32), 16000)
    before = path.read_bytes()
    with pytest.raises(RuntimeError, match="generation failed"):
        with WavWriter(path, 16000, overwrite=True) as out:
            out.write(torch.ones(100) * 0.5)
            raise RuntimeError("generation failed")
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.wav"]
    with pytest.raises(ValueError, match="non-finite"):
        with WavWriter(tmp_path / "nan.wav", 16000) as out:
            out.write(torch.tensor([0.0, float("nan")]))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.wav"]


def test_refuses_to_overwrite_unless_asked(tmp_path):
    path = tmp_path / "out.wav"
    save_audio(path, np.zeros(800, dtype=np.float32), 16000)
    with pytest.raises(OutputExistsError, match="out.wav"):
        with WavWriter(path, 16000):
            pass
    with WavWriter(path, 16000, overwrite=True) as out:
        out.write(np.full(160, 0.25, dtype=np.float32))
    data, rate = sf.read(str(path), dtype="float32")
    assert rate == 16000 and data.shape == (160,) and np.all(data == 0.25)
