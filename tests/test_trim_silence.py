"""``audio.trim_silence``: librosa's cut points, every loud sample kept, digital silence cut to nothing."""

from __future__ import annotations

import librosa.effects
import numpy as np
import torch

from audio_vqvae.data.audio import trim_silence

SR = 16000


def _tone_in_noise(seed: int = 0) -> tuple[torch.Tensor, int, int]:
    """1.2 s: a -80 dB noise floor with a 440 Hz tone from 0.3 s to 0.8 s; (waveform, tone start, tone end)."""
    rng = np.random.default_rng(seed)
    x = 1e-4 * rng.standard_normal(int(1.2 * SR))
    a, b = int(0.3 * SR) + 37, int(0.8 * SR) + 91  # off the 10 ms grid
    x[a:b] += 0.5 * np.sin(2 * np.pi * 440 * np.arange(b - a) / SR)
    return torch.from_numpy(x.astype(np.float32)), a, b


def test_trim_keeps_the_loud_part_with_at_most_a_frame_of_margin():
    wav, a, b = _tone_in_noise()
    out = trim_silence(wav, SR)  # 25 ms frames every 10 ms, 40 dB
    start = out.storage_offset()  # a view of the input
    end = start + out.numel()
    assert torch.equal(out, wav[start:end])
    assert a - 200 <= start <= a and b <= end <= b + 160 + 200  # half a frame before, a hop and half a frame after
    _, (lib_start, lib_end) = librosa.effects.trim(wav.numpy(), top_db=40, frame_length=400, hop_length=160)
    assert (start, end) == (lib_start, lib_end)
    # more dB lets the noise floor in: -80 dB is above 100 dB below the tone
    assert trim_silence(wav, SR, top_db=100).numel() == wav.numel()


def test_trim_cuts_all_channels_alike_and_silence_to_nothing():
    wav, _, _ = _tone_in_noise()
    quiet = 1e-4 * torch.randn(wav.shape, generator=torch.Generator().manual_seed(1))
    both = trim_silence(torch.stack([quiet, wav]), SR)  # a frame is loud when either channel is
    assert torch.equal(both[1], trim_silence(wav, SR)) and both.shape[0] == 2
    assert trim_silence(torch.zeros(3, 500), SR).shape == (3, 0)
    assert trim_silence(torch.zeros(0), SR).shape == (0,)
