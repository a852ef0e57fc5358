"""Tests for audio_vqvae.inference.windows: waveforms given as streams of blocks are encoded as if given whole,
and only the samples the pending windows read are held."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from audio_vqvae import VQVAE
from audio_vqvae.config import preset
from audio_vqvae.data.audio import AudioStream
from audio_vqvae.inference import windows
from audio_vqvae.inference.windows import encode_chunked, plan_windows, ready_windows


@pytest.fixture(scope="module")
def model() -> VQVAE:
    torch.manual_seed(0)
    return VQVAE.from_config(preset("tiny")).eval()


def blocks_of(wav: torch.Tensor, seed: int) -> list[torch.Tensor]:
    """``wav`` cut at random places: blocks of 1 sample to 2 s."""
    rng = np.random.default_rng(seed)
    out, start = [], 0
    while start < wav.numel():
        size = int(rng.choice([1, 63, 64, 1000, 8000, 32000]))
        out.append(wav[start : start + size])
        start += size
    return out


@pytest.mark.parametrize("chunk, batch", [(1.0, 3.0), (0.37, 100.0), (3.3, 1.0)])
def test_streams_give_the_codes_of_whole_waveforms_exactly(model, chunk, batch):
    """Same windows, same passes: codes and latents equal bit for bit, whatever the blocks, with streams
    and whole waveforms mixed in one run."""
    torch.manual_seed(1)
    wavs = [torch.randn(n) * 0.1 for n in (16000 * 9 + 5, 700, 64, 16000 * 2 + 63, 3000)]
    whole = list(encode_chunked(model, wavs, chunk_seconds=chunk, batch_seconds=batch, latents="continuous"))
    mixed = [blocks_of(w, i) if i % 2 == 0 else w for i, w in enumerate(wavs)]
    streamed = list(encode_chunked(model, mixed, chunk_seconds=chunk, batch_seconds=batch, latents="continuous"))
    assert [e.index for e in streamed] == list(range(len(wavs)))
    for a, b, w in zip(whole, streamed, wavs):
        assert a.codes.numel() == b.codes.numel() == w.numel() // 64
        assert torch.equal(a.codes, b.codes) and torch.equal(a.latents, b.latents)


def test_ready_windows_are_those_of_the_whole_plan():
    """Every window fixed before the length is known is a window of plan_windows for any longer length."""
    hop, context, chunk = 64, (191, 300), 10
    for received in range(0, 64 * 60, 37):
        early = ready_windows(0, 0, received, hop, context, chunk)
        for n in (received, received + 1, received + 64 * 7, 10**6):
            assert early == plan_windows(0, n, hop, context, chunk)[: len(early)]


def test_a_long_stream_holds_only_what_the_pending_windows_read(model, monkeypatch):
    """A minute of audio in 0.1 s blocks: the buffer never holds more than a pass's samples plus a block
    and the context, and the passes hold at most the budget."""
    held, passes = [], []
    encode = windows.encode_windows

    def spy(model, wavs, batch, *args):
        held.append(max(buf.samples.numel() for buf in wavs.values()))
        passes.append(sum(w.end - w.start for w in batch))
        return encode(model, wavs, batch, *args)

    monkeypatch.setattr(windows, "encode_windows", spy)
    rate, block = 16000, 1600
    stream = (torch.randn(block) * 0.1 for _ in range(60 * rate // block))
    (out,) = encode_chunked(model, [stream], chunk_seconds=1.0, batch_seconds=4.0)
    assert out.codes.numel() == 60 * rate // 64 and len(passes) >= 15
    context = sum(-(-c // 64) * 64 for c in model.encoder.context)
    assert max(held) <= 4 * rate + block + context
    assert max(passes) <= 4 * rate


def test_an_audio_stream_is_encoded_like_the_loaded_file(model, tmp_path):
    """A 44.1 kHz stereo file read in blocks (AudioStream) gives the codes of its whole resampled waveform."""
    rng = np.random.default_rng(0)
    path = tmp_path / "s.wav"
    sf.write(str(path), (0.1 * rng.standard_normal((44100 * 3 + 11, 2))).astype(np.float32), 44100)
    stream = AudioStream(path, 16000, min_samples=64, block_frames=5000)
    whole = torch.cat(list(stream))
    (a,) = encode_chunked(model, [whole], chunk_seconds=1.0)
    (b,) = encode_chunked(model, [stream], chunk_seconds=1.0)
    assert torch.equal(a.codes, b.codes) and b.codes.numel() == stream.n_samples // 64


def test_a_stream_shorter_than_a_frame_is_refused(model):
    with pytest.raises(ValueError, match="shorter than one frame"):
        list(encode_chunked(model, [[torch.zeros(30), torch.zeros(20)]]))
