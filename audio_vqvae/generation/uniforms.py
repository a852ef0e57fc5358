"""The uniform numbers that sampling draws from, the same whatever the pieces they are asked for in.

Every generator samples by inverse CDF with one uniform number per sample (``wavenet.sample``). They
are drawn from the generator in blocks of ``BLOCK`` samples per row, so that one pass over an
utterance and a chunk-by-chunk pass over it take the same numbers from the same seed: decoding a
batch gives the same samples whichever path (one call or chunks of any size) and backend runs it.
"""

from __future__ import annotations

import torch
from torch import Tensor

BLOCK = 4096  # samples per row drawn at a time


class UniformStream:
    """Uniform numbers in [0, 1) for a batch of ``batch`` rows, handed out ``(batch, n)`` at a time.

    ``take(a)`` then ``take(b)`` gives the columns that one ``take(a + b)`` would: the numbers are
    drawn from ``generator`` in (batch, BLOCK) blocks, and what a call leaves of a block goes to the next.
    Rows are in the caller's order (a generator that sorts its rows indexes them).
    """

    def __init__(self, batch: int, device: torch.device | str = "cpu", generator: torch.Generator | None = None):
        self.batch, self.device, self.generator = batch, device, generator
        self._left = torch.empty(batch, 0, device=device)

    def take(self, n: int) -> Tensor:
        """The next ``n`` numbers of every row: (batch, n) float32."""
        parts, need = [], n
        while need > 0:
            if self._left.size(1) == 0:
                self._left = torch.rand(self.batch, BLOCK, device=self.device, generator=self.generator)
            k = min(need, self._left.size(1))
            parts.append(self._left[:, :k])
            self._left = self._left[:, k:]
            need -= k
        if not parts:
            return torch.empty(self.batch, 0, device=self.device)
        return parts[0].clone() if len(parts) == 1 else torch.cat(parts, 1)


def draw_uniforms(
    batch: int, n: int, device: torch.device | str = "cpu", generator: torch.Generator | None = None
) -> Tensor:
    """(batch, n) uniform numbers: the first ``n`` of a fresh ``UniformStream``'s every row."""
    return UniformStream(batch, device, generator).take(n)
