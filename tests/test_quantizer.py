"""Tests for the vector quantizer: straight-through, nearest codes, losses, EMA, k-means, revival, DDP."""

from __future__ import annotations

import dataclasses
import datetime
import inspect

import pytest
import torch
from torch import distributed as dist
from torch import multiprocessing as mp
from torch import nn

from audio_vqvae.config import QuantizerConfig
from audio_vqvae.quantizer import VectorQuantizer


def _randn(*shape: int, seed: int = 0, scale: float = 1.0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed)) * scale


def _set_codebook(vq: VectorQuantizer, codebook: torch.Tensor) -> None:
    """Overwrite the codebook, keeping the EMA statistics consistent (embed_sum / cluster_size)."""
    with torch.no_grad():
        vq.codebook.copy_(codebook)
        if vq.ema_decay is not None:
            vq.embed_sum.copy_(codebook * vq.cluster_size[:, None])


def _as_z(vectors: torch.Tensor, batch: int) -> torch.Tensor:
    """(B*N, D) vectors -> (B, D, N) encoder-style input."""
    return vectors.view(batch, -1, vectors.size(1)).transpose(1, 2).contiguous()


def _cdist(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Brute-force Euclidean distances (cdist's matmul shortcut would reuse the expansion under test)."""
    return torch.cdist(a.detach(), b.detach(), compute_mode="donot_use_mm_for_euclid_dist")


def test_constructor_takes_exactly_the_config_fields():
    params = inspect.signature(VectorQuantizer.__init__).parameters
    fields = {f.name: f.default for f in dataclasses.fields(QuantizerConfig)}
    assert {name: p.default for name, p in params.items() if name != "self"} == fields
    vq = VectorQuantizer(**dataclasses.asdict(QuantizerConfig()))
    assert vq.codebook.shape == (512, 64)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"codebook_size": 0},
        {"dim": 0},
        {"commitment_weight": -1.0},
        {"ema_decay": 0.0},
        {"ema_decay": 1.0},
        {"ema_epsilon": 0.0},
        {"kmeans_iters": 0},
        {"usage_decay": 1.0},
        {"dead_code_threshold": -0.1},
        {"revival_buffer_size": 0},
    ],
)
def test_bad_arguments_raise(kwargs):
    name = next(iter(kwargs))
    with pytest.raises(ValueError, match=name):
        VectorQuantizer(**{"codebook_size": 8, "dim": 4, **kwargs})


@pytest.mark.parametrize("bad_shape", [(2, 4), (2, 5, 7), (4, 7, 2, 1), (2, 4, 0)])
def test_bad_input_shape_raises_with_expected_shape(bad_shape):
    vq = VectorQuantizer(codebook_size=8, dim=4)
    with pytest.raises(ValueError, match=r"\(B, D=4, N\)"):
        vq(torch.zeros(bad_shape))
    with pytest.raises(ValueError, match=r"\(B, D=4, N\)"):
        vq.quantize(torch.zeros(bad_shape))


@pytest.mark.parametrize("ema_decay", [None, 0.9])
def test_straight_through_gradient_is_exactly_identity(ema_decay):
    vq = VectorQuantizer(codebook_size=16, dim=4, ema_decay=ema_decay)
    z = _randn(3, 4, 11).requires_grad_()
    w = _randn(3, 4, 11, seed=1)
    out = vq(z)
    (w * out.quantized).sum().backward()
    assert torch.equal(z.grad, w)
    # The forward value is the chosen code (the codebook may have moved since, so compare to codes).
    assert not torch.allclose(out.quantized, z)


def test_codes_are_the_nearest_codebook_entries():
    vq = VectorQuantizer(codebook_size=32, dim=6)
    _set_codebook(vq, _randn(32, 6, seed=2))
    z = _randn(3, 6, 40, seed=3)
    flat = z.transpose(1, 2).reshape(-1, 6)
    expected = _cdist(flat, vq.codebook).argmin(1).view(3, 40)
    assert torch.equal(vq.quantize(z), expected)
    assert torch.equal(vq(z).codes, expected)


def test_dequantize_of_quantize_matches_forward_in_eval():
    vq = VectorQuantizer(codebook_size=16, dim=5, ema_decay=0.9).eval()
    _set_codebook(vq, _randn(16, 5, seed=4))
    z = _randn(2, 5, 9, seed=5)
    codes = vq.quantize(z)
    decoded = vq.dequantize(codes)
    assert decoded.shape == (2, 5, 9)
    assert torch.allclose(decoded, vq(z).quantized, atol=1e-6)
    assert torch.equal(decoded, vq.codebook[codes].permute(0, 2, 1))


def test_loss_terms_match_hand_computation_and_route_gradients():
    vq = VectorQuantizer(codebook_size=16, dim=4, commitment_weight=0.3)
    _set_codebook(vq, _randn(16, 4, seed=6))
    z = _randn(2, 4, 10, seed=7).requires_grad_()
    out = vq(z)
    e = vq.codebook[out.codes].permute(0, 2, 1)  # (B, D, N)
    expected = ((z - e) ** 2).mean()
    assert torch.allclose(out.commitment_loss, expected)
    assert torch.allclose(out.codebook_loss, expected)
    assert torch.allclose(out.loss, out.codebook_loss + 0.3 * out.commitment_loss)

    def grad(loss, wrt):
        (g,) = torch.autograd.grad(loss, wrt, retain_graph=True, allow_unused=True)
        return g

    assert grad(out.commitment_loss, vq.codebook) is None
    assert grad(out.codebook_loss, z) is None
    assert grad(out.commitment_loss, z).abs().sum() > 0
    assert grad(out.codebook_loss, vq.codebook).abs().sum() > 0


def test_ema_mode_has_no_codebook_loss_and_no_parameters():
    vq = VectorQuantizer(codebook_size=8, dim=4, commitment_weight=0.25, ema_decay=0.9)
    assert not isinstance(vq.codebook, nn.Parameter)
    assert list(vq.parameters()) == []
    assert "codebook" in vq.state_dict()
    out = vq(_randn(2, 4, 8))
    assert out.codebook_loss == 0
    assert torch.allclose(out.loss, 0.25 * out.commitment_loss)


def test_ema_moves_assigned_codes_toward_their_inputs_only():
    vq = VectorQuantizer(codebook_size=8, dim=4, ema_decay=0.9)
    _set_codebook(vq, _randn(8, 4, seed=8))
    before = vq.codebook.clone()
    vectors = torch.tensor([2.0, -1.0, 0.5, 1.0]) + 0.1 * _randn(64, 4, seed=9)
    codes = vq(_as_z(vectors, 4)).codes.flatten()
    used = codes.unique()
    for k in range(8):
        if k in used:
            mean = vectors[codes == k].mean(0)
            assert (vq.codebook[k] - mean).norm() < (before[k] - mean).norm()
        else:  # only the Laplace smoothing touches an unused code: a relative change ~ epsilon
            assert torch.allclose(vq.codebook[k], before[k], rtol=1e-4, atol=1e-6)


def test_eval_mode_changes_no_buffer():
    vq = VectorQuantizer(
        codebook_size=8,
        dim=4,
        ema_decay=0.9,
        kmeans_init=True,
        revive_dead_codes=True,
        revival_buffer_size=16,
    ).eval()
    before = {name: b.clone() for name, b in vq.named_buffers()}
    for _ in range(3):
        vq(_randn(2, 4, 8, scale=5.0))
    assert not vq.initialized
    for name, b in vq.named_buffers():
        assert torch.equal(b, before[name]), name


def test_usage_tracking_is_training_only_and_marks_unused_codes_dead():
    vq = VectorQuantizer(codebook_size=8, dim=4, usage_decay=0.5, dead_code_threshold=0.03)
    _set_codebook(vq, torch.cat([_randn(4, 4, seed=10), _randn(4, 4, seed=11) + 100]))
    z = _randn(2, 4, 16, seed=12)
    assert vq(z).dead_codes == 0  # a fresh code gets a grace period
    outs = [vq(z) for _ in range(10)]
    assert outs[-1].dead_codes == 4
    assert (vq.usage[4:] < 0.03).all() and (vq.usage[:4].sum() > 0.03)


@pytest.mark.parametrize("ema_decay", [None, 0.9])
def test_kmeans_init_finds_cluster_means_once(ema_decay):
    torch.manual_seed(0)
    centers = torch.tensor([[4.0, 0, 0, 0], [-4, 0, 0, 0], [0, 4, 0, 0], [0, -4, 0, 0]])
    centers = torch.cat([centers, centers + torch.tensor([0, 0, 6.0, 6.0])])  # 8 clusters
    labels = torch.randperm(256) % 8
    vectors = centers[labels] + 0.05 * _randn(256, 4, seed=13)
    vq = VectorQuantizer(codebook_size=8, dim=4, ema_decay=ema_decay, kmeans_init=True)
    assert not vq.initialized
    vq(_as_z(vectors, 4))
    assert vq.initialized
    for k in range(8):
        assert (vq.codebook - vectors[labels == k].mean(0)).norm(dim=1).min() < 0.05
    if ema_decay is not None:
        assert torch.allclose(vq.embed_sum / vq.cluster_size[:, None], vq.codebook, rtol=1e-3)

    state = {k: v.clone() for k, v in vq.state_dict().items()}
    reloaded = VectorQuantizer(codebook_size=8, dim=4, kmeans_init=True, ema_decay=ema_decay)
    reloaded.load_state_dict(state)
    assert reloaded.initialized
    far = _as_z(torch.full_like(vectors, 50.0), 4)  # one far point: it is nearest to a single code
    for model in (vq, reloaded):
        model(far)  # a second k-means would move every code to the far data; EMA moves only the one used
        assert ((model.codebook - state["codebook"]).norm(dim=1) > 1).sum() <= (0 if ema_decay is None else 1)


def test_kmeans_init_with_fewer_vectors_than_codes():
    vq = VectorQuantizer(codebook_size=8, dim=4, kmeans_init=True)
    vectors = _randn(5, 4, seed=14)
    vq(_as_z(vectors, 1))
    assert _cdist(vq.codebook, vectors).min(1).values.max() < 1e-5


@pytest.mark.parametrize("ema_decay", [None, 0.9])
@pytest.mark.parametrize("revive", [True, False])
def test_dead_codes_are_revived_near_the_data(ema_decay, revive):
    vq = VectorQuantizer(
        codebook_size=16,
        dim=4,
        ema_decay=ema_decay,
        usage_decay=0.5,
        revive_dead_codes=revive,
        revival_buffer_size=128,
    )
    far = _randn(8, 4, seed=15) + 100
    _set_codebook(vq, torch.cat([_randn(8, 4, seed=16), far]))
    dead = []
    for step in range(14):
        out = vq(_randn(2, 4, 32, seed=100 + step))
        if ema_decay is None:
            out.loss.backward()  # revival's in-place codebook writes must not break autograd
        dead.append(int(out.dead_codes))
    if revive:
        assert max(dead) >= 8
        assert dead[-1] < max(dead)
        assert vq.codebook[8:].norm(dim=1).max() < 10  # replaced by data vectors, all near the origin
    else:
        assert dead[-1] >= 8
        assert torch.allclose(vq.codebook[8:], far, rtol=1e-3)


@pytest.mark.parametrize("ema_decay", [None, 0.9])
def test_one_revival_resets_the_code_state(ema_decay):
    vq = VectorQuantizer(
        codebook_size=16,
        dim=4,
        ema_decay=ema_decay,
        usage_decay=0.5,
        revive_dead_codes=True,
        revival_buffer_size=64,
    )
    _set_codebook(vq, torch.cat([_randn(8, 4, seed=20), _randn(8, 4, seed=21) + 100]))
    with torch.no_grad():
        vq.usage[8:] = 0.0  # codes 8.. are dead now; codes 0..7 are alive
    z = _randn(2, 4, 32, seed=22)
    out = vq(z)
    assert out.dead_codes == 8  # counted before revival
    data = z.transpose(1, 2).reshape(-1, 4)
    assert _cdist(vq.codebook[8:], data).min(1).values.max() < 1e-6  # each is a recent input
    assert torch.equal(vq.usage[8:], torch.full((8,), 0.03 * 32))  # a fresh grace period
    if ema_decay is not None:
        assert torch.equal(vq.cluster_size[8:], torch.ones(8))
        assert torch.allclose(vq.embed_sum[8:] / vq.cluster_size[8:, None], vq.codebook[8:])
    assert vq(z).dead_codes == 0


def test_perplexity_and_codes_used():
    vq = VectorQuantizer(codebook_size=8, dim=4).eval()
    codebook = _randn(8, 4, seed=17, scale=3.0)
    _set_codebook(vq, codebook)
    uniform = vq(_as_z(codebook.repeat(4, 1), 2))
    assert torch.allclose(uniform.perplexity, torch.tensor(8.0))
    assert uniform.codes_used == 8
    single = vq(_as_z(codebook[3].repeat(16, 1), 2))
    assert torch.allclose(single.perplexity, torch.tensor(1.0))
    assert single.codes_used == 1
    three = vq(_as_z(codebook[[0, 0, 0, 0, 0, 5, 5, 7]], 1))
    assert three.codes_used == 3
    assert 1 < three.perplexity < 3


def test_autocast_bfloat16_gives_float32_codes():
    vq = VectorQuantizer(codebook_size=32, dim=8)
    codebook = _randn(32, 8, seed=18)
    _set_codebook(vq, codebook)
    z = _randn(4, 8, 256, seed=19)
    expected = _cdist(z.transpose(1, 2), codebook).argmin(-1)  # (B, N), float32 brute force
    z_bf16 = z.bfloat16()
    expected_bf16 = _cdist(z_bf16.float().transpose(1, 2), codebook).argmin(-1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = vq(z)
        out_bf16 = vq(z_bf16)
        codes_bf16 = vq.quantize(z_bf16)
    assert torch.equal(out.codes, expected)
    assert out.quantized.dtype == torch.float32 and out.loss.dtype == torch.float32
    assert out_bf16.quantized.dtype == torch.bfloat16
    assert torch.equal(out_bf16.codes, expected_bf16) and torch.equal(codes_bf16, expected_bf16)


def _ddp_worker(rank: int, tmp: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo",
        init_method=f"file://{tmp}/rendezvous",
        rank=rank,
        world_size=2,
        timeout=datetime.timedelta(seconds=30),
    )
    torch.manual_seed(rank)  # different initial codebooks, batches and random draws on each rank
    vq = VectorQuantizer(
        codebook_size=16,
        dim=4,
        ema_decay=0.9,
        kmeans_init=True,
        usage_decay=0.5,
        revive_dead_codes=True,
        revival_buffer_size=32,
    )
    dead = []
    for step in range(10):
        shift = 0.0 if step < 4 else 20.0  # the data moves away: codes die and are revived
        dead.append(int(vq(torch.randn(2, 4, 24) + shift + rank).dead_codes))
    torch.save({"state": vq.state_dict(), "dead": dead}, f"{tmp}/rank{rank}.pt")
    dist.destroy_process_group()


@pytest.mark.skipif(not (dist.is_available() and dist.is_gloo_available()), reason="needs torch.distributed gloo")
def test_distributed_ranks_keep_identical_codebooks(tmp_path):
    mp.spawn(_ddp_worker, args=(str(tmp_path),), nprocs=2, join=True)
    rank0, rank1 = (torch.load(tmp_path / f"rank{r}.pt") for r in range(2))
    assert max(rank0["dead"]) > 0  # revival was exercised
    assert rank0["dead"] == rank1["dead"]
    assert rank0["state"].keys() == rank1["state"].keys()
    local = {"revival_buffer", "revival_count"}  # each rank remembers its own encoder outputs
    assert not torch.equal(rank0["state"]["revival_buffer"], rank1["state"]["revival_buffer"])
    for key, value in rank0["state"].items():
        if key not in local:
            assert torch.equal(value, rank1["state"][key]), key


@pytest.mark.parametrize("ema_decay", [None, 0.9])
def test_non_finite_batch_leaves_every_statistic_untouched(ema_decay):
    torch.manual_seed(0)
    vq = VectorQuantizer(
        codebook_size=8, dim=4, ema_decay=ema_decay, usage_decay=0.5, revive_dead_codes=True, revival_buffer_size=16
    ).train()
    vq(torch.randn(2, 4, 6))  # fill some state first
    before = {k: v.clone() for k, v in vq.state_dict().items()}
    z = torch.randn(2, 4, 6)
    z[1, 2, 3] = float("nan")
    vq(z)
    for k, v in vq.state_dict().items():
        if k != "revival_count":  # the ring position moves; the slots keep their vectors
            assert torch.equal(v, before[k]), k
    out = vq(torch.randn(2, 4, 6))  # and the next finite batch trains as usual
    assert torch.isfinite(vq.codebook).all() and torch.isfinite(out.quantized).all()
    assert not torch.equal(vq.usage, before["usage"])
