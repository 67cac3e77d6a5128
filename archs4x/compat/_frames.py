"""Shared plumbing of the archs4py-compatible API: open a file, build archs4py frames."""

from __future__ import annotations

import os
import threading
from collections import OrderedDict

import numpy as np
import pandas as pd
import xarray as xr

from ..dims import COUNTS, SAMPLE, feature_dim
from ..files import file_identity
from ..io import open_dataset
from ..progress import compute

__all__ = ["META_FIELDS", "SEARCH_FIELDS", "counts_frame", "meta_frame", "open_file"]

#: archs4py's default ``meta_fields`` of ``data.meta``, ``meta.samples`` and ``meta.series``.
META_FIELDS = ["geo_accession", "series_id", "characteristics_ch1", "extract_protocol_ch1",
               "source_name_ch1", "title"]  # fmt: skip
#: archs4py's default ``meta_fields`` of ``meta.meta``.
SEARCH_FIELDS = ["characteristics_ch1", "extract_protocol_ch1", "source_name_ch1", "title"]


_opened: OrderedDict[tuple, xr.Dataset] = OrderedDict()
_opened_lock = threading.Lock()
_KEEP = 4


def open_file(file: str | os.PathLike) -> xr.Dataset:
    """Open ``file`` with :func:`archs4x.open_dataset` (the query accessor registered).

    archs4py functions take a path at every call; the lazy Dataset of the last few
    files is kept (keyed by path, size and mtime, so a changed file is reopened), so a
    script calling ``data.samples(file, ...)`` in a loop does not re-read the gene ids.
    """
    from .. import accessor  # noqa: F401  (registers ds.archs4)

    if "://" in str(file):  # remote: no local identity to key on
        return open_dataset(file)
    key = file_identity(file)
    with _opened_lock:
        ds = _opened.get(key)
        if ds is not None:
            _opened.move_to_end(key)
            return ds
    ds = open_dataset(file)
    with _opened_lock:
        for k in [k for k in _opened if k[0] == key[0]]:
            del _opened[k]
        _opened[key] = ds
        while len(_opened) > _KEEP:
            _opened.popitem(last=False)
    return ds


def row_labels(ds: xr.Dataset) -> np.ndarray:
    """archs4py's row labels: gene symbols for gene files, transcript ids otherwise."""
    fdim = feature_dim(ds)
    if fdim == "gene" and "symbol" in ds.coords:
        return np.asarray(ds.coords["symbol"].values, dtype=object)
    return np.asarray(ds.indexes[fdim], dtype=object)


def counts_frame(ds: xr.Dataset, *, silent: bool = False) -> pd.DataFrame:
    """The counts of ``ds`` as archs4py returns them: features x samples, uint32,
    rows labelled by symbol (transcript id for transcript files), columns by GSM id."""
    (values,) = compute(ds[COUNTS].data, progress=not silent)
    return pd.DataFrame(
        np.asarray(values, dtype=np.uint32),
        index=pd.Index(row_labels(ds)),
        columns=pd.Index(np.asarray(ds.indexes[SAMPLE], dtype=object)),
    )


def meta_frame(ds: xr.Dataset, fields: list[str] | tuple[str, ...]) -> pd.DataFrame:
    """Sample metadata as archs4py returns it: samples x fields, indexed by GSM id."""
    df = ds.archs4.meta(list(fields))
    df.index = pd.Index(df.index.to_numpy(dtype=object))
    df.columns = pd.Index(list(fields))
    return df
