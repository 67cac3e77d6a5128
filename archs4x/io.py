"""Opening ARCHS4 files as lazy, labelled, Dask-backed :class:`xarray.Dataset` objects."""

from __future__ import annotations

import os
from typing import Any

import xarray as xr

from .backend import build_dataset
from .dims import COUNTS

__all__ = ["open_dataset"]


def open_dataset(
    source: str | os.PathLike,
    *,
    chunks: Any = None,
    repair_text: bool = False,
    sample_chunk: int | None = None,
    drop_variables: list[str] | None = None,
    storage_options: dict | None = None,
) -> xr.Dataset:
    """Open an ARCHS4 file lazily: nothing but the sample and gene ids is read.

    Parameters
    ----------
    source : path-like or str
        An ARCHS4 HDF5 file (gene or transcript level, any v2 release): a local path,
        an ``https://`` URL or an ``s3://bucket/key`` URL (read lazily over the
        network, fetching only the chunks a computation needs; see
        :mod:`archs4x.remote`).
    chunks : dict, optional
        Dask chunks of ``counts`` by dimension name.  The default keeps all genes in a
        chunk and ~128 MiB of counts per chunk along ``sample`` (see
        :func:`archs4x.backend.default_sample_chunk`).  Coordinates are not Dask
        arrays: ids are in memory and metadata fields are lazily indexed file arrays,
        read on first use (only the selected positions).
    repair_text : bool, default False
        Repair double-encoded metadata text (``"5 Î¼M"`` -> ``"5 μM"``); correct text is
        never changed.
    sample_chunk : int, optional
        Samples per Dask chunk (shortcut for ``chunks={"sample": n}``).
    drop_variables : list of str, optional
        Metadata fields not to expose.
    storage_options : dict, optional
        fsspec options of a remote source, e.g. ``{"endpoint_url": "http://..."}`` for
        an S3-compatible server or ``{"anon": False}`` to use AWS credentials
        (``s3://`` is anonymous by default).

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
    >>> ds.counts.dims, ds.counts.dtype, ds.counts.chunks is not None
    (('gene', 'sample'), dtype('uint32'), True)
    >>> ds.sel(sample=["GSM1000003", "GSM1000000"]).counts.shape
    (4500, 2)
    """
    raw = build_dataset(
        source,
        repair_text=repair_text,
        drop_variables=drop_variables,
        sample_chunk=sample_chunk,
        storage_options=storage_options,
    )
    if COUNTS not in raw:
        return raw
    # Only counts becomes a Dask array.  Ids are in memory; every other coordinate stays
    # a lazily indexed file array: isel/sel compose without reading or building graphs,
    # and .values reads just the selected positions.
    user = dict(chunks or {})
    preferred = raw[COUNTS].encoding.get("preferred_chunks", {})
    spec = {d: user.get(d, preferred.get(d, -1)) for d in raw[COUNTS].dims}
    ds = raw.assign({COUNTS: raw[COUNTS].variable.chunk(spec)})
    ds[COUNTS].encoding = raw[COUNTS].encoding
    return ds
