"""Encoder: exact frame counts for any stride list, receptive field, time-jitter."""

from __future__ import annotations

import pytest
import torch

from audio_vqvae.models.encoder import Encoder, encoder_receptive_field, hop_length, jitter


@pytest.mark.parametrize("strides", [(2, 2, 2, 2, 2, 2), (5, 4, 4, 4), (3,), (4, 2)])
def test_frame_count_is_t_floordiv_hop(strides):
    torch.manual_seed(0)
    enc = Encoder(out_channels=4, strides=strides, channels=6, n_residual_layers=1)
    hop = hop_length(strides)
    assert enc.hop_length == hop
    gen = torch.Generator().manual_seed(len(strides))
    for T in torch.randint(hop, 12 * hop, (8,), generator=gen).tolist() + [hop, 7 * hop, 7 * hop - 1]:
        z = enc(torch.randn(2, 1, T))
        assert z.shape == (2, 4, T // hop), (strides, T)


def test_receptive_field_is_exact():
    """A perturbation just outside a frame's receptive field leaves it unchanged; just inside, not."""
    torch.manual_seed(0)
    enc = Encoder(out_channels=3, strides=(2, 2, 2), channels=5, n_residual_layers=1).double()
    rf = encoder_receptive_field((2, 2, 2), (4, 4, 4), 1)
    assert enc.receptive_field == rf
    T, n = 512, 32  # frame n is centred well inside the signal
    wav = torch.randn(1, 1, T, dtype=torch.double)
    base = enc(wav)[0, :, n]
    perturbed = wav.repeat(T, 1, 1) + torch.eye(T, dtype=torch.double).unsqueeze(1)  # row t: +1 at sample t
    with torch.no_grad():
        changed = ~torch.isclose(enc(perturbed)[:, :, n], base, atol=1e-12, rtol=0).all(dim=1)  # (T,)
    span = changed.nonzero().flatten().tolist()
    assert span[-1] - span[0] + 1 == rf


def test_bad_input_shapes_and_configs():
    enc = Encoder(out_channels=4, strides=(2, 2), channels=4)
    with pytest.raises(ValueError, match=r"\(B, 1, T\)"):
        enc(torch.randn(2, 100))
    with pytest.raises(ValueError, match="at least hop_length"):
        enc(torch.randn(1, 1, 3))
    with pytest.raises(ValueError, match="kernel_sizes"):
        Encoder(strides=(4,), kernel_sizes=(2,))
    with pytest.raises(ValueError, match="strides"):
        Encoder(strides=())
    with pytest.raises(ValueError, match="n_residual_layers must be >= 0"):
        Encoder(strides=(2, 2), n_residual_layers=-1)


def test_jitter_moves_frames_to_neighbours_only():
    z = torch.arange(20.0).view(1, 1, 20).repeat(4, 3, 1)  # each frame holds its own index
    out = jitter(z, 0.5, torch.Generator().manual_seed(0))
    assert out.shape == z.shape
    offset = out[:, 0] - z[:, 0]
    assert set(offset.unique().tolist()) <= {-1.0, 0.0, 1.0}
    assert (offset != 0).float().mean() > 0.25  # roughly half the frames move
    assert torch.equal(out[:, 0], out[:, 2])  # all channels of a frame move together
    assert torch.equal(jitter(z, 0.0), z)
