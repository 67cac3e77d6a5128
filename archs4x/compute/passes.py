"""Multi-pass, out-of-core Dask graphs over a counts matrix.

Normalizations such as quantile and TMM need a statistic of *all* samples (a target
distribution, a reference sample) before any output column can be written.  Built
naively, such a graph shares each input block between the statistic and the output, and
Dask must then keep every block in memory until the statistic is ready: the whole matrix.

:func:`reread` gives a *fresh copy* of the input graph (new keys, so no task, in
particular no read, is shared with another pass) whose reads start only after the
statistics it depends on are computed.  Each pass then streams over the samples in
bounded memory; the price is one more read of the input per pass, which is what out of
core means.  Built with :mod:`dask.graph_manipulation` (``clone`` and ``bind``).
"""

from __future__ import annotations

from typing import Any

import dask.array as da
from dask.graph_manipulation import bind, checkpoint, clone

__all__ = ["reread"]


def reread(data: da.Array, *after: Any) -> da.Array:
    """A fresh copy of ``data``'s whole graph whose reads start after ``after`` are computed.

    Examples
    --------
    >>> import dask.array as da
    >>> x = da.ones((4, 6), chunks=(4, 2))
    >>> total = x.sum()
    >>> y = reread(x, total)
    >>> y.name != x.name, float((y / total).sum().compute())
    (True, 1.0)
    """
    fresh = clone(data, assume_layers=False)
    if not after:
        return fresh
    return bind(fresh, checkpoint(*after), assume_layers=False)
