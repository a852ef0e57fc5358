"""Dynamic time warping over a batch of distance matrices, with path-length normalisation (as in ZeroSpeech ABX)."""

from __future__ import annotations

import numpy as np


def dtw(
    distances: np.ndarray, n: np.ndarray | None = None, m: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Minimal-cost monotonic alignment of each pair of sequences, given their frame distances.

    Steps (1, 0), (0, 1) and (1, 1), each costing the distance of the cell it enters, from cell
    (0, 0) to (n - 1, m - 1). Ties go to the diagonal, then to the step along the second
    sequence, as in the libri-light ABX code (``eval/ABX_src/dtw.pyx``, which backtracks with the
    same rule), so the path length, and with it the normalised cost, is the same as there. The
    recursion runs over anti-diagonals, vectorised over the batch and the diagonal: N + M numpy
    steps, not N * M Python steps.

    Args:
        distances: (P, N, M) frame distances of P pairs, padded to N and M; padding does not change the result.
        n: (P,) frames of each first sequence, 1..N; None: all N.
        m: (P,) frames of each second sequence, 1..M; None: all M.
    Returns:
        cost (P,): summed distance along the best path; length (P,): cells on that path.
        ``cost / length`` is the mean distance along the path, the ABX and MCD figure.
    """
    d = np.asarray(distances, dtype=np.float64)
    if d.ndim != 3 or 0 in d.shape[1:]:
        raise ValueError(f"expected distances of shape (P, N, M) with N, M >= 1, got {d.shape}")
    P, N, M = d.shape
    n = np.full(P, N) if n is None else np.asarray(n, dtype=np.int64)
    m = np.full(P, M) if m is None else np.asarray(m, dtype=np.int64)
    if n.shape != (P,) or m.shape != (P,) or (n < 1).any() or (n > N).any() or (m < 1).any() or (m > M).any():
        raise ValueError(f"lengths must be (P,) = ({P},) in 1..{N} and 1..{M}")
    # Border row and column of +inf, with a virtual origin of cost 0 before cell (0, 0).
    cost = np.full((P, N + 1, M + 1), np.inf)
    cost[:, 0, 0] = 0.0
    length = np.zeros((P, N + 1, M + 1))
    for k in range(2, N + M + 1):  # padded cell (i, j), i + j = k, is frame pair (i - 1, j - 1)
        i = np.arange(max(1, k - M), min(N, k - 1) + 1)
        j = k - i
        c_diag, c_left, c_up = cost[:, i - 1, j - 1], cost[:, i, j - 1], cost[:, i - 1, j]
        diag = (c_diag <= c_left) & (c_diag <= c_up)
        left = ~diag & (c_left <= c_up)
        cost[:, i, j] = np.where(diag, c_diag, np.where(left, c_left, c_up)) + d[:, i - 1, j - 1]
        prev_len = np.where(diag, length[:, i - 1, j - 1], np.where(left, length[:, i, j - 1], length[:, i - 1, j]))
        length[:, i, j] = prev_len + 1
    rows = np.arange(P)
    return cost[rows, n, m], length[rows, n, m]


def dtw_mean(distances: np.ndarray, n: np.ndarray | None = None, m: np.ndarray | None = None) -> np.ndarray:
    """Mean distance along the best DTW path of each pair: ``cost / length`` of ``dtw``; (P,)."""
    cost, length = dtw(distances, n, m)
    return cost / length
