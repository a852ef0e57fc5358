"""The native loop's weight precision: float32 where the weights fit the threads' L2 caches, bf16 where not."""

from __future__ import annotations

import pytest
import torch

from audio_vqvae.errors import ConfigError
from audio_vqvae.generation import fastgen, generate
from audio_vqvae.generation import native as native_loop
from audio_vqvae.generation.fastgen.weights import ENV, auto_weight_dtype, l2_cache_bytes, streamed_bytes
from audio_vqvae.generation.samplers import NativeSampler, make_sampler
from audio_vqvae.models.wavenet import WaveNet


def wavenet() -> WaveNet:
    torch.manual_seed(0)
    return WaveNet(
        n_classes=20, cond_in_channels=5, hop_length=4, residual_channels=6, gate_channels=10, skip_channels=7,
        layers_per_stack=3, n_stacks=2, cond_channels=8, n_cond_layers=1, n_speakers=2, speaker_dim=4,
    ).eval()  # fmt: skip


def write_cache(root, index: int, level: int, kind: str, size: str) -> None:
    d = root / f"index{index}"
    d.mkdir()
    (d / "level").write_text(f"{level}\n")
    (d / "type").write_text(f"{kind}\n")
    (d / "size").write_text(f"{size}\n")


def test_l2_size_is_read_from_sysfs_skipping_other_levels(tmp_path):
    write_cache(tmp_path, 0, 1, "Data", "48K")
    write_cache(tmp_path, 1, 1, "Instruction", "32K")
    write_cache(tmp_path, 2, 2, "Unified", "2048K")
    write_cache(tmp_path, 3, 3, "Unified", "480M")
    assert l2_cache_bytes(tmp_path) == 2048 * 1024


def test_streamed_bytes_count_every_weight_a_sample_step_reads():
    net = wavenet()
    R, G, S, C, k, L = 6, 10, 7, 20, 2, 6
    per_layer = k * R * G + (G // 2) * (R + S)  # dilated conv, 1x1 output conv (residual and skip)
    expected = L * per_layer + S * S + S * C  # and the two head convs
    assert streamed_bytes(net) == 4 * expected
    assert streamed_bytes(net, torch.bfloat16) == 2 * expected


def test_auto_picks_bf16_only_where_float32_weights_overflow_the_threads_l2(monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    net = wavenet()
    size = streamed_bytes(net)
    assert auto_weight_dtype(net, threads=1, l2_bytes=size) == torch.float32  # fits one core's L2
    assert auto_weight_dtype(net, threads=1, l2_bytes=size - 1) == torch.bfloat16
    assert auto_weight_dtype(net, threads=2, l2_bytes=size // 2 + 1) == torch.float32  # the threads share it
    assert auto_weight_dtype(net, threads=2, l2_bytes=0) == torch.float32  # unknown cache: exact
    monkeypatch.setenv(ENV, "float32")
    assert auto_weight_dtype(net, threads=1, l2_bytes=1) == torch.float32
    monkeypatch.setenv(ENV, "bfloat16")
    assert auto_weight_dtype(net, threads=1, l2_bytes=1 << 40) == torch.bfloat16
    monkeypatch.setenv(ENV, "half")
    with pytest.raises(ConfigError, match=ENV):
        auto_weight_dtype(net, threads=1)


def test_front_door_generates_with_the_chosen_weights(monkeypatch):
    """backend auto uses the precision auto_weight_dtype picks: bf16 gives the bf16 loop's samples."""
    if not fastgen.available():
        pytest.skip(f"native generator unavailable: {fastgen.unavailable_reason()}")
    net = wavenet()
    gen = torch.Generator().manual_seed(3)
    latents, speaker = torch.randn(2, 5, 40, generator=gen), torch.tensor([0, 1])
    uniforms = torch.rand(2, 160, generator=gen, dtype=torch.float64)
    monkeypatch.setenv(ENV, "bfloat16")
    auto = generate(net, latents, speaker, uniforms=uniforms)
    bf16 = native_loop.generate(net, latents, speaker, uniforms=uniforms, weight_dtype=torch.bfloat16)
    assert torch.equal(auto, bf16)
    sampler = make_sampler(net, "auto", 2, 40, 1.0, torch.device("cpu"), torch.float32)
    assert isinstance(sampler, NativeSampler) and sampler.weight_dtype == torch.bfloat16
    monkeypatch.setenv(ENV, "float32")
    exact = generate(net, latents, speaker, uniforms=uniforms)
    assert torch.equal(exact, generate(net, latents, speaker, uniforms=uniforms, backend="torch"))
