"""WaveNet decoder: causality, exact receptive field, cached generation equal to the forward pass."""

from __future__ import annotations

import pytest
import torch

from audio_vqvae.generation import fastgen, generate
from audio_vqvae.models.wavenet import WaveNet, inject_noise, naive_generate, receptive_field, shift_right

HOP = 8


def tiny_wavenet(**kw) -> WaveNet:
    torch.manual_seed(0)
    args = dict(
        n_classes=32,
        cond_in_channels=4,
        hop_length=HOP,
        residual_channels=6,
        gate_channels=10,
        skip_channels=7,
        layers_per_stack=3,
        n_stacks=2,
        cond_channels=5,
        n_cond_layers=1,
        n_speakers=3,
        speaker_dim=4,
    )
    args.update(kw)
    return WaveNet(**args).eval()


def test_receptive_field_formula():
    assert receptive_field(2, 10, 3) == 3070  # the paper-size decoder: 192 ms at 16 kHz
    assert receptive_field(3, 2, 1) == 7
    assert tiny_wavenet().receptive_field == 1 + 2 * 7


@pytest.mark.parametrize("kernel_size", [2, 3])
def test_causal_and_receptive_field_exact(kernel_size):
    net = tiny_wavenet(kernel_size=kernel_size).double()
    B, N = 2, 12
    T = N * HOP
    gen = torch.Generator().manual_seed(1)
    inputs = torch.randint(0, 32, (B, T), generator=gen)
    latents = torch.randn(B, 4, N, generator=gen, dtype=torch.double)
    speaker = torch.tensor([0, 2])
    logits = net(inputs, latents, speaker)
    t = 50
    changed = inputs.clone()
    changed[:, t:] = (changed[:, t:] + 1) % 32
    after = net(changed, latents, speaker)
    assert torch.equal(after[..., :t], logits[..., :t]), "logits before t depend on inputs at t or later"
    assert not torch.allclose(after[..., t], logits[..., t])
    # Output t sees inputs t - rf + 1 .. t and nothing earlier.
    rf = net.receptive_field
    t = 80
    for k, should_change in ((t - rf, False), (t - rf + 1, True)):
        changed = inputs.clone()
        changed[:, k] = (changed[:, k] + 5) % 32
        differs = not torch.allclose(net(changed, latents, speaker)[..., t], logits[..., t], atol=1e-12, rtol=0)
        assert differs == should_change, (k, rf)


def test_injected_noise_only_in_training_stays_causal_and_in_range():
    gen = torch.Generator().manual_seed(3)
    classes = torch.randint(0, 32, (4, 4000), generator=gen)
    noisy = inject_noise(classes, 2.0, 32, torch.Generator().manual_seed(0))
    assert noisy.dtype == torch.int64 and int(noisy.min()) >= 0 and int(noisy.max()) <= 31
    inner = (classes > 8) & (classes < 23)  # far from the clipped ends: the rounded noise has std ~2
    assert 1.7 < float((noisy - classes)[inner].float().std()) < 2.3
    assert torch.equal(inject_noise(classes, 0.0, 32), classes)

    B, N = 2, 12
    inputs = torch.randint(0, 32, (B, N * HOP), generator=gen)
    latents, speaker = torch.randn(B, 4, N, generator=gen), torch.tensor([0, 2])
    net = tiny_wavenet(input_noise=3.0)
    clean = tiny_wavenet()(inputs, latents, speaker)
    assert torch.equal(net(inputs, latents, speaker), clean), "eval mode (and generation) sees no noise"
    net.train()
    torch.manual_seed(0)
    noisy_logits = net(inputs, latents, speaker)
    assert not torch.allclose(noisy_logits, clean)
    t = 50
    changed = inputs.clone()
    changed[:, t:] = (changed[:, t:] + 1) % 32
    torch.manual_seed(0)  # the same noise draws
    assert torch.equal(net(changed, latents, speaker)[..., :t], noisy_logits[..., :t]), "noise broke causality"
    with pytest.raises(ValueError, match="input_noise"):
        tiny_wavenet(input_noise=-1.0)
    with pytest.raises(ValueError, match="input_noise"):
        tiny_wavenet(input_noise=float("nan"))


def test_incremental_steps_reproduce_forward_for_batch_of_different_lengths():
    """Cached steps fed the teacher-forced inputs give the forward logits (batch of 3, 3 speakers, 3 lengths)."""
    net = tiny_wavenet()
    lengths = [9, 5, 7]  # frames
    N = max(lengths)
    gen = torch.Generator().manual_seed(2)
    latents = torch.randn(3, 4, N, generator=gen)
    for b, n in enumerate(lengths):
        latents[b, :, n:] = 0
    speaker = torch.tensor([2, 0, 1])
    targets = torch.randint(0, 32, (3, N * HOP), generator=gen)
    inputs = shift_right(targets, 16)
    with torch.no_grad():
        order = sorted(range(3), key=lambda b: -lengths[b])  # longest first, as generate() runs them
        state = net.init_state(latents[order], speaker[order])
        step_logits = torch.zeros(3, 32, N * HOP)
        for t in range(N * HOP):
            active = sum(lengths[b] * HOP > t for b in order)
            out = net.step(state, inputs[order][:active, t])
            step_logits[torch.tensor(order[:active]), :, t] = out
        for b, n in enumerate(lengths):
            full = net(inputs[b : b + 1, : n * HOP], latents[b : b + 1, :, :n], speaker[b : b + 1])[0]
            err = (step_logits[b, :, : n * HOP] - full).abs().max().item()
            assert err <= 1e-4, (b, err)


BACKENDS = ["torch", pytest.param("native", marks=pytest.mark.skipif(not fastgen.available(), reason="no C compiler"))]


@pytest.mark.parametrize("backend", BACKENDS)
def test_greedy_generation_is_argmax_of_forward_on_its_own_output(backend):
    net = tiny_wavenet()
    lengths = torch.tensor([6, 3, 5])
    gen = torch.Generator().manual_seed(3)
    latents = torch.randn(3, 4, 6, generator=gen)
    speaker = torch.tensor([1, 2, 0])
    classes = generate(net, latents, speaker, lengths, temperature=0, backend=backend)
    assert classes.shape == (3, 6 * HOP)
    for b in range(3):
        n = int(lengths[b]) * HOP
        assert (classes[b, n:] == 16).all()
        with torch.no_grad():
            logits = net(
                shift_right(classes[b : b + 1, :n], 16), latents[b : b + 1, :, : lengths[b]], speaker[b : b + 1]
            )
        top2 = logits[0].topk(2, dim=0).values
        clear = (top2[0] - top2[1]) > 1e-3  # ignore near-ties, where float rounding may pick either
        assert clear.float().mean() > 0.9
        assert torch.equal(logits[0].argmax(0)[clear], classes[b, :n][clear])


@pytest.mark.parametrize("backend", BACKENDS)
def test_each_row_of_a_padded_batch_gets_the_samples_of_the_row_alone(backend):
    """Whatever lies past a row's length (here noise, not zeros), its samples are those of the row
    generated alone: every conditioning conv's input is zeroed past the length (two conv layers, so a
    bias of the first would otherwise reach the last frame through the second)."""
    net = tiny_wavenet(n_cond_layers=2)
    gen = torch.Generator().manual_seed(6)
    lengths = torch.tensor([4, 7, 2])
    latents = torch.randn(3, 4, 7, generator=gen)  # noise past each length
    speaker, uniforms = torch.tensor([1, 0, 2]), torch.rand(3, 7 * HOP, generator=gen)
    batch = generate(net, latents, speaker, lengths, uniforms=uniforms, backend=backend)
    for b, n in enumerate(lengths.tolist()):
        alone = generate(net, latents[b : b + 1, :, :n], speaker[b : b + 1], uniforms=uniforms[b : b + 1, : n * HOP])
        assert torch.equal(batch[b, : n * HOP], alone[0]), b
        assert (batch[b, n * HOP :] == 16).all() and alone.unique().numel() > 3
    with torch.no_grad():  # the conditioning itself, in the last frame of the shortest row
        whole, short = net.conditioning(latents, speaker, lengths), net.conditioning(latents[2:, :, :2], speaker[2:])
        assert torch.allclose(whole[2, ..., :2], short[0], atol=1e-6)
        assert not torch.allclose(net.conditioning(latents, speaker)[2, ..., 1], short[0, ..., 1], atol=1e-3)


@pytest.mark.parametrize("backend", BACKENDS)
def test_cached_generation_matches_naive_generator_when_sampling(backend):
    net = tiny_wavenet()
    gen = torch.Generator().manual_seed(4)
    latents = torch.randn(2, 4, 5, generator=gen)
    speaker = torch.tensor([0, 1])
    T = 5 * HOP
    uniforms = torch.rand(2, T, generator=gen)
    fast = generate(net, latents, speaker, temperature=1.0, uniforms=uniforms, backend=backend)
    slow = naive_generate(net, latents, speaker, T, temperature=1.0, uniforms=uniforms)
    assert torch.equal(fast, slow)
    assert len(fast.unique()) > 3  # really sampling, not a constant


def test_temperature_and_generator_control_sampling():
    net = tiny_wavenet()
    latents = torch.randn(1, 4, 4)
    speaker = torch.tensor([0])
    a = generate(net, latents, speaker, generator=torch.Generator().manual_seed(0))
    b = generate(net, latents, speaker, generator=torch.Generator().manual_seed(0))
    c = generate(net, latents, speaker, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and not torch.equal(a, c)
    g1 = generate(net, latents, speaker, temperature=0)
    g2 = generate(net, latents, speaker, temperature=0, generator=torch.Generator().manual_seed(5))
    assert torch.equal(g1, g2)


def test_speaker_changes_output_and_bad_speaker_is_rejected():
    net = tiny_wavenet()
    latents = torch.randn(1, 4, 4)
    inputs = torch.randint(0, 32, (1, 4 * HOP))
    a = net(inputs, latents, torch.tensor([0]))
    b = net(inputs, latents, torch.tensor([1]))
    assert (a - b).abs().max() > 1e-3
    with pytest.raises(ValueError, match="speaker ids"):
        generate(net, latents, torch.tensor([3]))
    with pytest.raises(ValueError, match="frames x hop"):
        net(inputs[:, :-1], latents, torch.tensor([0]))


@pytest.mark.parametrize(
    "size", ["n_stacks", "layers_per_stack", "residual_channels", "skip_channels", "cond_channels", "speaker_dim"]
)
def test_empty_sizes_are_refused_when_built_not_deep_inside_a_conv(size):
    with pytest.raises(ValueError, match=f"WaveNet {size} must be >= 1, got 0"):
        tiny_wavenet(**{size: 0})
