"""Opening ARCHS4 files as lazy, labelled :class:`xarray.Dataset` objects."""

from __future__ import annotations

import os

import xarray as xr

from ..storage.sources import Source, open_source
from .schema import build_dataset

__all__ = ["open_dataset"]


def open_dataset(
    source: str | os.PathLike | Source,
    *,
    chunks: dict[str, int] | None = None,
    sample_chunk: int | None = None,
    repair_text: bool = False,
    drop_variables: list[str] | None = None,
    storage_options: dict | None = None,
) -> xr.Dataset:
    """Open an ARCHS4 file lazily: nothing but the sample and gene ids is read.

    Parameters
    ----------
    source : path-like, URL or Source
        An ARCHS4 HDF5 file (gene or transcript level, any v2 release): a local path,
        an ``https://`` URL or an ``s3://bucket/key`` URL (read over the network,
        fetching only the chunks a computation needs).
    chunks : dict, optional
        Dask chunks of ``counts`` by dimension name, e.g. ``{"sample": 1000}``.  The
        default keeps all genes in a chunk and ~128 MiB of counts along ``sample``.
    sample_chunk : int, optional
        Samples per Dask chunk (shortcut for ``chunks={"sample": n}``).
    repair_text : bool, default False
        Repair double-encoded metadata text (``"5 Î¼M"`` -> ``"5 μM"``); correct text is
        never changed.
    drop_variables : list of str, optional
        Metadata fields (or ``"counts"``) not to expose.
    storage_options : dict, optional
        fsspec options of a remote source, e.g. ``{"endpoint_url": "http://..."}`` for an
        S3-compatible server or ``{"anon": False}`` to use credentials (``s3://`` is
        anonymous by default).

    Returns
    -------
    xarray.Dataset
        ``counts`` (gene x sample, uint32): a Dask array whose selections, however
        chained, read only the selected chunks.  ``sample`` indexed by GEO accession
        (remembering each sample's column in the file); every ``meta/samples`` field a
        lazily indexed coordinate; ``gene`` indexed by Ensembl id with ``symbol`` and
        ``biotype``; ``meta/info`` as attrs.

    Raises
    ------
    FileNotFoundError
        Nothing at the path or URL.
    NotArchs4Error
        The file is not HDF5, is truncated, or lacks the ARCHS4 layout (the message says
        what is missing).
    ConnectionError
        The server of a URL cannot be reached.

    Examples
    --------
    >>> import archs4x
    >>> ds = archs4x.open_dataset(archs4x.datasets.example_file())
    >>> ds.counts.dims, ds.counts.dtype, ds.counts.chunks
    (('gene', 'sample'), dtype('uint32'), ((4500,), (400,)))
    >>> ds.sel(sample=["GSM1000003", "GSM1000000"]).counts.shape
    (4500, 2)
    """
    if sample_chunk is not None:
        chunks = {**(chunks or {}), "sample": sample_chunk}
    src = open_source(source, storage_options)
    return build_dataset(src, repair_text=repair_text, drop_variables=drop_variables,
                         counts="dask", chunks=chunks)  # fmt: skip
