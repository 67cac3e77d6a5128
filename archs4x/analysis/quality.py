"""Per-sample quality control: library size, genes detected, top-50 and mitochondrial
shares, and a query that keeps the samples passing thresholds.

One streaming pass over sample blocks: each task sums its samples' counts, counts the
genes above zero, adds up the 50 largest counts of each sample (``numpy.partition``)
and the counts of the mitochondrial genes (symbols starting ``MT-``, any case, so mouse
``mt-`` too).  The read counts the file records (``readsaligned`` in v2.2,
``alignedreads`` later) are added where present.
"""

from __future__ import annotations

from typing import Any

import dask.array as da
import numpy as np
import pandas as pd
import xarray as xr

from ..compute.validate import as_counts, check_block
from ..dims import SAMPLE
from ._genes import symbols_of

__all__ = ["qc", "qc_filter"]

#: Fields of ARCHS4 files holding each sample's aligned reads (by release).
READ_FIELDS = ("readsaligned", "alignedreads")
#: How many of the most expressed genes ``top50_fraction`` sums.
TOP = 50
MITO_PREFIX = "MT-"


def mito_rows(arr: xr.DataArray | xr.Dataset) -> np.ndarray:
    """Positions of the mitochondrial genes (symbol starting ``MT-``, any case)."""
    symbols = symbols_of(arr)
    if symbols is None:
        return np.zeros(0, dtype=np.int64)
    prefix = MITO_PREFIX.lower()
    return np.asarray(
        [i for i, s in enumerate(symbols) if str(s).lower().startswith(prefix)], dtype=np.int64
    )


def _aligned_table(table: xr.Dataset, ds: xr.Dataset) -> xr.Dataset:
    """``table`` with its rows in the order of ``ds``'s samples (matched by GSM id).

    A ``qc_table`` computed on another ordering of the same samples (e.g. before a
    ``sortby``) is reordered; one describing other samples is refused, never applied
    by position to the wrong samples.
    """
    mine = np.asarray(table[SAMPLE].values, dtype=object)
    theirs = np.asarray(ds[SAMPLE].values, dtype=object)
    if np.array_equal(mine, theirs):
        return table
    index = pd.Index(mine)
    if index.is_unique:
        where = index.get_indexer(theirs)
        if (where >= 0).all():
            return table.isel({SAMPLE: where})
    raise ValueError(
        "qc_table describes other samples than the Dataset (its sample ids differ): "
        "pass qc(ds) of this Dataset"
    )


def _qc_block(block: np.ndarray, mito: np.ndarray, top: int) -> np.ndarray:
    check_block(block, "qc")
    exact = block.dtype.kind in "iu"
    acc = np.int64 if block.dtype.kind == "i" else np.uint64 if exact else np.float64
    lib = block.sum(axis=0, dtype=acc)
    detected = (block > 0).sum(axis=0)
    n = block.shape[0]
    if n > top:
        part = np.partition(block, n - top, axis=0)[n - top :]
    else:
        part = block
    top_sum = part.sum(axis=0, dtype=acc)
    mito_sum = block[mito].sum(axis=0, dtype=acc)
    libf = lib.astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        top_frac = top_sum.astype(np.float64) / libf
        mito_frac = mito_sum.astype(np.float64) / libf
    return np.stack([libf, detected.astype(np.float64), top_frac, mito_frac])


def qc(counts: xr.DataArray | xr.Dataset) -> xr.Dataset:
    """Quality-control statistics of every sample, lazily (one read of the counts).

    Parameters
    ----------
    counts : xarray.DataArray or xarray.Dataset
        (gene, sample) counts: a file or any selection of one.

    Returns
    -------
    xarray.Dataset
        On ``sample`` (lazy, float64 except ``genes_detected``, int64):
        ``library_size`` (sum of the counts), ``genes_detected`` (genes with a count
        > 0), ``top50_fraction`` (share of the counts in the sample's 50 most expressed
        genes), ``mito_fraction`` (share in genes whose symbol starts with ``MT-``; 0
        if there are none), and ``readsaligned`` / ``alignedreads`` where the input
        has them.  Fractions are NaN for an empty library.

    Examples
    --------
    >>> import archs4x
    >>> ds = archs4x.open_dataset(archs4x.datasets.example_file())
    >>> q = archs4x.qc(ds.isel(sample=slice(0, 4)))
    >>> sorted(q.data_vars)
    ['genes_detected', 'library_size', 'mito_fraction', 'top50_fraction']
    >>> bool((q.top50_fraction.values <= 1).all())
    True
    """
    arr, _ = as_counts(counts)
    data = arr.data
    mito = mito_rows(arr)
    stats = da.map_blocks(
        _qc_block, data, mito, TOP, dtype=np.float64, chunks=((4,), data.chunks[1])
    )
    coords = {SAMPLE: arr[SAMPLE]} if SAMPLE in arr.coords else {}
    dims = (SAMPLE,)
    out = xr.Dataset(
        {
            "library_size": (dims, stats[0]),
            "genes_detected": (dims, stats[1].astype(np.int64)),
            "top50_fraction": (dims, stats[2]),
            "mito_fraction": (dims, stats[3]),
        },
        coords=coords,
    )
    source = counts if isinstance(counts, xr.Dataset) else arr
    for name in READ_FIELDS:
        if name in source.coords and source.coords[name].dims == (SAMPLE,):
            out[name] = source.coords[name].variable
    out.attrs["n_features"] = int(arr.shape[0])
    out.attrs["mito_genes"] = int(mito.size)
    return out


def qc_filter(
    ds: xr.Dataset,
    *,
    min_library: float | None = None,
    min_genes: int | None = None,
    max_mito: float | None = None,
    max_top50: float | None = None,
    qc_table: xr.Dataset | None = None,
) -> xr.Dataset:
    """The samples of ``ds`` passing quality thresholds, selected with ``ds.isel``.

    A query like the others (``ds.archs4.qc_filter(...)``): it returns a Dataset whose
    ``counts`` stay lazy and whose later computes read only the kept samples.  Deciding
    which samples pass needs their statistics, so it computes :func:`qc` of ``ds`` (one
    read of its counts) unless ``qc_table`` (a computed or lazy ``qc(ds)``) is given.

    Parameters
    ----------
    ds : xarray.Dataset
        Any selection of a file.
    min_library : float, optional
        Keep samples with ``library_size >= min_library``.
    min_genes : int, optional
        Keep samples with ``genes_detected >= min_genes``.
    max_mito : float, optional
        Keep samples with ``mito_fraction <= max_mito`` (an empty library, NaN, fails).
    max_top50 : float, optional
        Keep samples with ``top50_fraction <= max_top50``.
    qc_table : xarray.Dataset, optional
        ``qc(ds)`` if already computed; matched to ``ds`` by GSM id (a table of the
        same samples in another order is reordered, one of other samples refused).

    Examples
    --------
    >>> import archs4x
    >>> ds = archs4x.open_dataset(archs4x.datasets.example_file(empty_libraries=True))
    >>> kept = ds.archs4.qc_filter(min_library=1)
    >>> ds.sizes["sample"] - kept.sizes["sample"]  # the three empty libraries
    3
    """
    if not isinstance(ds, xr.Dataset):
        raise TypeError(f"qc_filter takes a Dataset, got {type(ds).__name__}")
    table = qc(ds) if qc_table is None else qc_table
    if table.sizes.get(SAMPLE) != ds.sizes[SAMPLE]:
        raise ValueError(
            f"qc_table has {table.sizes.get(SAMPLE)} samples, the Dataset {ds.sizes[SAMPLE]}"
        )
    if qc_table is not None and SAMPLE in table.coords:
        table = _aligned_table(table, ds)
    wanted = {
        "library_size": (min_library, np.greater_equal),
        "genes_detected": (min_genes, np.greater_equal),
        "mito_fraction": (max_mito, np.less_equal),
        "top50_fraction": (max_top50, np.less_equal),
    }
    limits = {k: (v, op) for k, (v, op) in wanted.items() if v is not None}
    names = list(limits)
    values: dict[str, Any] = {}
    if names:
        loaded = table[names].compute()
        values = {k: np.asarray(loaded[k].values) for k in names}
    keep = np.ones(ds.sizes[SAMPLE], dtype=bool)
    for name, (threshold, op) in limits.items():
        with np.errstate(invalid="ignore"):
            keep &= op(values[name], threshold)
    return ds.isel({SAMPLE: np.flatnonzero(keep)})
