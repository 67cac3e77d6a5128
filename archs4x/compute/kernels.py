"""Compiled per-column kernels of the normalization passes (numba).

The passes stream over blocks of whole sample columns.  Sorting stays with NumPy's
vectorised sorts; what follows a sort (walking the runs of tied values, summing the
target over each run, mapping every count to its value) is a loop over each column
that NumPy can only express as several temporaries and gathers per column.  Here each
is one compiled loop, without temporaries, releasing the GIL so that Dask's threads run
them in parallel.

Every kernel takes preallocated outputs and returns nothing.  They are compiled on first
use and cached on disk (``cache=True``), so compilation happens once per machine; a
process still pays about 0.3 s at its first call (numba loading LLVM), which is why
passes of a few element-wise operations (CPM) stay in NumPy.  Importing this module
imports numba, so the compute modules import it inside the tasks that use it
(``import archs4x`` stays light).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

__all__ = ["add_log1p2_sorted", "assign_sorted"]


@njit(nogil=True, cache=True)
def add_log1p2_sorted(srt: np.ndarray, table: np.ndarray, total: np.ndarray) -> None:
    """``total += log2(1 + srt[c])`` for every row ``c`` of ``srt`` (non-negative integers).

    Values below ``table.size`` come from ``table`` (``table[i] == log2(1.0 + i)``), the
    others are computed: every term is the float64 the element-wise expression gives,
    and the rows are added in order, as ``total += log_values.sum(axis=0)`` adds them.

    Examples
    --------
    >>> srt = np.array([[0, 1, 3], [1, 1, 7]], dtype=np.uint32)
    >>> total = np.zeros(3)
    >>> add_log1p2_sorted(srt, np.log2(1.0 + np.arange(4.0)), total)
    >>> total.tolist()
    [1.0, 2.0, 5.0]
    """
    k, n = srt.shape
    size = table.size
    for r in range(n):
        acc = 0.0
        for c in range(k):
            v = srt[c, r]
            acc += table[v] if v < size else math.log2(1.0 + float(v))
        total[r] += acc


@njit(nogil=True, cache=True)
def _run_sum(target: np.ndarray, s: int, e: int) -> float:
    """``sum(target[s:e])`` with four accumulators: a single one waits on each addition's
    latency.  The target is non-negative, so the order changes nothing beyond rounding
    (relative error below ``(e - s)`` machine epsilons either way)."""
    a0 = a1 = a2 = a3 = 0.0
    r = s
    while r + 4 <= e:
        a0 += target[r]
        a1 += target[r + 1]
        a2 += target[r + 2]
        a3 += target[r + 3]
        r += 4
    while r < e:
        a0 += target[r]
        r += 1
    return (a0 + a1) + (a2 + a3)


@njit(nogil=True, cache=True)
def assign_sorted(cols: np.ndarray, srt: np.ndarray, target: np.ndarray, mean_ties: bool,
                  table: np.ndarray, big_keys: np.ndarray, big_values: np.ndarray,
                  out: np.ndarray) -> None:  # fmt: skip
    """Quantile-normalize integer columns onto ``target``: ``out[c]`` for ``cols[c]``.

    ``srt`` holds each column sorted; ``target`` is the sorted target distribution.  A run
    of tied values at sorted positions ``s .. e-1`` gets the mean of ``target[s:e]``
    (``mean_ties``, qnorm and archs4py) or the target at its average rank, interpolated
    at a half rank (preprocessCore, limma).  Values below ``table.size`` are mapped
    through ``table``; larger ones by binary search in the run values (``big_keys``, of
    ``cols``' dtype, and ``big_values``: scratch of a column's length).  Counts must be
    non-negative.

    Examples
    --------
    >>> cols = np.array([[5, 1, 5]], dtype=np.uint32)
    >>> srt = np.sort(cols, axis=1)
    >>> out = np.empty((1, 3))
    >>> scratch = np.empty(3, dtype=cols.dtype), np.empty(3)
    >>> assign_sorted(cols, srt, np.array([1.0, 2.0, 4.0]), True, np.empty(8), *scratch, out)
    >>> out.tolist()
    [[3.0, 1.0, 3.0]]
    """
    k, n = cols.shape
    size = table.size
    # Runs that start at rank 0 (the zeros of sparse counts: most of a column) are sums
    # of the target's head, the same for every column: add them up once.
    head = np.empty(n + 1)
    head[0] = 0.0
    for r in range(n):
        head[r + 1] = head[r] + target[r]
    for c in range(k):
        col, sorted_col, row = cols[c], srt[c], out[c]
        n_big = 0
        s = 0
        while s < n:
            v = sorted_col[s]
            e = s + 1
            while e < n and sorted_col[e] == v:
                e += 1
            if mean_ties:
                value = (head[e] if s == 0 else _run_sum(target, s, e)) / (e - s)
            else:
                twice = s + e - 1  # twice the average 0-based rank
                lo = twice // 2
                if twice % 2 == 0:
                    value = target[lo]
                else:
                    value = 0.5 * (target[lo] + target[min(lo + 1, n - 1)])
            if v < size:
                table[v] = value
            else:
                big_keys[n_big] = v
                big_values[n_big] = value
                n_big += 1
            s = e
        for i in range(n):
            v = col[i]
            if v < size:
                row[i] = table[v]
            else:
                lo, hi = 0, n_big - 1
                while lo < hi:
                    mid = (lo + hi) // 2
                    if big_keys[mid] < v:
                        lo = mid + 1
                    else:
                        hi = mid
                row[i] = big_values[lo]
