"""The ``ds.archs4`` accessor: ARCHS4 queries as methods of an :class:`xarray.Dataset`.

A thin front over :mod:`archs4x.query` (composition, not subclassing): each method calls
the function of the same name with the Dataset as first argument and returns what it
returns, so selections chain (``ds.archs4.search("liver").archs4.rand(10)``) and stay lazy.
Importing this module registers the accessor.

To add a method, define it on :class:`Archs4Accessor` as a one-line call of a plain
``f(ds, ...)`` function from the module that owns the idea.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import pandas as pd
import xarray as xr

from . import query

__all__ = ["Archs4Accessor"]


@xr.register_dataset_accessor("archs4")
class Archs4Accessor:
    """ARCHS4 queries on a Dataset opened by :func:`archs4x.open_dataset`.

    Examples
    --------
    >>> import archs4x, archs4x.accessor
    >>> ds = archs4x.open_dataset(archs4x.datasets.example_file())
    >>> hits = ds.archs4.search("myoblast", remove_sc=True)
    >>> hits.archs4.meta(["title"]).shape[1]
    1
    >>> ds.archs4.samples(["GSM1000003", "GSM1000000"]).archs4.genes("ACTB").counts.shape
    (1, 2)
    """

    def __init__(self, ds: xr.Dataset):
        self._ds = ds

    def search(
        self,
        term: str,
        fields: str | Sequence[str] = query.DEFAULT_FIELDS,
        *,
        regex: bool = True,
        case: bool = False,
        ignore_whitespace: bool = False,
        remove_sc: bool = False,
    ) -> xr.Dataset:
        """Samples whose metadata matches ``term``: :func:`archs4x.query.search`.

        Examples
        --------
        >>> import archs4x, archs4x.accessor
        >>> ds = archs4x.open_dataset(archs4x.datasets.example_file())
        >>> ds.archs4.search("myoblast").sizes["sample"]
        23
        """
        return query.search(self._ds, term, fields, regex=regex, case=case,
                            ignore_whitespace=ignore_whitespace, remove_sc=remove_sc)  # fmt: skip

    def samples(self, ids: str | Iterable[str], *, missing: query.Missing = "warn") -> xr.Dataset:
        """Samples by GSM id, in the order given: :func:`archs4x.query.samples`.

        Examples
        --------
        >>> import archs4x, archs4x.accessor
        >>> ds = archs4x.open_dataset(archs4x.datasets.example_file())
        >>> ds.archs4.samples(["GSM1000003", "GSM1000000"]).sample.values.tolist()
        ['GSM1000003', 'GSM1000000']
        """
        return query.samples(self._ds, ids, missing=missing)

    def series(self, gse: str | Iterable[str], *, missing: query.Missing = "warn") -> xr.Dataset:
        """Samples of GEO series, multi-series samples included: :func:`archs4x.query.series`.

        Examples
        --------
        >>> import archs4x, archs4x.accessor
        >>> ds = archs4x.open_dataset(archs4x.datasets.example_file())
        >>> ds.archs4.series("GSE10000").sizes["sample"] > 0
        True
        """
        return query.series(self._ds, gse, missing=missing)

    def rand(self, n: int, *, seed: int = 1, remove_sc: bool = False) -> xr.Dataset:
        """``n`` random samples with their own RNG: :func:`archs4x.query.rand`.

        Examples
        --------
        >>> import archs4x, archs4x.accessor
        >>> ds = archs4x.open_dataset(archs4x.datasets.example_file())
        >>> ds.archs4.rand(10, seed=3).sizes["sample"]
        10
        """
        return query.rand(self._ds, n, seed=seed, remove_sc=remove_sc)

    def index(self, sample_idx: Any, gene_idx: Any = None) -> xr.Dataset:
        """Samples (and features) by position, in the order given: :func:`archs4x.query.index`.

        Examples
        --------
        >>> import archs4x, archs4x.accessor
        >>> ds = archs4x.open_dataset(archs4x.datasets.example_file())
        >>> ds.archs4.index([5, 2]).counts.shape
        (4500, 2)
        """
        return query.index(self._ds, sample_idx, gene_idx)

    def remove_single_cell(self, threshold: float = 0.5) -> xr.Dataset:
        """Samples with a low single-cell probability: :func:`archs4x.query.remove_single_cell`.

        Examples
        --------
        >>> import archs4x, archs4x.accessor
        >>> ds = archs4x.open_dataset(archs4x.datasets.example_file())
        >>> bool((ds.archs4.remove_single_cell().singlecellprobability < 0.5).all())
        True
        """
        return query.remove_single_cell(self._ds, threshold)

    def genes(self, symbols: str | Iterable[str], *, missing: query.Missing = "warn") -> xr.Dataset:
        """Every gene row carrying each symbol: :func:`archs4x.query.genes`.

        Examples
        --------
        >>> import archs4x, archs4x.accessor
        >>> ds = archs4x.open_dataset(archs4x.datasets.example_file())
        >>> ds.archs4.genes(["GAPDH", "ACTB"]).symbol.values.tolist()
        ['GAPDH', 'ACTB']
        """
        return query.genes(self._ds, symbols, missing=missing)

    def meta(self, fields: str | Sequence[str] | None = None) -> pd.DataFrame:
        """Sample metadata as a DataFrame: :func:`archs4x.query.meta`.

        Examples
        --------
        >>> import archs4x, archs4x.accessor
        >>> ds = archs4x.open_dataset(archs4x.datasets.example_file())
        >>> ds.archs4.index([0]).archs4.meta(["title"]).shape
        (1, 1)
        """
        return query.meta(self._ds, fields)

    def field(self, name: str) -> pd.Series:
        """One sample, gene or transcript field as a Series: :func:`archs4x.query.field`.

        Examples
        --------
        >>> import archs4x, archs4x.accessor
        >>> ds = archs4x.open_dataset(archs4x.datasets.example_file())
        >>> ds.archs4.field("geo_accession").iloc[0]
        'GSM1000000'
        """
        return query.field(self._ds, name)
