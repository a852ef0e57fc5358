"""CUDA-graph generation (audio_vqvae.generation.graphgen): the fixed-shape step equals the reference loop.

On the CPU the graphable step runs eagerly and must give exactly ``generate(backend="torch")``'s
samples (same operations on the same numbers). Where CUDA exists, the graph replay must give exactly
the eager steps' samples on the same device (the same kernels, launched from a graph), and the
reference's up to the near-tie policy of test_fastgen.py: PyTorch's loop shrinks the batch as rows
finish, which may change the GEMM kernels and so the last bits of the logits.
"""

from __future__ import annotations

import warnings

import pytest
import torch

from audio_vqvae.generation import generate
from audio_vqvae.generation.graphgen import StaticSampler
from audio_vqvae.generation.samplers import TorchSampler, make_sampler
from audio_vqvae.models.wavenet import WaveNet

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
    ref = generate(net, latents, speaker, lengths, temperature=temperature, uniforms=uniforms, backend="torch")
    out = static_generate(net, latents, speaker, lengths, temperature, uniforms, steps_per_graph)
    assert out.shape == ref.shape
    assert torch.equal(out, ref)
    if temperature:
        assert len(set(out[0].tolist())) > 3, "a real sampled sequence, not a constant"


def sampler_for(net: WaveNet, latents, speaker, uniforms, temperature: float = 1.0, steps: int = 5) -> StaticSampler:
    """A sampler loaded with the whole utterance as one chunk."""
    sampler = StaticSampler(net, latents.size(0), latents.size(-1), temperature, steps, latents.device)
    sampler.load(net.init_state(latents, speaker).cond, uniforms)
    return sampler


def static_generate(net: WaveNet, latents, speaker, lengths, temperature, uniforms, steps: int):
    """The whole batch as one chunk of eager fixed-shape steps, reset past each length."""
    out = sampler_for(net, latents, speaker, uniforms if temperature else None, temperature, steps).run(False)
    past = torch.arange(out.size(1)) >= lengths[:, None] * HOP
    return out.masked_fill(past, net.n_classes // 2)


def test_rows_run_to_the_longest_and_are_reset_past_their_length():
    net = wavenet()
    latents, speaker, lengths, uniforms = inputs()
    raw = sampler_for(net, latents, speaker, uniforms).run(graphed=False)  # every row generated to N * hop
    assert raw.shape == (3, 6 * HOP)
    assert (raw[1, 3 * HOP :] != net.n_classes // 2).any(), "the finished row kept running"
    out = static_generate(net, latents, speaker, lengths, 1.0, uniforms, 5)
    for b, n in enumerate((lengths * HOP).tolist()):
        assert torch.equal(out[b, :n], raw[b, :n])
        assert (out[b, n:] == net.n_classes // 2).all()


@pytest.mark.parametrize("kernel_size", [2, 3])
def test_chunks_carry_the_caches_and_equal_one_pass(kernel_size):
    """load/run chunk by chunk (the last one padded to a whole graph) gives the one-pass samples."""
    net = wavenet(kernel_size)
    latents, speaker, _, uniforms = inputs(N=7)
    one_pass = sampler_for(net, latents, speaker, uniforms, steps=12).run(graphed=False).clone()
    cond = net.init_state(latents, speaker).cond  # (B, N, L, G)
    sampler = StaticSampler(net, 3, 3, 1.0, steps_per_graph=12)  # 3 frames = 24 samples = 2 graphs; the last 1.5
    pieces = []
    for first in range(0, 7, 3):
        sampler.load(cond[:, first : first + 3], uniforms[:, first * HOP : (first + 3) * HOP])
        pieces.append(sampler.run(graphed=False).clone())
    assert [p.size(1) for p in pieces] == [24, 24, 8]
    assert torch.equal(torch.cat(pieces, 1), one_pass)
    sampler.reset()  # and from the start again
    sampler.load(cond[:, :3], uniforms[:, : 3 * HOP])
    assert torch.equal(sampler.run(graphed=False), one_pass[:, : 3 * HOP])


def test_bad_chunks_are_rejected_clearly():
    net = wavenet()
    latents, speaker, _, uniforms = inputs()
    cond = net.init_state(latents, speaker).cond
    sampler = StaticSampler(net, 3, 4, 1.0)
    with pytest.raises(ValueError, match="uniforms of shape"):
        sampler.load(cond[:, :4], None)
    with pytest.raises(ValueError, match="a chunk of 6 frames exceeds"):
        sampler.load(cond, uniforms)


@pytest.mark.parametrize("chunk_frames", [2, 4])
def test_chunked_decoding_with_the_static_loop_equals_the_pytorch_loop(chunk_frames):
    from audio_vqvae.config import preset
    from audio_vqvae.inference.synthesis import generate_chunked
    from audio_vqvae.models.vqvae import VQVAE

    cfg = preset("tiny")
    cfg.decoder.n_speakers = 3
    torch.manual_seed(0)
    model = VQVAE.from_config(cfg).eval()
    codes = torch.randint(0, cfg.quantizer.codebook_size, (3, 7))
    speaker, lengths = torch.tensor([0, 2, 1]), torch.tensor([7, 2, 5])
    runs = {}
    for backend in ("torch", "graph"):  # graph off a GPU: the same fixed-shape steps, eagerly (a warning)
        gen = torch.Generator().manual_seed(3)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            chunks = generate_chunked(
                model, codes, speaker, lengths, chunk_frames=chunk_frames, generator=gen, backend=backend
            )
            runs[backend] = torch.cat([wav for _, wav in chunks], 1)
    assert runs["torch"].abs().sum() > 0
    assert torch.equal(runs["graph"], runs["torch"])


def test_failed_capture_falls_back_to_reference_with_one_warning(monkeypatch):
    net = wavenet()

    def broken(self):
        raise RuntimeError("operation not permitted when stream is capturing\nmore detail")

    monkeypatch.setattr(StaticSampler, "capture", broken)
    with pytest.warns(UserWarning, match="CUDA graph generation failed .operation not permitted") as record:
        sampler = make_sampler(net, "auto", 3, 6, 1.0, torch.device("cpu"), torch.float32, graphed=True)
    assert len(record) == 1 and "\n" not in str(record[0].message)
    assert isinstance(sampler, TorchSampler)  # before any sample: the whole run takes the reference loop


def test_graph_backend_on_cpu_warns_and_gives_the_reference_samples():
    net = wavenet()
    latents, speaker, lengths, uniforms = inputs()
    with pytest.warns(UserWarning, match="CUDA graphs need a CUDA device"):
        out = generate(net, latents, speaker, lengths, uniforms=uniforms, backend="graph")
    assert torch.equal(out, generate(net, latents, speaker, lengths, uniforms=uniforms, backend="torch"))


@cuda
@pytest.mark.parametrize("temperature", [1.0, 0.0])
def test_cuda_graph_replay_equals_eager_steps_and_reference(temperature):
    net = wavenet().cuda()
    latents, speaker, lengths, uniforms = inputs(device="cuda")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a capture failure must not pass silently through the fallback
        graphed = generate(net, latents, speaker, lengths, temperature=temperature, uniforms=uniforms)
    eager_out = sampler_for(net, latents, speaker, uniforms if temperature else None, temperature, 64).run(False)
    for b, n in enumerate((lengths * HOP).tolist()):
        assert torch.equal(graphed[b, :n], eager_out[b, :n])
    ref = generate(net, latents, speaker, lengths, temperature=temperature, uniforms=uniforms, backend="torch")
    agree = (graphed == ref).float().mean().item()
    assert agree > 0.95, f"graph replay and the PyTorch loop agree on only {agree:.1%} of samples"
