"""The generation front door: every backend, in one pass or in chunks of any size, gives the same samples."""

from __future__ import annotations

import warnings

import pytest
import torch

from audio_vqvae import generation
from audio_vqvae.generation import BACKENDS, fastgen, generate
from audio_vqvae.generation.samplers import GraphSampler, NativeSampler, TorchSampler, make_sampler
from audio_vqvae.models.wavenet import WaveNet

HOP = 8


def wavenet() -> WaveNet:
    torch.manual_seed(0)
    return WaveNet(
        n_classes=24, cond_in_channels=5, hop_length=HOP, residual_channels=6, gate_channels=10, skip_channels=7,
        kernel_size=3, layers_per_stack=4, n_stacks=2, cond_channels=8, n_cond_layers=2, n_speakers=3, speaker_dim=4,
    ).eval()  # fmt: skip


@pytest.mark.parametrize("backend", ["torch", "native", "graph"])
@pytest.mark.parametrize("temperature", [1.0, 0.0])
@pytest.mark.parametrize("cond_block", [4, generation.COND_BLOCK])
def test_every_backend_gives_the_reference_samples_in_one_pass_and_in_chunks(
    backend, temperature, cond_block, monkeypatch
):
    """Chunks of 1, 3 and 5 frames (caches and clock carried; kernel 3, so the clock is not a multiple of
    every ring's span at a chunk's start), across the conditioning's blocks or within one, give the
    one-pass samples, which are the PyTorch loop's."""
    if backend == "native" and not fastgen.available():
        pytest.skip(f"native generator unavailable: {fastgen.unavailable_reason()}")
    monkeypatch.setattr(generation, "COND_BLOCK", cond_block)
    net = wavenet()
    gen = torch.Generator().manual_seed(1)
    lengths = torch.tensor([5, 9, 2, 7])
    latents, speaker = torch.randn(4, 5, 9, generator=gen), torch.tensor([0, 2, 1, 1])

    def run(backend, chunk_frames=None):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # graph off a GPU warns that it runs eagerly
            return generate(net, latents, speaker, lengths, temperature, torch.Generator().manual_seed(7),
                            backend=backend, chunk_frames=chunk_frames)  # fmt: skip

    reference = run("torch")
    for b, n in enumerate(lengths.tolist()):
        assert (reference[b, n * HOP :] == net.n_classes // 2).all()
    if temperature:
        assert reference.unique().numel() > 5
    for chunk_frames in (None, 1, 3, 5):
        assert torch.equal(run(backend, chunk_frames), reference), chunk_frames


def test_the_choice_of_sample_loop_and_bad_arguments():
    net, cpu = wavenet(), torch.device("cpu")
    assert isinstance(make_sampler(net, "torch", 2, 4, 1.0, cpu, torch.float32), TorchSampler)
    with pytest.warns(UserWarning, match="CUDA graphs need a CUDA device"):
        assert isinstance(make_sampler(net, "graph", 2, 4, 1.0, cpu, torch.float32), GraphSampler)
    auto = make_sampler(net, "auto", 2, 4, 1.0, cpu, torch.float32)
    assert isinstance(auto, NativeSampler if fastgen.available() else TorchSampler)
    assert isinstance(make_sampler(net, "auto", 2, 4, 1.0, cpu, torch.float64), TorchSampler)  # float32 only
    assert BACKENDS == ("auto", "torch", "native", "graph")
    latents, speaker = torch.randn(2, 5, 3), torch.tensor([0, 1])
    with pytest.raises(ValueError, match="backend must be one of"):
        generate(net, latents, speaker, backend="static")
    with pytest.raises(ValueError, match="chunk_frames must be >= 1"):
        generate(net, latents, speaker, chunk_frames=0)
    with pytest.raises(ValueError, match=r"uniforms must have shape \(2, 24\)"):
        generate(net, latents, speaker, uniforms=torch.rand(2, 10))
