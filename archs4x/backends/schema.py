"""The Dataset of an ARCHS4 file: dimensions, coordinates, attributes, and ``counts``.

:func:`build_dataset` is the one definition of what an ARCHS4 file looks like as an
:class:`xarray.Dataset`; the ``archs4`` engine and :func:`archs4x.open_dataset` both use
it.  It reads only the sample ids, the feature ids and (local files) the small feature
fields; sample metadata fields stay on disk as lazily indexed coordinates.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from typing import Any, Literal

import numpy as np
import pandas as pd
import xarray as xr
from xarray.core import indexing

from ..dims import COUNTS, SAMPLE
from ..storage.layout import EXPRESSION, SAMPLE_ID_FIELD, Layout
from ..storage.sources import LocalFile, Source
from ..storage.text import decode_strings
from .arrays import CountsBackendArray, FieldArray, field_dtype
from .counts import Archs4Array, default_sample_chunk
from .positions import SamplePositionIndex

__all__ = ["build_dataset", "counts_chunks"]


def _read_field(source: Source, path: str, repair: bool = False) -> np.ndarray:
    dset = source.field(path)
    values = dset[()]
    if field_dtype(dset).kind == "O":
        return decode_strings(values, repair=repair)
    return np.asarray(values)


def _lazy_field(source: Source, path: str, dims: tuple[str], repair: bool) -> xr.Variable:
    dset = source.h5()[path]
    arr = FieldArray(source, path, (int(dset.shape[0]),), field_dtype(dset), repair)
    # marks the coordinate as this source's stored field (queries read it by position)
    encoding = {"archs4x_field": path.rsplit("/", 1)[-1], "archs4x_source": source,
                "archs4x_repair": repair}  # fmt: skip
    return xr.Variable(dims, indexing.LazilyIndexedArray(arr), encoding=encoding)


def _info_attrs(source: Source, layout: Layout) -> dict[str, Any]:
    f = source.h5()
    attrs: dict[str, Any] = {}
    for name in layout.info_fields:
        val = f[layout.info_path(name)][()]
        if isinstance(val, bytes):
            val = val.decode("utf-8", errors="replace")
        elif isinstance(val, np.ndarray):
            val = val.tolist()
        elif isinstance(val, np.generic):
            val = val.item()
        attrs[name] = val
    return attrs


def counts_chunks(
    shape: tuple[int, int], itemsize: int, chunks: dict | None, fdim: str
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Dask chunks of ``counts`` from a ``{dim: size}`` dict (-1: whole dimension).

    The default keeps all features in a chunk and ~128 MiB along ``sample``.

    Examples
    --------
    >>> counts_chunks((67_186, 1000), 4, None, "gene")
    ((67186,), (499, 499, 2))
    >>> counts_chunks((10, 5), 4, {"gene": 4, "sample": -1}, "gene")
    ((4, 4, 2), (5,))
    """
    user = dict(chunks or {})
    unknown = set(user) - {fdim, SAMPLE}
    if unknown:
        raise ValueError(
            f"chunks names unknown dimensions {sorted(unknown)}; use {fdim!r}, 'sample'"
        )
    n_f, n_s = shape
    rows = user.get(fdim, -1)
    cols = user.get(SAMPLE, default_sample_chunk(n_f if rows in (-1, None) else rows, itemsize))

    def split(n: int, size: Any) -> tuple[int, ...]:
        size = n if size in (-1, None) else int(size)
        if size <= 0:
            raise ValueError(f"chunk sizes must be positive, got {size}")
        return tuple(min(size, n - s) for s in range(0, n, size)) or (0,)

    return split(n_f, rows), split(n_s, cols)


def build_dataset(
    source: Source,
    *,
    repair_text: bool = False,
    drop_variables: Iterable[str] | None = None,
    counts: Literal["lazy", "dask"] = "dask",
    chunks: dict | None = None,
) -> xr.Dataset:
    """The lazy :class:`xarray.Dataset` of an ARCHS4 file.

    Parameters
    ----------
    source : Source
        From :func:`archs4x.storage.open_source`.
    repair_text : bool
        Repair double-encoded metadata text (see :func:`archs4x.storage.text.repair_mojibake`).
    drop_variables : iterable of str, optional
        Metadata fields (or ``"counts"``) not to expose.
    counts : {"dask", "lazy"}
        ``"dask"``: an :class:`~archs4x.backends.counts.Archs4Array` (what
        :func:`archs4x.open_dataset` returns); ``"lazy"``: a lazily indexed backend array
        (what the ``archs4`` engine hands xarray).
    chunks : dict, optional
        Dask chunks of ``counts`` by dimension (``counts="dask"`` only).

    Examples
    --------
    >>> from archs4x.datasets import example_file
    >>> from archs4x.storage import open_source
    >>> ds = build_dataset(open_source(example_file()), counts="lazy")
    >>> ds.counts.chunks is None, ds.sizes["sample"], type(ds.xindexes["sample"]).__name__
    (True, 400, 'SamplePositionIndex')
    """
    layout = source.layout()
    drop = set(drop_variables or ())
    fdim = layout.level
    n_features, n_samples = layout.shape
    if layout.skipped:
        warnings.warn(
            f"{source.name}: left out metadata whose length matches neither dimension: "
            + "; ".join(layout.skipped),
            stacklevel=3,
        )
    gsm = _read_field(source, layout.sample_path(SAMPLE_ID_FIELD))
    if pd.Index(gsm).has_duplicates:
        warnings.warn(
            f"{source.name}: {SAMPLE_ID_FIELD} has duplicate ids; label selection of those "
            "samples is ambiguous (use positional .isel)",
            stacklevel=3,
        )
    index = SamplePositionIndex(pd.Index(gsm, dtype=object, name=SAMPLE), SAMPLE,
                                positions=np.arange(n_samples), source=source)  # fmt: skip
    coords = xr.Coordinates.from_xindex(index)
    coords[SAMPLE].attrs["long_name"] = "GEO sample accession"
    extra: dict[str, Any] = {}
    for name in layout.sample_fields:
        if name == SAMPLE_ID_FIELD or name in drop:
            continue
        coord = name if name != SAMPLE else "sample_name"
        extra[coord] = _lazy_field(source, layout.sample_path(name), (SAMPLE,), repair_text)

    local = isinstance(source, LocalFile)
    for name in layout.feature_fields:
        if name in drop:
            continue
        if name == layout.feature_index:
            values = _read_field(source, layout.feature_path(name))
            extra[fdim] = xr.Variable((fdim,), values, attrs={"long_name": f"{name} (Ensembl)"})
            continue
        out = "symbol" if name == layout.symbol_field else name
        if out == fdim:
            out = f"{fdim}_{name}"
        if local:
            extra[out] = xr.Variable((fdim,), _read_field(source, layout.feature_path(name)))
        else:  # remote: fetched (once, then cached locally) when first used
            extra[out] = _lazy_field(source, layout.feature_path(name), (fdim,), False)

    reader = source.counts_reader()
    attrs = {"long_name": f"{fdim} read counts", "units": "reads"}
    h5_chunks = tuple(source.h5()[EXPRESSION].chunks or ())
    k = default_sample_chunk(n_features, reader.dtype.itemsize, n_samples)
    encoding = {
        "preferred_chunks": {fdim: n_features, SAMPLE: min(k, max(1, n_samples))},
        "chunksizes": h5_chunks or None,
        "dtype": reader.dtype,
    }
    data_vars: dict[str, xr.Variable] = {}
    if COUNTS not in drop:
        if counts == "dask":
            cks = counts_chunks((n_features, n_samples), reader.dtype.itemsize, chunks, fdim)
            data: Any = Archs4Array(source, np.arange(n_features), np.arange(n_samples),
                                    reader.dtype, cks)  # fmt: skip
        else:
            data = indexing.LazilyIndexedArray(CountsBackendArray(source))
        data_vars[COUNTS] = xr.Variable((fdim, SAMPLE), data, attrs=attrs, encoding=encoding)
    ds_attrs = _info_attrs(source, layout)
    ds_attrs.update(
        archs4_source=source.name,
        archs4_level=layout.level,
        archs4_h5_chunks=str(h5_chunks) if h5_chunks else "contiguous",
    )
    ds = xr.Dataset(data_vars, coords=coords, attrs=ds_attrs)
    return ds.assign_coords(extra)
