"""Native generator (audio_vqvae.generation.fastgen): the reference's samples from the same uniforms, and its fallback.

Tolerance policy. The native loop adds the terms of each dot product in another order than PyTorch,
so its logits differ from the reference's by about 1e-7 here (1e-6 at paper size). The tests expect:
- every step's logits within LOGIT_TOL = 1e-4 of the teacher-forced reference on the same samples;
- the same classes as ``WaveNet.generate``. Where a row differs, its first difference must be a
  near tie that such a rounding difference can flip: u within CDF_TOL = 1e-5 of a CDF step (sampling),
  or the top two logits within CDF_TOL (greedy); later samples of that row are not compared (they
  follow a different history). With the fixed seeds below no row differs at all.
"""

from __future__ import annotations

import warnings

import pytest
import torch

from audio_vqvae.generation import fastgen, generate
from audio_vqvae.generation import native as native_loop
from audio_vqvae.models.wavenet import WaveNet, shift_right

LOGIT_TOL = 1e-4
CDF_TOL = 1e-5
HOP = 8


def wavenet(kernel_size: int = 2, wide: bool = False) -> WaveNet:
    """Odd channel counts (padding inside the native layout); ``wide`` spans several weight panels."""
    torch.manual_seed(0)
    channels = dict(residual_channels=40, gate_channels=74, skip_channels=36, n_classes=70) if wide else {}
    args = dict(n_classes=20, residual_channels=6, gate_channels=10, skip_channels=7) | channels
    return WaveNet(
        cond_in_channels=5, hop_length=HOP, kernel_size=kernel_size, layers_per_stack=4, n_stacks=2, cond_channels=8,
        n_cond_layers=1, n_speakers=3, speaker_dim=4, **args,
    ).eval()  # fmt: skip


def inputs(B: int = 3, N: int = 6, seed: int = 1):
    gen = torch.Generator().manual_seed(seed)
    latents = torch.randn(B, 5, N, generator=gen)
    speaker = torch.tensor([0, 2, 1, 1][:B])
    lengths = torch.tensor([6, 3, 5, 1][:B])
    uniforms = torch.rand(B, N * HOP, generator=gen)
    return latents, speaker, lengths, uniforms


@pytest.fixture
def native():
    if not fastgen.available():
        pytest.skip(f"native generator unavailable: {fastgen.unavailable_reason()}")


def assert_same_samples(net, latents, speaker, lengths, temperature, uniforms, classes, logits):
    """``classes`` (and its ``logits``) against the reference under the tolerance policy above."""
    ref = generate(net, latents, speaker, lengths, temperature=temperature, uniforms=uniforms)
    forced = torch.zeros_like(logits)  # (B, T, C): each row teacher-forced alone, cropped to its length
    with torch.no_grad():
        for b, frames in enumerate(lengths.tolist()):
            row = shift_right(classes[b : b + 1, : frames * HOP], net.n_classes // 2)
            forced[b, : frames * HOP] = net(row, latents[b : b + 1, :, :frames], speaker[b : b + 1])[0].T
    for b, n in enumerate((lengths * HOP).tolist()):
        assert (logits[b, :n] - forced[b, :n]).abs().max() <= LOGIT_TOL
        assert (classes[b, n:] == net.n_classes // 2).all(), "past its length a row holds the start class"
        differ = (classes[b] != ref[b]).nonzero()
        if len(differ):  # allowed only where a rounding difference of the logits can flip the sample
            t = int(differ[0])
            if temperature == 0:
                top = forced[b, t].topk(2).values
                assert top[0] - top[1] < CDF_TOL, f"row {b} differs at sample {t} with no near tie"
            else:
                cdf = torch.softmax(forced[b, t] / temperature, -1).cumsum(-1)
                assert (cdf - uniforms[b, t]).abs().min() < CDF_TOL, f"row {b} differs at sample {t} with no near tie"
    return ref


@pytest.mark.parametrize("kernel_size", [2, 3])
@pytest.mark.parametrize("temperature", [1.0, 0.0])
@pytest.mark.parametrize("wide", [False, True])
def test_same_samples_as_reference(native, kernel_size, temperature, wide):
    net = wavenet(kernel_size, wide)
    latents, speaker, lengths, uniforms = inputs()
    # one thread; two splitting each layer's channels (wide only: the narrow net has one gate panel);
    # two each running its own utterances
    for threads, teams in ((1, 1), (2, 1), (2, 2)):
        classes, logits = native_loop.generate_with_logits(
            net, latents, speaker, lengths=lengths, temperature=temperature, uniforms=uniforms, threads=threads,
            teams=teams,
        )  # fmt: skip
        ref = assert_same_samples(net, latents, speaker, lengths, temperature, uniforms, classes, logits)
        assert torch.equal(classes, ref)  # with these seeds: no near tie, so exactly the reference's samples
        assert torch.equal(native_loop.generate(net, latents, speaker, lengths, temperature, uniforms, threads=threads),
                           classes)  # fmt: skip


@pytest.mark.parametrize("kernel_size", [2, 3])
@pytest.mark.parametrize("temperature", [1.0, 0.0])
@pytest.mark.parametrize("threads", [1, 2])
def test_chunks_resume_the_generation_exactly(native, kernel_size, temperature, threads):
    """generate_chunk over chunks of 1, 2 or 4 frames (ring buffers, last classes and clock carried; with
    kernel 3 the clock is not a multiple of every ring's span at a chunk's start) gives the samples of one
    generate call, rows of different lengths leaving the batch on the way."""
    net = wavenet(kernel_size, wide=True)
    latents, speaker, _, uniforms = inputs(B=4)
    lengths = torch.tensor([6, 3, 5, 1])
    u = uniforms if temperature > 0 else None
    whole = native_loop.generate(net, latents, speaker, lengths, temperature, u, threads=threads)
    with torch.no_grad():
        cond = net.conditioning(latents, speaker, lengths).permute(0, 3, 1, 2)  # (B, N, L, G)
    for chunk in (1, 2, 4):
        state, pieces = fastgen.chunk_state(net, 4), []
        for lo in range(0, 6, chunk):
            hi = min(6, lo + chunk)
            todo = (lengths * HOP - lo * HOP).clamp(0, (hi - lo) * HOP)
            piece_u = None if u is None else u[:, lo * HOP : hi * HOP]
            pieces.append(
                fastgen.generate_chunk(net, cond[:, lo:hi].clone(), state, todo, temperature, piece_u, threads)
            )
        assert state.t == 6 * HOP
        assert torch.equal(torch.cat(pieces, 1), whole), chunk


def test_draws_uniforms_like_reference(native):
    net = wavenet()
    latents, speaker, _, _ = inputs()
    assert fastgen.can_run(net, latents)
    fast = native_loop.generate(net, latents, speaker, temperature=0.8, generator=torch.Generator().manual_seed(5))
    ref = generate(net, latents, speaker, temperature=0.8, generator=torch.Generator().manual_seed(5))
    assert torch.equal(fast, ref)


def test_empty_rows_and_batch_of_one(native):
    net = wavenet()
    latents, speaker, _, uniforms = inputs(B=2)
    lengths = torch.tensor([0, 2])  # a row with no samples at all stays the start class
    fast = native_loop.generate(net, latents, speaker, lengths, uniforms=uniforms, threads=2)
    assert torch.equal(fast, generate(net, latents, speaker, lengths, uniforms=uniforms))
    one = native_loop.generate(net, latents[:1], speaker[:1], uniforms=uniforms[:1], threads=2)
    assert torch.equal(one, generate(net, latents[:1], speaker[:1], uniforms=uniforms[:1]))


def test_bf16_weights_close_to_float32(native):
    net = wavenet(wide=True)
    latents, speaker, lengths, uniforms = inputs()
    classes, logits = native_loop.generate_with_logits(
        net, latents, speaker, lengths=lengths, uniforms=uniforms, weight_dtype=torch.bfloat16
    )
    forced = net(shift_right(classes, net.n_classes // 2), latents, speaker).transpose(1, 2).detach()
    n = int(lengths[0]) * HOP
    err = (logits[0, :n] - forced[0, :n]).abs().max()
    assert 0 < err < 1e-2  # bf16 keeps 8 bits of mantissa: weights rounded by up to 2^-9 relative


@pytest.fixture
def broken_compiler(monkeypatch, tmp_path):
    """A compiler that does not exist and an empty cache: the build fails."""
    monkeypatch.setenv("AUDIO_VQVAE_FASTGEN_CC", str(tmp_path / "no-such-cc"))
    monkeypatch.setenv("AUDIO_VQVAE_FASTGEN_CACHE", str(tmp_path / "cache"))
    fastgen._reset()
    yield
    monkeypatch.undo()
    fastgen._reset()


def test_fallback_to_reference_with_one_line_notice(broken_compiler):
    net = wavenet()
    latents, speaker, lengths, uniforms = inputs()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert not fastgen.available()
        fast = generate(net, latents, speaker, lengths, uniforms=uniforms, backend="native")
        generate(net, latents, speaker, lengths, uniforms=uniforms, backend="native")
    assert torch.equal(fast, generate(net, latents, speaker, lengths, uniforms=uniforms, backend="torch"))
    notices = [str(w.message) for w in caught if "fastgen" in str(w.message)]
    assert len(notices) == 1 and "\n" not in notices[0] and "unavailable" in notices[0], notices
    assert "no-such-cc" in fastgen.unavailable_reason()
    with pytest.raises(RuntimeError, match="unavailable"):
        native_loop.generate_with_logits(net, latents, speaker)
    with pytest.raises(RuntimeError, match="unavailable"):  # the backend itself does not fall back
        native_loop.generate(net, latents, speaker)


def test_unsupported_model_falls_back(native):
    net = wavenet().double()  # the native loop is float32 only
    latents, speaker, lengths, uniforms = inputs()
    latents = latents.double()
    assert not fastgen.can_run(net, latents)
    with pytest.warns(RuntimeWarning, match="not float32"):
        fast = generate(net, latents, speaker, lengths, uniforms=uniforms, backend="native")
    assert torch.equal(fast, generate(net, latents, speaker, lengths, uniforms=uniforms, backend="torch"))
    with pytest.raises(RuntimeError, match="not float32"):
        native_loop.generate(net, latents, speaker)


def test_logits_through_the_front_door_are_the_same_in_chunks(native):
    """generation.native goes through generation.generate: chunks of 2 frames give the one pass's classes
    and logits, rows in the caller's order (the sampler runs them longest first)."""
    net = wavenet(kernel_size=3, wide=True)
    latents, speaker, lengths, uniforms = inputs()
    whole = native_loop.generate_with_logits(net, latents, speaker, lengths, uniforms=uniforms, threads=2)
    chunks = native_loop.generate_with_logits(net, latents, speaker, lengths, uniforms=uniforms, threads=2,
                                              chunk_frames=2)  # fmt: skip
    assert torch.equal(whole[0], chunks[0]) and torch.equal(whole[1], chunks[1])
    assert (whole[1][1, int(lengths[1]) * HOP :] == 0).all() and whole[1][1, : int(lengths[1]) * HOP].abs().sum() > 0
