"""The uniform numbers of sampling do not depend on the pieces they are taken in."""

from __future__ import annotations

import torch

from audio_vqvae.generation.uniforms import BLOCK, UniformStream, draw_uniforms


def test_pieces_of_a_stream_join_to_one_draw_across_block_boundaries():
    whole = draw_uniforms(3, 2 * BLOCK + 50, generator=torch.Generator().manual_seed(7))
    stream = UniformStream(3, generator=torch.Generator().manual_seed(7))
    sizes = [1, BLOCK - 2, 0, 3, BLOCK, 48]  # ends inside, at and across block boundaries; an empty take
    pieces = [stream.take(n) for n in sizes]
    assert [p.shape for p in pieces] == [(3, n) for n in sizes]
    assert torch.equal(torch.cat(pieces, 1), whole)
    assert 0 <= whole.min() and whole.max() < 1 and whole.std() > 0.25  # uniform-looking, not constant
    assert not torch.equal(whole, draw_uniforms(3, 2 * BLOCK + 50, generator=torch.Generator().manual_seed(8)))
