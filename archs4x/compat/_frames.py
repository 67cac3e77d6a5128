"""Shared plumbing of the archs4py-compatible API: open a file, build archs4py frames."""

from __future__ import annotations

import os
from collections.abc import Hashable
from typing import cast

import numpy as np
import numpy.typing as npt
import pandas as pd
import xarray as xr

from ..backends.open import open_dataset
from ..dims import COUNTS, feature_dim
from ..query.select import DEFAULT_FIELDS
from ..storage.caches import LRUCache
from ..storage.sources import open_source
from ..write.interop import to_pandas

__all__ = ["META_FIELDS", "SEARCH_FIELDS", "counts_frame", "meta_frame", "open_file"]

#: archs4py's default ``meta_fields`` of ``data.meta``, ``meta.samples`` and ``meta.series``.
META_FIELDS = ["geo_accession", "series_id", "characteristics_ch1", "extract_protocol_ch1",
               "source_name_ch1", "title"]  # fmt: skip
#: archs4py's default ``meta_fields`` of ``meta.meta``.
SEARCH_FIELDS = list(DEFAULT_FIELDS)


_opened: LRUCache[xr.Dataset] = LRUCache("compat-datasets", capacity=lambda: 4)


def open_file(file: str | os.PathLike) -> xr.Dataset:
    """Open ``file`` with :func:`archs4x.open_dataset` (the query accessor registered).

    archs4py functions take a path at every call; the lazy Dataset of the last few
    file versions is kept (keyed by the source's identity, so a changed file is opened
    again), so a script calling ``data.samples(file, ...)`` in a loop does not re-read
    the gene ids.
    """
    source = open_source(file)
    key = cast(Hashable, source)  # frozen dataclasses: hashable (Protocols are not, to mypy)
    return _opened.get_or_make(key, lambda: open_dataset(source))


def counts_frame(
    ds: xr.Dataset,
    *,
    silent: bool = False,
    var: str = COUNTS,
    dtype: npt.DTypeLike | None = np.uint32,
) -> pd.DataFrame:
    """The counts of ``ds`` as archs4py returns them: features x samples (uint32 by
    default), rows labelled by symbol (transcript id for transcript files), columns by
    sample id, neither axis named (as archs4py's frames)."""
    arr = ds[var]
    index = "symbol" if feature_dim(ds) == "gene" and "symbol" in arr.coords else None
    frame = to_pandas(arr, index=index, dtype=dtype, progress=not silent)
    return frame.rename_axis(index=None, columns=None)


def meta_frame(ds: xr.Dataset, fields: list[str] | tuple[str, ...]) -> pd.DataFrame:
    """Sample metadata as archs4py returns it: samples x fields, indexed by GSM id."""
    df = ds.archs4.meta(list(fields))
    df.index = pd.Index(df.index.to_numpy(dtype=object))
    df.columns = pd.Index(list(fields))
    return df
