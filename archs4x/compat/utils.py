"""archs4py ``utils``: normalisation and gene filtering on pandas DataFrames.

Thin wrappers: each converts the archs4py-style DataFrame (genes x samples, rows
labelled by symbol) to an :class:`xarray.DataArray`, calls the archs4x function
(:func:`archs4x.normalize.normalize`, :func:`archs4x.genes.filter_genes`,
:func:`archs4x.genes.aggregate_duplicate_genes`) and converts the result back.
"""

from __future__ import annotations

import os
from typing import Any, Literal

import numpy as np
import pandas as pd
import xarray as xr

from ..dims import GENE, SAMPLE

__all__ = ["aggregate_duplicate_genes", "filter_genes", "ls", "normalize", "versions"]


def to_dataarray(exp: pd.DataFrame) -> xr.DataArray:
    """An archs4py counts DataFrame as a ``(gene, sample)`` DataArray.

    Row labels become the ``symbol`` coordinate; the ``gene`` index is the row labels
    when they are unique, else their position.

    Examples
    --------
    >>> df = pd.DataFrame([[1, 2], [3, 4]], index=["A", "A"], columns=["GSM1", "GSM2"])
    >>> to_dataarray(df).dims, to_dataarray(df).symbol.values.tolist()
    (('gene', 'sample'), ['A', 'A'])
    """
    if not isinstance(exp, pd.DataFrame):
        raise TypeError(f"expected a pandas DataFrame (genes x samples), got {type(exp).__name__}")
    labels = np.asarray(exp.index, dtype=object)
    gene = labels if exp.index.is_unique else np.arange(len(labels))
    return xr.DataArray(
        exp.to_numpy(),
        dims=(GENE, SAMPLE),
        coords={GENE: gene, "symbol": (GENE, labels), SAMPLE: np.asarray(exp.columns)},
        name="counts",
    )


def to_frame(arr: xr.DataArray) -> pd.DataFrame:
    """A ``(feature, sample)`` DataArray as an archs4py DataFrame (rows by symbol).

    Examples
    --------
    >>> df = pd.DataFrame([[1, 2], [3, 4]], index=["A", "B"], columns=["GSM1", "GSM2"])
    >>> to_frame(to_dataarray(df)).equals(df)
    True
    """
    fdim = next(d for d in arr.dims if d != SAMPLE)
    arr = arr.transpose(fdim, SAMPLE)
    if "symbol" in arr.coords and arr.coords["symbol"].dims == (fdim,):
        rows = np.asarray(arr.coords["symbol"].values, dtype=object)
    else:
        rows = np.asarray(arr.coords[fdim].values, dtype=object)
    return pd.DataFrame(
        np.asarray(arr.values),
        index=pd.Index(rows),
        columns=pd.Index(np.asarray(arr.coords[SAMPLE].values, dtype=object)),
    )


def normalize(
    counts: pd.DataFrame,
    method: Literal["quantile", "log_quantile", "cpm", "tmm"] = "log_quantile",
    tmm_outlier: float = 0.05,
    empty: Literal["raise", "nan"] = "raise",
) -> pd.DataFrame:
    """Normalise a counts DataFrame: ``"quantile"``, ``"log_quantile"``, ``"cpm"`` or ``"tmm"``.

    Delegates to :func:`archs4x.normalize.normalize`; returns float32 with the same rows
    and columns.  ``"tmm"`` is edgeR's TMM (archs4py's is not, see the README), with
    ``tmm_outlier`` as the trim fraction of the mean log expression (edgeR's ``sumTrim``).
    A sample with no reads raises :class:`archs4x.errors.EmptyLibraryError` (a
    ValueError) under ``"cpm"`` and ``"tmm"``; ``empty="nan"`` gives it NaN, as archs4py
    does, and normalises the others without it.

    Examples
    --------
    >>> df = pd.DataFrame([[1, 3, 0], [9, 7, 0]], index=["A", "B"], columns=["x", "y", "z"])
    >>> normalize(df, "cpm", empty="nan").round(0).values.tolist()
    [[100000.0, 300000.0, nan], [900000.0, 700000.0, nan]]
    """
    from ..compute.normalize import normalize as _normalize

    kwargs: dict[str, Any] = {"sum_trim": tmm_outlier} if method == "tmm" else {}
    data = to_dataarray(counts)
    out = to_frame(_normalize(data, method=method, dtype=np.float32, empty=empty, **kwargs))
    out.index, out.columns = counts.index, counts.columns
    return out.astype(np.float32)


def aggregate_duplicate_genes(exp: pd.DataFrame) -> pd.DataFrame:
    """Sum the rows that share a symbol (one row per symbol, sorted, as archs4py).

    Examples
    --------
    >>> df = pd.DataFrame([[1, 2], [3, 4], [5, 6]], index=["B", "A", "B"], columns=["x", "y"])
    >>> aggregate_duplicate_genes(df).values.tolist()
    [[3, 4], [6, 8]]
    """
    from ..compute.genes import aggregate_duplicate_genes as _aggregate

    if exp.shape[1] == 0:  # no samples: nothing to sum, one row per symbol (as archs4py)
        return _no_samples(exp, aggregate=True)
    out = to_frame(_aggregate(to_dataarray(exp)))
    return out.sort_index()


def _no_samples(exp: pd.DataFrame, *, aggregate: bool) -> pd.DataFrame:
    """The answer for a frame without samples: every row passes any per-sample rule."""
    if not aggregate:
        return exp.copy()
    rows = pd.Index(sorted(set(exp.index)))
    return pd.DataFrame(index=rows, columns=exp.columns, dtype=np.uint64)


def filter_genes(
    exp: pd.DataFrame,
    readThreshold: int = 20,
    sampleThreshold: float = 0.02,
    deterministic: bool = True,
    aggregate: bool = True,
) -> pd.DataFrame:
    """Genes with more than ``readThreshold`` reads in at least ``sampleThreshold`` of samples.

    ``aggregate`` first sums duplicated symbols.  ``deterministic`` is accepted for
    compatibility and has no effect (nothing here is random).

    Examples
    --------
    >>> df = pd.DataFrame([[0, 0], [50, 0], [30, 40]], index=["A", "B", "C"], columns=["x", "y"])
    >>> filter_genes(df, readThreshold=20, sampleThreshold=0.5).index.tolist()
    ['B', 'C']
    """
    from ..compute.genes import filter_genes as _filter

    if exp.shape[1] == 0:  # 0 >= sampleThreshold x 0: every gene passes, as in archs4py
        return _no_samples(exp, aggregate=aggregate)
    arr = _filter(to_dataarray(exp), read_threshold=readThreshold,
                  sample_threshold=sampleThreshold, aggregate=aggregate)  # fmt: skip
    out = to_frame(arr)
    return out.sort_index() if aggregate else out


def ls(file: str | os.PathLike) -> None:
    """Print the groups and datasets of an ARCHS4 file (:func:`archs4x.ls`).

    Examples
    --------
    >>> from archs4x.datasets import example_file
    >>> ls(example_file())  # doctest: +ELLIPSIS
    data...
    """
    from ..listing import ls as _ls

    _ls(file)


def versions() -> list[str]:
    """The human gene-count releases, newest first, as archs4py lists them.

    From the catalog bundled with archs4x (:func:`archs4x.catalog.versions`, no network);
    that function also lists mouse, transcript and TPM files with URLs, sizes and SHA1s.

    Examples
    --------
    >>> versions()[:3]
    ['latest', '2.5', '2.4']
    """
    from ..catalog import versions as _versions

    return _versions("human", "gene")["version"].tolist()
