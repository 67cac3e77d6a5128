"""``raise_if_dask_computes``: prove that an operation builds a graph and reads nothing."""

from __future__ import annotations

import contextlib
from unittest import mock

import dask

import archs4x.backends.counts


class DaskComputed(RuntimeError):
    """Raised when code that promised to be lazy asked Dask to compute, or read counts."""


def _raising_scheduler(dsk, keys, **kwargs):
    raise DaskComputed(f"a lazy operation asked Dask to compute {keys!r:.200}")


def _refuse_read(self, *args, **kwargs):
    raise DaskComputed(f"a lazy operation read counts directly from {self.source!r:.200}")


@contextlib.contextmanager
def raise_if_dask_computes():
    """Within this block, any Dask compute raises :class:`DaskComputed`, and so does any
    direct read of counts: ``np.asarray`` of a counts array reads without a Dask
    scheduler (``Archs4Array.__array__``), so the scheduler alone would not see it."""
    with (
        dask.config.set(scheduler=_raising_scheduler),
        mock.patch.object(archs4x.backends.counts.Archs4Array, "__array__", _refuse_read),
    ):
        yield
