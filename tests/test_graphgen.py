"""CUDA-graph generation (audio_vqvae.graphgen): the fixed-shape step equals the reference loop.

On the CPU the graphable step runs eagerly and must give exactly ``WaveNet.generate(backend="torch")``'s
samples (same operations on the same numbers). Where CUDA exists, the graph replay must give exactly
the eager steps' samples on the same device (the same kernels, launched from a graph), and the
reference's up to the near-tie policy of test_fastgen.py: PyTorch's loop shrinks the batch as rows
finish, which may change the GEMM kernels and so the last bits of the logits.
"""

from __future__ import annotations

import warnings

import pytest
import torch

from audio_vqvae import graphgen
from audio_vqvae.graphgen import StaticSampler
from audio_vqvae.wavenet import WaveNet

HOP = 8
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def wavenet(kernel_size: int = 2) -> WaveNet:
    torch.manual_seed(0)
    return WaveNet(
        n_classes=20, cond_in_channels=5, hop_length=HOP, residual_channels=6, gate_channels=10, skip_channels=7,
        kernel_size=kernel_size, layers_per_stack=4, n_stacks=2, cond_channels=8, n_cond_layers=1, n_speakers=3,
        speaker_dim=4,
    ).eval()  # fmt: skip


def inputs(B: int = 3, N: int = 6, seed: int = 1, device: str = "cpu"):
    gen = torch.Generator().manual_seed(seed)
    latents = torch.randn(B, 5, N, generator=gen)
    lengths = torch.tensor([6, 3, 5, 1][:B])
    latents = latents * (torch.arange(N) < lengths[:, None, None])  # zero-padded, as generate expects
    speaker = torch.tensor([0, 2, 1, 1][:B])
    uniforms = torch.rand(B, N * HOP, generator=gen)
    return latents.to(device), speaker.to(device), lengths, uniforms.to(device)


@pytest.mark.parametrize("kernel_size", [2, 3])
@pytest.mark.parametrize("steps_per_graph", [1, 5, 64])
@pytest.mark.parametrize("temperature", [1.0, 0.0])
def test_static_steps_equal_reference(kernel_size, steps_per_graph, temperature):
    """Device-side ring positions, frame and uniform indices reproduce WaveNet.step exactly, any graph length."""
    net = wavenet(kernel_size)
    latents, speaker, lengths, uniforms = inputs()
    ref = net.generate(latents, speaker, lengths, temperature=temperature, uniforms=uniforms, backend="torch")
    out = graphgen.generate(net, latents, speaker, lengths, temperature, uniforms, None, steps_per_graph)
    assert out.shape == ref.shape
    assert torch.equal(out, ref)
    if temperature:
        assert len(set(out[0].tolist())) > 3, "a real sampled sequence, not a constant"


def test_rows_run_to_the_longest_and_are_reset_past_their_length():
    net = wavenet()
    latents, speaker, lengths, uniforms = inputs()
    sampler = StaticSampler(net, latents, speaker, uniforms, 1.0, steps_per_graph=5)
    raw = sampler.run(graphed=False)  # every row generated to N * hop
    assert raw.shape == (3, 6 * HOP)
    assert (raw[1, 3 * HOP :] != net.n_classes // 2).any(), "the finished row kept running"
    out = graphgen.generate(net, latents, speaker, lengths, 1.0, uniforms, None, 5)
    for b, n in enumerate((lengths * HOP).tolist()):
        assert torch.equal(out[b, :n], raw[b, :n])
        assert (out[b, n:] == net.n_classes // 2).all()


def test_run_twice_restarts_from_empty_caches():
    net = wavenet()
    latents, speaker, _, uniforms = inputs()
    sampler = StaticSampler(net, latents, speaker, uniforms, 1.0, steps_per_graph=4)
    first = sampler.run(graphed=False).clone()
    assert torch.equal(sampler.run(graphed=False), first)


def test_sampling_without_uniforms_is_rejected_clearly():
    net = wavenet()
    latents, speaker, _, _ = inputs()
    with pytest.raises(ValueError, match="uniforms of shape"):
        StaticSampler(net, latents, speaker, None, 1.0)


def test_failed_capture_falls_back_to_reference_with_one_warning(monkeypatch):
    net = wavenet()
    latents, speaker, lengths, uniforms = inputs()

    def broken(self, graphed):
        raise RuntimeError("operation not permitted when stream is capturing\nmore detail")

    monkeypatch.setattr(StaticSampler, "run", broken)
    with pytest.warns(UserWarning, match="CUDA graph generation failed .operation not permitted") as record:
        out = graphgen.generate(net, latents, speaker, lengths, 1.0, uniforms, None, graphed=True)
    assert len(record) == 1
    assert torch.equal(out, net.generate(latents, speaker, lengths, uniforms=uniforms, backend="torch"))


def test_graph_backend_on_cpu_warns_and_gives_the_reference_samples():
    net = wavenet()
    latents, speaker, lengths, uniforms = inputs()
    with pytest.warns(UserWarning, match="CUDA graphs need a CUDA device"):
        out = net.generate(latents, speaker, lengths, uniforms=uniforms, backend="graph")
    assert torch.equal(out, net.generate(latents, speaker, lengths, uniforms=uniforms, backend="torch"))


@cuda
@pytest.mark.parametrize("temperature", [1.0, 0.0])
def test_cuda_graph_replay_equals_eager_steps_and_reference(temperature):
    net = wavenet().cuda()
    latents, speaker, lengths, uniforms = inputs(device="cuda")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a capture failure must not pass silently through the fallback
        graphed = net.generate(latents, speaker, lengths, temperature=temperature, uniforms=uniforms)
    eager = StaticSampler(net, latents, speaker, uniforms if temperature else None, temperature, 64)
    eager_out = eager.run(graphed=False)
    for b, n in enumerate((lengths * HOP).tolist()):
        assert torch.equal(graphed[b, :n], eager_out[b, :n])
    ref = net.generate(latents, speaker, lengths, temperature=temperature, uniforms=uniforms, backend="torch")
    agree = (graphed == ref).float().mean().item()
    assert agree > 0.95, f"graph replay and the PyTorch loop agree on only {agree:.1%} of samples"
