"""Opening ARCHS4 files as lazy, labelled, Dask-backed :class:`xarray.Dataset` objects."""

from __future__ import annotations

import os
from typing import Any

import xarray as xr

from .backend import Archs4BackendEntrypoint
from .dims import feature_dim

__all__ = ["open_dataset"]


def open_dataset(
    source: str | os.PathLike,
    *,
    chunks: Any = None,
    repair_text: bool = False,
    sample_chunk: int | None = None,
    drop_variables: list[str] | None = None,
) -> xr.Dataset:
    """Open an ARCHS4 file lazily: nothing but the sample and gene ids is read.

    Parameters
    ----------
    source : path-like
        An ARCHS4 HDF5 file (gene or transcript level, any v2 release).
    chunks : dict, optional
        Dask chunks.  The default keeps all genes in a chunk and ~128 MiB of counts per
        chunk along ``sample`` (see :func:`archs4x.backend.default_sample_chunk`).
    repair_text : bool, default False
        Repair double-encoded metadata text (``"5 Î¼M"`` -> ``"5 μM"``); correct text is
        never changed.
    sample_chunk : int, optional
        Samples per Dask chunk (shortcut for ``chunks={"sample": n}``).
    drop_variables : list of str, optional
        Metadata fields not to expose.

    Returns
    -------
    xarray.Dataset
        ``counts`` (gene x sample, uint32, Dask-backed); ``sample`` indexed by GEO
        accession with every ``meta/samples`` field as a coordinate; ``gene`` indexed
        by Ensembl id with ``symbol`` and ``biotype``; ``meta/info`` as attrs.

    Raises
    ------
    FileNotFoundError
        The path does not exist.
    ValueError
        The file is not HDF5, is truncated, or lacks the ARCHS4 layout (the message
        says what is missing).

    Examples
    --------
    >>> import archs4x
    >>> ds = archs4x.open_dataset(archs4x.datasets.example_file())
    >>> ds.counts
    <xarray.DataArray 'counts' (gene: 4500, sample: 400)> Size: 7MB
    dask.array<open_dataset-counts, shape=(4500, 400), dtype=uint32, chunksize=(4500, 400), chunktype=numpy.ndarray>
    Coordinates: ...
    >>> ds.sel(sample=["GSM1000003", "GSM1000000"]).counts.shape
    (4500, 2)
    """
    if chunks is None:
        chunks = {} if sample_chunk is None else {"sample": sample_chunk}
    ds = xr.open_dataset(
        source,
        engine=Archs4BackendEntrypoint,
        chunks=chunks,
        repair_text=repair_text,
        sample_chunk=sample_chunk,
        drop_variables=drop_variables,
    )
    # Feature coordinates were read at open (they are small): keep them in memory
    # rather than as one-chunk Dask arrays, so gene lookups never build a graph.
    fdim = feature_dim(ds)
    for name, coord in ds.coords.items():
        if coord.dims == (fdim,) and name != fdim and coord.chunks is not None:
            ds.coords[name] = coord.compute()
    return ds
