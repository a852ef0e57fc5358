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
from audio_vqvae.models.quantizer import TIE_TOLERANCE, VectorQuantizer

# The paper's quantizer (van den Oord et al. 2017): the tests below state every option they rely on
# against these plain settings; the config's defaults add EMA, k-means, revival and normalisation.
PLAIN = {
    "ema_decay": None,
    "kmeans_init": False,
    "revive_dead_codes": False,
    "batch_norm": False,
    "cosine_similarity": False,
}


def _vq(**kwargs) -> VectorQuantizer:
    return VectorQuantizer(**{**PLAIN, **kwargs})


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
    vq = _vq(codebook_size=8, dim=4)
    with pytest.raises(ValueError, match=r"\(B, D=4, N\)"):
        vq(torch.zeros(bad_shape))
    with pytest.raises(ValueError, match=r"\(B, D=4, N\)"):
        vq.quantize(torch.zeros(bad_shape))


@pytest.mark.parametrize("ema_decay", [None, 0.9])
def test_straight_through_gradient_is_exactly_identity(ema_decay):
    vq = _vq(codebook_size=16, dim=4, ema_decay=ema_decay)
    z = _randn(3, 4, 11).requires_grad_()
    w = _randn(3, 4, 11, seed=1)
    out = vq(z)
    (w * out.quantized).sum().backward()
    assert torch.equal(z.grad, w)
    # The forward value is the chosen code (the codebook may have moved since, so compare to codes).
    assert not torch.allclose(out.quantized, z)


def test_codes_are_the_nearest_codebook_entries():
    vq = _vq(codebook_size=32, dim=6)
    _set_codebook(vq, _randn(32, 6, seed=2))
    z = _randn(3, 6, 40, seed=3)
    flat = z.transpose(1, 2).reshape(-1, 6)
    expected = _cdist(flat, vq.codebook).argmin(1).view(3, 40)
    assert torch.equal(vq.quantize(z), expected)
    assert torch.equal(vq(z).codes, expected)


def test_dequantize_of_quantize_matches_forward_in_eval():
    vq = _vq(codebook_size=16, dim=5, ema_decay=0.9).eval()
    _set_codebook(vq, _randn(16, 5, seed=4))
    z = _randn(2, 5, 9, seed=5)
    codes = vq.quantize(z)
    decoded = vq.dequantize(codes)
    assert decoded.shape == (2, 5, 9)
    assert torch.allclose(decoded, vq(z).quantized, atol=1e-6)
    assert torch.equal(decoded, vq.codebook[codes].permute(0, 2, 1))


def test_loss_terms_match_hand_computation_and_route_gradients():
    vq = _vq(codebook_size=16, dim=4, commitment_weight=0.3)
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
    vq = _vq(codebook_size=8, dim=4, commitment_weight=0.25, ema_decay=0.9)
    assert not isinstance(vq.codebook, nn.Parameter)
    assert list(vq.parameters()) == []
    assert "codebook" in vq.state_dict()
    out = vq(_randn(2, 4, 8))
    assert out.codebook_loss == 0
    assert torch.allclose(out.loss, 0.25 * out.commitment_loss)


def test_ema_moves_assigned_codes_toward_their_inputs_only():
    vq = _vq(codebook_size=8, dim=4, ema_decay=0.9)
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
    vq = _vq(
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
    vq = _vq(codebook_size=8, dim=4, usage_decay=0.5, dead_code_threshold=0.03)
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
    vq = _vq(codebook_size=8, dim=4, ema_decay=ema_decay, kmeans_init=True)
    assert not vq.initialized
    vq(_as_z(vectors, 4))
    assert vq.initialized
    for k in range(8):
        assert (vq.codebook - vectors[labels == k].mean(0)).norm(dim=1).min() < 0.05
    if ema_decay is not None:
        assert torch.allclose(vq.embed_sum / vq.cluster_size[:, None], vq.codebook, rtol=1e-3)

    state = {k: v.clone() for k, v in vq.state_dict().items()}
    reloaded = _vq(codebook_size=8, dim=4, kmeans_init=True, ema_decay=ema_decay)
    reloaded.load_state_dict(state)
    assert reloaded.initialized
    far = _as_z(torch.full_like(vectors, 50.0), 4)  # one far point: it is nearest to a single code
    for model in (vq, reloaded):
        model(far)  # a second k-means would move every code to the far data; EMA moves only the one used
        assert ((model.codebook - state["codebook"]).norm(dim=1) > 1).sum() <= (0 if ema_decay is None else 1)


def test_kmeans_init_with_fewer_vectors_than_codes():
    vq = _vq(codebook_size=8, dim=4, kmeans_init=True)
    vectors = _randn(5, 4, seed=14)
    vq(_as_z(vectors, 1))
    assert _cdist(vq.codebook, vectors).min(1).values.max() < 1e-5


@pytest.mark.parametrize("ema_decay", [None, 0.9])
@pytest.mark.parametrize("revive", [True, False])
def test_dead_codes_are_revived_near_the_data(ema_decay, revive):
    vq = _vq(
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
    vq = _vq(
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
    assert torch.equal(vq.usage[8:], torch.ones(8))  # a fresh grace period: the uniform share
    if ema_decay is not None:
        assert torch.equal(vq.cluster_size[8:], torch.ones(8))
        assert torch.allclose(vq.embed_sum[8:] / vq.cluster_size[8:, None], vq.codebook[8:])
    assert vq(z).dead_codes == 0


def test_perplexity_and_codes_used():
    vq = _vq(codebook_size=8, dim=4).eval()
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
    vq = _vq(codebook_size=32, dim=8)
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


def _ddp_worker(rank: int, tmp: str, normalised: bool) -> None:
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo",
        init_method=f"file://{tmp}/rendezvous",
        rank=rank,
        world_size=2,
        timeout=datetime.timedelta(seconds=30),
    )
    torch.manual_seed(rank)  # different initial codebooks, batches and random draws on each rank
    vq = _vq(
        codebook_size=16,
        dim=4,
        ema_decay=0.9,
        kmeans_init=True,
        usage_decay=0.5,
        revive_dead_codes=True,
        revival_buffer_size=32,
        batch_norm=normalised,
        cosine_similarity=normalised,
    )
    dead = []
    for step in range(10):
        if step < 4:
            z = torch.randn(2, 4, 24) + rank
        elif normalised:  # two directions only, whatever the normalisation: most codes die
            z = torch.eye(4)[torch.randint(2, (2, 24))].transpose(1, 2) + 0.01 * torch.randn(2, 4, 24) + rank
        else:  # the data moves away: codes die and are revived
            z = torch.randn(2, 4, 24) + 20.0 + rank
        dead.append(int(vq(z).dead_codes))
    torch.save({"state": vq.state_dict(), "dead": dead}, f"{tmp}/rank{rank}.pt")
    dist.destroy_process_group()


@pytest.mark.skipif(not (dist.is_available() and dist.is_gloo_available()), reason="needs torch.distributed gloo")
@pytest.mark.parametrize("normalised", [False, True])
def test_distributed_ranks_keep_identical_codebooks(tmp_path, normalised):
    """Codebook, EMA sums, usage and (with batch norm) the running statistics agree on every rank."""
    mp.spawn(_ddp_worker, args=(str(tmp_path), normalised), nprocs=2, join=True)
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
    vq = _vq(
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


def test_usage_is_relative_to_the_uniform_share_whatever_the_batch_size():
    codebook = _randn(4, 4, seed=30, scale=5.0)
    for repeats in (1, 8):
        vq = _vq(codebook_size=4, dim=4, usage_decay=0.5, dead_code_threshold=0.1)
        _set_codebook(vq, codebook)
        z = _as_z(codebook[[0, 0, 1, 2]].repeat(repeats, 1), 1)  # code 0 twice its share, code 3 never
        for _ in range(20):
            out = vq(z)
        assert torch.allclose(vq.usage, torch.tensor([2.0, 1.0, 1.0, 0.0]), atol=1e-5)
        assert out.dead_codes == 1


def test_dead_codes_are_reported_even_when_revival_replaces_them_at_once():
    vq = _vq(codebook_size=8, dim=4, ema_decay=0.9, usage_decay=0.5, revive_dead_codes=True, revival_buffer_size=64)
    _set_codebook(vq, torch.cat([_randn(4, 4, seed=31), _randn(4, 4, seed=32) + 100]))
    died = 0
    for step in range(12):
        vq(_randn(2, 4, 16, seed=200 + step))
        if step == 5:
            died = vq.pop_dead_codes()
    assert died >= 4  # the four far codes died (and were revived) within the first window
    vq.pop_dead_codes()
    assert vq.pop_dead_codes() == 0  # reading resets the count


def test_batch_norm_standardises_and_eval_uses_running_statistics():
    torch.manual_seed(0)
    vq = _vq(codebook_size=16, dim=4, batch_norm=True, kmeans_init=True)
    shift, scale = torch.tensor([3.0, -2.0, 10.0, 0.5]), torch.tensor([0.01, 5.0, 1.0, 100.0])
    batches = [_randn(4, 4, 64, seed=300 + i) * scale[:, None] + shift[:, None] for i in range(200)]
    for z in batches:
        out = vq(z)
    assert torch.allclose(vq.running_mean, shift, atol=0.05 * scale.max())
    assert torch.allclose(vq.running_var.sqrt(), scale, rtol=0.25)
    # Training mode: codes depend on the batch only up to its own per-channel mean and scale.
    moved = _vq(codebook_size=16, dim=4, batch_norm=True)
    moved.load_state_dict(vq.state_dict())
    agree = (moved(batches[-1] * 3 + 7).codes == out.codes).float().mean()
    assert agree > 0.98  # float rounding may flip a near-tie
    vq.eval()
    assert torch.equal(vq(batches[-1]).codes, vq.quantize(batches[-1]))  # one frame at a time is the same
    one = vq.quantize(batches[-1][:1, :, :5])
    assert torch.equal(one, vq.quantize(batches[-1])[:1, :5])


def test_cosine_similarity_codes_ignore_scale_and_stay_on_the_unit_sphere():
    for ema_decay in (None, 0.9):
        vq = _vq(codebook_size=16, dim=4, cosine_similarity=True, ema_decay=ema_decay, kmeans_init=True)
        vq.revive_dead_codes = False
        z = _randn(2, 4, 64, seed=40)
        out = vq(z)
        assert torch.allclose(vq.embeddings().norm(dim=1), torch.ones(16), atol=1e-5)
        assert torch.equal(vq.quantize(z * 100), vq.quantize(z))  # scale of a frame does not matter
        assert torch.allclose(out.quantized.norm(dim=1), torch.ones(2, 64), atol=1e-5)
        # Straight-through: the gradient reaches z through the normalisation only.
        z = z.clone().requires_grad_(True)
        g = _randn(2, 4, 64, seed=41)
        (vq(z).quantized * g).sum().backward()
        zr = z.detach().clone().requires_grad_(True)
        (torch.nn.functional.normalize(zr, dim=1) * g).sum().backward()
        assert torch.allclose(z.grad, zr.grad, atol=1e-6)


def test_normalisation_spreads_outputs_that_a_fresh_encoder_points_one_way():
    """A fresh encoder's outputs share one large direction (its bias) and differ only slightly: plain
    k-means init then leaves most codes out within a few steps; batch norm + cosine lookup does not."""
    torch.manual_seed(0)
    bias = torch.tensor([5.0, 3.0, -4.0, 2.0, 1.0, 0.0, 2.0, -1.0])

    def batch(step):
        return bias[None, :, None] + 0.05 * _randn(4, 8, 128, seed=500 + step)

    used = {}
    for name, options in {"plain": {}, "normalised": {"batch_norm": True, "cosine_similarity": True}}.items():
        vq = _vq(codebook_size=64, dim=8, ema_decay=0.99, kmeans_init=True, **options)
        for step in range(5):
            drift = torch.zeros(8)
            drift[step % 8] = 0.5 * step  # the encoder's outputs move as it trains
            out = vq(batch(step) + drift[None, :, None])
        used[name] = int(out.codes_used)
    assert used["normalised"] >= 48
    assert used["plain"] < 8


@pytest.mark.parametrize("normalised", [False, True])
def test_margins_are_gaps_of_squared_distance_between_the_two_nearest_codes(normalised):
    torch.manual_seed(0)
    vq = VectorQuantizer(16, 4, kmeans_init=False, batch_norm=normalised, cosine_similarity=normalised).eval()
    if normalised:
        vq.running_mean.normal_()
        vq.running_var.uniform_(0.5, 2.0)
    z = torch.randn(2, 4, 7)
    x = (z - vq.running_mean.view(1, -1, 1)) * torch.rsqrt(vq.running_var.view(1, -1, 1) + 1e-5) if normalised else z
    if normalised:
        x = nn.functional.normalize(x, dim=1)
    d = (x.permute(0, 2, 1).unsqueeze(2) - vq.embeddings()).square().sum(-1)  # (B, N, K)
    two = d.topk(2, dim=-1, largest=False).values
    margins = vq.margins(z)
    assert margins.shape == (2, 7) and (margins >= 0).all()
    torch.testing.assert_close(margins, two[..., 1] - two[..., 0], atol=1e-5, rtol=1e-4)
    assert torch.equal(vq.quantize(z), d.argmin(-1))
    # A frame equidistant from its two nearest codes is a tie; a frame on a code is not.
    two_codes = VectorQuantizer(2, 2, kmeans_init=False, batch_norm=False, cosine_similarity=normalised).eval()
    two_codes.codebook.copy_(torch.tensor([[1.0, 0.0], [-1.0, 0.0]]))
    frames = torch.tensor([[[0.0, 1.0], [3.0, 0.0]]])  # (1, D=2, N=2): (0, 3) is a tie, (1, 0) is on code 0
    assert two_codes.margins(frames)[0].tolist() == [0.0, 4.0]  # equal squared distances; 0 and 4
    assert two_codes.is_near_tie(frames)[0].tolist() == [True, False]
    assert vq.is_near_tie(z, tolerance=0.0).sum() == 0 and TIE_TOLERANCE == 1e-6
