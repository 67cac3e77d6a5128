"""Progress feedback the way each context expects it.

Locally (threaded or process scheduler) :class:`dask.diagnostics.ProgressBar`; on a
``distributed`` cluster :func:`distributed.progress`.  Functions that compute take a
``progress=`` argument and call :func:`compute` here.
"""

from __future__ import annotations

import sys
from typing import Any

import dask

__all__ = ["compute", "current_client"]


def current_client():
    """The active ``distributed.Client``, or None when computing locally.

    Examples
    --------
    >>> client = current_client()  # None unless a distributed.Client is active
    >>> client is None or hasattr(client, "submit")
    True"""
    try:
        from distributed import default_client

        return default_client()
    except (ImportError, ValueError):
        return None


def compute(*objs: Any, progress: bool = False, **kwargs: Any) -> tuple:
    """``dask.compute(*objs)`` with an optional progress bar suited to the scheduler.

    Examples
    --------
    >>> import dask.array as da
    >>> (total,) = compute(da.ones(10, chunks=5).sum(), progress=False)
    >>> float(total)
    10.0
    """
    if not progress:
        return dask.compute(*objs, **kwargs)
    client = current_client()
    if client is not None and kwargs.get("scheduler") is None:
        from distributed import progress as dist_progress

        futures = client.compute(list(objs))
        dist_progress(futures, notebook=False)
        print(file=sys.stderr)
        return tuple(client.gather(futures))
    from dask.diagnostics import ProgressBar

    with ProgressBar(out=sys.stderr):
        return dask.compute(*objs, **kwargs)
