"""Gene-level operations on a counts matrix: merge duplicate symbols, filter lowly expressed genes.

Both follow ``archs4py.utils``: :func:`aggregate_duplicate_genes` is its
``exp.groupby(exp.index).sum()`` (rows sharing a gene symbol summed, symbols sorted), and
:func:`filter_genes` keeps the genes with more than ``read_threshold`` reads in at least
``sample_threshold`` x (number of samples) samples, after aggregating by default.

Coordinates after aggregation: the feature dimension keeps its name (``gene`` or
``transcript``, so every other archs4x function still applies) but is indexed by the
symbol; the ``symbol`` coordinate repeats it and ``n_merged`` says how many rows were
summed.  Per-row coordinates that do not survive a sum (Ensembl id, biotype) are dropped;
sample coordinates are kept.  Rows without a symbol (missing values) are dropped, as
pandas does.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from ..dims import SAMPLE, feature_dim
from .validate import counts_array

__all__ = ["aggregate_duplicate_genes", "expressed_genes", "filter_genes"]


def aggregate_duplicate_genes(
    counts: xr.DataArray | xr.Dataset, *, by: str = "symbol"
) -> xr.DataArray:
    """Sum the rows of ``counts`` that share a gene symbol, lazily (flox-backed groupby).

    Parameters
    ----------
    counts : xarray.DataArray or xarray.Dataset
        (feature, sample) counts with a ``by`` coordinate along the feature dimension.
    by : str, default "symbol"
        The feature coordinate whose equal values are merged.

    Returns
    -------
    xarray.DataArray
        Lazy sums (unsigned counts become uint64, so sums cannot overflow), one row per
        distinct symbol in sorted order; the feature dimension is indexed by the symbol,
        with coordinates ``symbol`` (the same values) and ``n_merged`` (rows summed).

    Examples
    --------
    >>> import archs4x
    >>> from archs4x.datasets import example_file
    >>> ds = archs4x.open_dataset(example_file())
    >>> agg = aggregate_duplicate_genes(ds.counts)
    >>> ds.sizes["gene"], agg.sizes["gene"], int(agg.n_merged.max()) > 1
    (4500, 4368, True)
    >>> agg.sel(gene="ACTB").dims
    ('sample',)
    """
    counts = counts_array(counts)
    feat = feature_dim(counts)
    if by not in counts.coords or counts[by].dims != (feat,):
        raise ValueError(f"counts has no {by!r} coordinate along {feat!r} to aggregate by")
    labels = pd.Series(np.asarray(counts[by].values, dtype=object))
    keep = labels.notna().to_numpy()
    if not keep.all():
        counts = counts.isel({feat: keep})
        labels = labels[keep]
    per_row = [c for c, v in counts.coords.items() if feat in v.dims]
    counts = counts.drop_vars(per_row).assign_coords({by: (feat, labels.to_numpy())})
    if counts.dtype.kind in "ub":
        counts = counts.astype(np.uint64)
    elif counts.dtype.kind == "i":
        counts = counts.astype(np.int64)
    summed = counts.groupby(by).sum().rename({by: feat})
    sizes = labels.value_counts()
    symbols = summed[feat].values
    return summed.assign_coords(
        {"symbol": (feat, symbols), "n_merged": (feat, sizes.loc[symbols].to_numpy())}
    )


def expressed_genes(
    counts: xr.DataArray | xr.Dataset,
    read_threshold: float = 20,
    sample_threshold: float = 0.02,
) -> xr.DataArray:
    """Lazy mask of the features with more than ``read_threshold`` reads in enough samples.

    A feature passes when the number of samples with counts ``> read_threshold`` is at
    least ``sample_threshold x n_samples`` (archs4py's rule).

    Examples
    --------
    >>> import archs4x
    >>> from archs4x.datasets import example_file
    >>> mask = expressed_genes(archs4x.open_dataset(example_file()).counts)
    >>> mask.dtype.name, mask.chunks is not None
    ('bool', True)
    """
    counts = counts_array(counts)
    if not 0 <= sample_threshold <= 1:
        raise ValueError(f"sample_threshold must be a fraction in [0, 1], got {sample_threshold!r}")
    n_samples = counts.sizes[SAMPLE]
    above = (counts > read_threshold).sum(SAMPLE)
    return (above >= n_samples * sample_threshold).rename("expressed")


def filter_genes(
    counts: xr.DataArray | xr.Dataset,
    read_threshold: float = 20,
    sample_threshold: float = 0.02,
    aggregate: bool = True,
) -> xr.DataArray:
    """Keep the genes with more than ``read_threshold`` reads in at least a fraction of samples.

    The same rule and order as ``archs4py.utils.filter_genes``: with ``aggregate=True``
    duplicate symbols are summed first (:func:`aggregate_duplicate_genes`), then the genes
    with ``> read_threshold`` reads in ``>= sample_threshold x n_samples`` samples are kept.

    Which genes survive depends on the data, and xarray needs the kept labels, so this
    function computes the mask (:func:`expressed_genes`) right away: one streaming pass
    over the counts in bounded memory.  The returned counts stay lazy.  To defer even that
    pass, use :func:`expressed_genes` and select later.

    Examples
    --------
    >>> import archs4x
    >>> from archs4x.datasets import example_file
    >>> ds = archs4x.open_dataset(example_file())
    >>> kept = filter_genes(ds.counts, read_threshold=20, sample_threshold=0.02)
    >>> 0 < kept.sizes["gene"] < ds.sizes["gene"], kept.chunks is not None
    (True, True)
    """
    counts = counts_array(counts)
    if aggregate:
        counts = aggregate_duplicate_genes(counts)
    feat = feature_dim(counts)
    keep = np.asarray(expressed_genes(counts, read_threshold, sample_threshold).values)
    return counts.isel({feat: keep})
