"""Opening ARCHS4 files as lazy, labelled, Dask-backed :class:`xarray.Dataset` objects."""

from __future__ import annotations

import os
from typing import Any

import xarray as xr

from .backend import build_dataset
from .dims import COUNTS, feature_dim

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
        Dask chunks of ``counts`` by dimension name.  The default keeps all genes in a
        chunk and ~128 MiB of counts per chunk along ``sample`` (see
        :func:`archs4x.backend.default_sample_chunk`).  Sample metadata coordinates are
        one chunk each; gene coordinates are in memory.
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
    )
    fdim = feature_dim(raw)
    user = dict(chunks or {})
    preferred = raw.counts.encoding.get("preferred_chunks", {}) if COUNTS in raw else {}
    variables = {}
    for name, var in raw.variables.items():
        if name in raw.indexes or var.dims == (fdim,):
            # ids were read at open, feature fields are small: keep them in memory
            variables[name] = var
        elif name == COUNTS:
            spec = {d: user.get(d, preferred.get(d, -1)) for d in var.dims}
            variables[name] = var.chunk(spec)
        else:  # lazily loaded sample metadata: one chunk each, read on first use
            variables[name] = var.chunk({d: user.get(d, -1) for d in var.dims})
    ds = xr.Dataset(
        {k: v for k, v in variables.items() if k == COUNTS},
        coords={k: v for k, v in variables.items() if k != COUNTS},
        attrs=raw.attrs,
    )
    if COUNTS in ds:
        ds[COUNTS].encoding = raw[COUNTS].encoding
    return ds
