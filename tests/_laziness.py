"""``raise_if_dask_computes``: prove that an operation builds a graph and reads nothing."""

from __future__ import annotations

import contextlib

import dask


class DaskComputed(RuntimeError):
    """Raised when code that promised to be lazy asked Dask to compute."""


def _raising_scheduler(dsk, keys, **kwargs):
    raise DaskComputed(f"a lazy operation asked Dask to compute {keys!r:.200}")


@contextlib.contextmanager
def raise_if_dask_computes():
    """Within this block, any Dask compute raises :class:`DaskComputed`."""
    with dask.config.set(scheduler=_raising_scheduler):
        yield
