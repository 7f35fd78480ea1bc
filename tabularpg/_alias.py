r"""Walker's alias method for many categorical rows at once.

Drawing from row ``r`` of an :class:`AliasTable` costs O(1): a uniform column ``k`` and a
coin; keep ``k`` if the coin is below ``q[r, k]``, else take ``alias[r, k]``. The tables are
built for all rows together in O(R K log K) vectorized operations (:func:`alias_table`).

References
----------
A. J. Walker (1977), "An efficient method for generating discrete random variables with
general distributions", ACM TOMS 3(3). M. D. Vose (1991), "A linear algorithm for
generating random numbers with a given distribution", IEEE TSE 17(9).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._validation import ArgumentTypeError, ShapeError, ValidationError, as_float_array

__all__ = ["AliasTable", "alias_table"]


@dataclass(frozen=True)
class AliasTable:
    """Walker alias tables for ``R`` categorical rows over ``K`` columns.

    ``q`` (R, K) acceptance probabilities, ``alias`` (R, K) alternative columns, and
    ``values`` (R, K) the outcome of each column (e.g. successor state indices).
    """

    q: np.ndarray
    alias: np.ndarray
    values: np.ndarray

    @property
    def width(self) -> int:
        return self.q.shape[1]

    def draw(self, rows: np.ndarray, u: np.ndarray) -> np.ndarray:
        """Column index drawn for each ``rows[n]`` from uniforms ``u[n]`` in [0, 1)."""
        K = self.q.shape[1]
        x = u * K
        k = np.minimum(x.astype(np.intp), K - 1)
        flat = rows * K + k
        return np.where(x - k < self.q.ravel()[flat], k, self.alias.ravel()[flat])


def _search_rows(cum: np.ndarray, rows: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Per-row ``searchsorted(cum[rows[n]], x[n], side="right")``, vectorized.

    ``cum`` (R, K) is non-decreasing along each row; returns the first column ``c`` with
    ``cum[rows[n], c] > x[n]`` (``K`` if none), by a bisection over all queries at once
    (``ceil(log2(K + 1))`` vectorized steps; exact comparisons, no row offsets).
    """
    K = cum.shape[1]
    flat = cum.ravel()
    base = rows * K
    lo = np.zeros(x.shape, dtype=np.intp)
    hi = np.full(x.shape, K, dtype=np.intp)
    for _ in range(int(np.ceil(np.log2(K + 1)))):
        mid = (lo + hi) >> 1
        right = (lo < hi) & (flat[base + np.minimum(mid, K - 1)] <= x)
        lo = np.where(right, mid + 1, lo)
        hi = np.where(right | (lo >= hi), hi, mid)
    return lo


def alias_table(probs: np.ndarray, values: np.ndarray | None = None) -> AliasTable:
    r"""Walker's alias tables for many categorical rows, built in O(R K log K).

    Parameters
    ----------
    probs : ndarray of shape (R, K)
        Non-negative rows, each summing to 1 within ``1e-8`` (refused otherwise: a row that
        does not sum to one would be drawn from a different distribution).
    values : int ndarray of shape (R, K), optional
        Outcome of each column (defaults to the column index).

    Returns
    -------
    AliasTable
        Drawing column ``k ~ U{0..K-1}`` and ``u ~ U[0, 1)`` and returning ``k`` if
        ``u < q[r, k]`` else ``alias[r, k]`` gives column ``c`` with probability
        :math:`\frac1K\big(q_c + \sum_{b:\,\mathrm{alias}_b = c} (1 - q_b)\big) = p_c`.

    Notes
    -----
    Vose's (1991) greedy pairing, computed without a loop over pairs. With
    :math:`\tilde q = K p`, the "small" cells (:math:`\tilde q < 1`) lay their deficits
    :math:`1 - \tilde q` end to end on a stick :math:`[0, D)`, the "large" cells
    (:math:`\tilde q > 1`) their excesses :math:`\tilde q - 1` on :math:`[0, E)`,
    :math:`D = E`. A small cell's alias is the large cell whose excess interval holds the
    start of its deficit interval. A large cell :math:`j` whose excess ends at
    :math:`E_j` strictly inside a small's deficit interval :math:`[D_{i-1}, D_i)` has
    given more than its excess: it keeps :math:`q_j = 1 - (D_i - E_j)` and its alias is
    the next large cell (whose interval starts at :math:`E_j`). This is exactly the table
    the sequential greedy algorithm builds when it serves smalls in column order and
    hands an overdrawn large cell to the next large one. Cells with
    :math:`\tilde q = 1` and the last large cell of a row keep ``q = 1`` (the last one
    absorbs rounding). Both searches are per-row bisections.

    References
    ----------
    A. J. Walker (1977), "An efficient method for generating discrete random variables
    with general distributions", ACM TOMS 3(3). M. D. Vose (1991), "A linear algorithm
    for generating random numbers with a given distribution", IEEE TSE 17(9).

    Examples
    --------
    >>> t = alias_table(np.array([[0.5, 0.25, 0.25, 0.0]]))
    >>> K = t.width
    >>> p = t.q[0] / K
    >>> np.add.at(p, t.alias[0], (1 - t.q[0]) / K)
    >>> p.tolist()
    [0.5, 0.25, 0.25, 0.0]
    """
    probs = as_float_array(probs, "probs", ndim=2)
    if probs.shape[1] == 0:
        raise ShapeError(f"`probs` must have at least one column; got shape {probs.shape}")
    if np.any(probs < 0):
        r, k = np.argwhere(probs < 0)[0]
        raise ValidationError(f"`probs` entry (row={r}, column={k}) is {probs[r, k]:.3g}; expected >= 0")
    sums = probs.sum(axis=1)
    bad = np.flatnonzero(np.abs(sums - 1.0) > 1e-8)
    if bad.size:
        raise ValidationError(f"`probs` row {bad[0]} sums to {sums[bad[0]]:.12g}; expected 1 within 1e-08")
    if values is not None:
        values = np.asarray(values)
        if not np.issubdtype(values.dtype, np.integer):
            raise ArgumentTypeError(f"`values` must be an integer array; got dtype {values.dtype}")
        if values.shape != probs.shape:
            raise ShapeError(f"`values` must have the shape of `probs` {probs.shape}; got {values.shape}")
    return _build(probs, values)


def _build(probs: np.ndarray, values: np.ndarray | None = None) -> AliasTable:
    """:func:`alias_table` without argument checks (rows sum to one up to rounding)."""
    probs = np.asarray(probs, dtype=np.float64)
    R, K = probs.shape
    qt = probs * K
    small = qt < 1.0
    large = qt > 1.0
    d = np.where(small, 1.0 - qt, 0.0)
    d_end = np.cumsum(d, axis=1)                      # D_i at small cells
    d_start = np.zeros_like(d_end)
    d_start[:, 1:] = d_end[:, :-1]                    # D_{i-1} (same floats as d_end)
    e_end = np.cumsum(np.where(large, qt - 1.0, 0.0), axis=1)  # E_j at large cells

    q = np.ones((R, K))
    alias = np.tile(np.arange(K, dtype=np.intp), (R, 1))
    has_large = large.any(axis=1)
    last_large = K - 1 - np.argmax(large[:, ::-1], axis=1)
    # small cells: alias = large cell whose excess interval holds the deficit's start
    rs, cs = np.nonzero(small & has_large[:, None])
    donor = _search_rows(e_end, rs, d_start[rs, cs])  # e_end rises only at large cells
    q[rs, cs] = qt[rs, cs]
    alias[rs, cs] = np.minimum(donor, last_large[rs])
    # large cells except the last: overdrawn by the small that straddles E_j
    rl, cl = np.nonzero(large & (np.arange(K)[None, :] != last_large[:, None]))
    e_j = e_end[rl, cl]
    i = np.minimum(_search_rows(d_end, rl, e_j), K - 1)  # first small with D_i > E_j
    straddle = (d_end[rl, i] > e_j) & (d_start[rl, i] < e_j)
    over = np.where(straddle, d_end[rl, i] - e_j, 0.0)
    q[rl, cl] = np.clip(1.0 - over, 0.0, 1.0)
    alias[rl, cl] = np.minimum(_search_rows(e_end, rl, e_j), last_large[rl])  # next large cell
    if values is None:
        values = np.tile(np.arange(K, dtype=np.intp), (R, 1))
    return AliasTable(q=q, alias=alias, values=np.asarray(values))
