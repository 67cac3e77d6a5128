"""Streaming moments, ranks and p-value helpers shared by the analysis functions.

Moments over samples are merged with Chan, Golub and LeVeque's pairwise update (1979):
each sample block gives, per row, its count ``n``, mean and centred sum of squares
``m2`` (and, for cross-products, the centred products with a few query rows); two
states merge exactly, in any order, without the cancellation of raw sums of squares.
The states of the blocks are stacked along a new axis with :func:`dask.array.blockwise`
and merged by a :func:`dask.array.reduction` tree: one streaming pass, memory bounded by
a few blocks' states.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import dask.array as da
import numpy as np
from scipy import special, stats

__all__ = [
    "bh_adjust",
    "block_moments",
    "merge_moments",
    "moment_state",
    "rank_rows",
    "reduce_states",
    "tie_term",
]


def moment_state(x: np.ndarray, query: np.ndarray | None = None) -> np.ndarray:
    """Per-row ``[n, mean, m2, M...]`` of ``x`` (rows x samples): (rows, 3 + q).

    ``M[:, i]`` is the centred cross-product of every row with row ``query[i]``.

    Examples
    --------
    >>> moment_state(np.array([[1.0, 3.0], [2.0, 2.0]]), np.array([0])).tolist()
    [[2.0, 2.0, 2.0, 2.0], [2.0, 2.0, 0.0, 0.0]]
    """
    q = 0 if query is None else len(query)
    out = np.zeros((x.shape[0], 3 + q))
    n = x.shape[1]
    if n == 0:
        return out
    mean = x.mean(axis=1)
    xc = x - mean[:, None]
    out[:, 0] = n
    out[:, 1] = mean
    out[:, 2] = np.einsum("ij,ij->i", xc, xc)
    if q:
        out[:, 3:] = xc @ xc[query].T
    return out


def merge_moments(a: np.ndarray, b: np.ndarray, query: np.ndarray | None = None) -> np.ndarray:
    """Merge two states of :func:`moment_state` (Chan et al.): the state of both blocks.

    Examples
    --------
    >>> x = np.array([[1.0, 4.0, 2.0, 8.0]])
    >>> both = merge_moments(moment_state(x[:, :1]), moment_state(x[:, 1:]))
    >>> np.allclose(both, moment_state(x))
    True
    """
    na, nb = a[:, 0], b[:, 0]
    n = na + nb
    with np.errstate(invalid="ignore", divide="ignore"):
        w = np.where(n > 0, na * nb / n, 0.0)
        frac = np.where(n > 0, nb / n, 0.0)
    delta = b[:, 1] - a[:, 1]
    out = np.empty_like(a)
    out[:, 0] = n
    out[:, 1] = np.where(na == 0, b[:, 1], np.where(nb == 0, a[:, 1], a[:, 1] + delta * frac))
    out[:, 2] = a[:, 2] + b[:, 2] + delta * delta * w
    if a.shape[1] > 3:
        assert query is not None
        out[:, 3:] = a[:, 3:] + b[:, 3:] + (w * delta)[:, None] * delta[query][None, :]
    return out


def _merge_groups(a: np.ndarray, b: np.ndarray, width: int, query: Any) -> np.ndarray:
    """Merge states holding several groups side by side, ``width`` columns each."""
    parts = [
        merge_moments(a[:, i : i + width], b[:, i : i + width], query)
        for i in range(0, a.shape[1], width)
    ]
    return np.concatenate(parts, axis=1)


def _identity(x: np.ndarray, axis: Any = None, keepdims: bool = True) -> np.ndarray:
    return x


def _combine(x: np.ndarray, axis: Any, keepdims: bool, width: int, query: Any) -> np.ndarray:
    acc = x[:, 0]
    for i in range(1, x.shape[1]):
        acc = _merge_groups(acc, x[:, i], width, query)
    return acc[:, None] if keepdims else acc


def reduce_states(
    data: da.Array,
    block_state: Callable[..., np.ndarray],
    n_cols: int,
    *args: Any,
    width: int | None = None,
    query: np.ndarray | None = None,
    n_rows: int | None = None,
) -> da.Array:
    """Stream ``block_state`` over the sample blocks of ``data`` and merge the states.

    ``block_state(block, *args)`` returns a (rows, ``n_cols``) state (groups of
    ``width`` columns, each a :func:`moment_state`); the result is the lazy
    (rows, ``n_cols``) state of all samples.  ``data`` must have one chunk along rows
    (axis 0); ``args`` may be Dask arrays of shape (k, n_samples) chunked like ``data``.
    """
    width = n_cols if width is None else width
    rows = data.shape[0] if n_rows is None else n_rows
    arg_index: list[Any] = []
    for a in args:
        if isinstance(a, da.Array):
            arg_index += [a, "kj"]
        else:
            arg_index += [a, None]

    def call(block: np.ndarray, *extra: Any) -> np.ndarray:
        return block_state(block, *extra)[:, None, :]

    stacked = da.blockwise(
        call,
        "ijc",
        data,
        "ij",
        *arg_index,
        new_axes={"c": n_cols},
        adjust_chunks={"i": rows, "j": 1},
        dtype=np.float64,
        concatenate=True,
        meta=np.empty((0, 0, 0)),
    )
    combine = _make_combine(width, query)
    return da.reduction(
        stacked,
        _identity,
        combine,
        axis=1,
        combine=combine,
        keepdims=False,
        dtype=np.float64,
        concatenate=True,
        meta=np.empty((0, 0)),
    )


def _make_combine(width: int, query: Any) -> Callable[..., np.ndarray]:
    def combine(x: np.ndarray, axis: Any = None, keepdims: bool = False) -> np.ndarray:
        return _combine(x, axis, keepdims, width, query)

    return combine


def block_moments(x: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """:func:`moment_state` of ``x`` over the samples of each mask (rows of ``masks``)."""
    return np.concatenate([moment_state(x[:, m]) for m in masks.astype(bool)], axis=1)


# ---------------------------------------------------------------------------- ranks


def rank_rows(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Average ranks (1-based) within each row, and each row's tie term sum(t**3 - t).

    Examples
    --------
    >>> r, t = rank_rows(np.array([[5.0, 1.0, 5.0, 2.0]]))
    >>> r.tolist(), t.tolist()
    ([[3.5, 1.0, 3.5, 2.0]], [6.0])
    """
    ranks = stats.rankdata(x, method="average", axis=1) if x.size else np.zeros(x.shape)
    return ranks, tie_term(x)


def tie_term(x: np.ndarray) -> np.ndarray:
    """``sum(t**3 - t)`` over the runs of equal values of each row (``t`` = run length)."""
    rows, n = x.shape
    if n == 0 or rows == 0:
        return np.zeros(rows)
    s = np.sort(x, axis=1)
    new = np.ones(s.shape, dtype=bool)
    new[:, 1:] = s[:, 1:] != s[:, :-1]
    run_id = np.cumsum(new.ravel()) - 1
    lengths = np.bincount(run_id).astype(np.float64)
    row_of_run = np.repeat(np.arange(rows), new.sum(axis=1))
    return np.bincount(row_of_run, weights=lengths**3 - lengths, minlength=rows)


# ------------------------------------------------------------------------- p-values


#: Rounding errors a row's spread may hold and still be constant: the mean of equal floats
#: is not always exactly that float, and its residue is not variance.
NOISE_ULPS = 16


def without_noise(n: np.ndarray, mean: np.ndarray, m2: np.ndarray) -> np.ndarray:
    """``m2`` (centred sums of squares) with rounding residue of constant rows set to 0.

    Examples
    --------
    >>> x = np.full(21, np.log2(1 + 1e6))  # equal values; their mean is not exactly them
    >>> m2 = float(((x - x.mean()) ** 2).sum())
    >>> without_noise(np.array([21.0]), np.array([x.mean()]), np.array([m2])).tolist()
    [0.0]
    """
    noise = n * (NOISE_ULPS * np.finfo(np.float64).eps * np.abs(mean)) ** 2
    return np.where(m2 <= noise, 0.0, m2)


def welch(mean_a, var_a, n_a, mean_b, var_b, n_b) -> tuple[np.ndarray, np.ndarray]:
    """Welch's t and two-sided p-value, with scipy's ``ttest_ind(equal_var=False)``
    conventions (df of 1 where both variances are zero).  Where both variances are zero
    and the means are equal up to rounding, t is undefined (NaN), not rounding noise."""
    vn1, vn2 = var_a / n_a, var_b / n_b
    scale = NOISE_ULPS * np.finfo(np.float64).eps * np.maximum(np.abs(mean_a), np.abs(mean_b))
    same = (vn1 + vn2 == 0) & (np.abs(mean_a - mean_b) <= scale)
    with np.errstate(divide="ignore", invalid="ignore"):
        df = (vn1 + vn2) ** 2 / (vn1**2 / (n_a - 1) + vn2**2 / (n_b - 1))
        df = np.where(np.isnan(df), 1.0, df)
        t = np.where(same, np.nan, (mean_a - mean_b) / np.sqrt(vn1 + vn2))
    p = 2 * special.stdtr(df, -np.abs(t))
    return t, p


def bh_adjust(p: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values of the finite entries of ``p`` (others NaN).

    The family is the tested genes (finite p); the adjustment is
    :func:`scipy.stats.false_discovery_control` (``method="bh"``) on them.

    Examples
    --------
    >>> bh_adjust(np.array([0.01, np.nan, 0.04, 0.03])).round(4).tolist()
    [0.03, nan, 0.04, 0.04]
    """
    out = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    if ok.any():
        out[ok] = stats.false_discovery_control(p[ok], method="bh")
    return out
