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

    # -- transforms and writers: the plain functions, with this Dataset's counts --------
    def normalize(self, method: str = "log_quantile", **options: Any) -> xr.DataArray:
        """Lazily normalized counts: :func:`archs4x.normalize`.

        Examples
        --------
        >>> import archs4x
        >>> ds = archs4x.open_dataset(archs4x.datasets.example_file())
        >>> norm = ds.archs4.index([0, 1]).archs4.normalize("cpm", empty="nan")
        >>> norm.dims, round(float(norm.sum("gene")[0]))
        (('gene', 'sample'), 1000000)
        """
        from .normalize import normalize

        return normalize(self._ds, method, **options)

    def tmm_factors(self, **options: Any) -> xr.DataArray:
        """edgeR TMM normalization factors of the samples: :func:`archs4x.tmm_factors`.

        Examples
        --------
        >>> import archs4x
        >>> ds = archs4x.open_dataset(archs4x.datasets.example_file())
        >>> ds.archs4.remove_single_cell().archs4.index(range(5)).archs4.tmm_factors().sizes
        Frozen({'sample': 5})
        """
        from .tmm import tmm_factors

        return tmm_factors(self._ds, **options)

    def filter_genes(
        self, read_threshold: float = 20, sample_threshold: float = 0.02, aggregate: bool = True
    ) -> xr.DataArray:
        """Counts of the well-expressed genes: :func:`archs4x.filter_genes`.

        Examples
        --------
        >>> import archs4x
        >>> ds = archs4x.open_dataset(archs4x.datasets.example_file())
        >>> kept = ds.archs4.rand(50).archs4.filter_genes(read_threshold=20)
        >>> 0 < kept.sizes["gene"] < ds.sizes["gene"]
        True
        """
        from .genes import filter_genes

        return filter_genes(self._ds, read_threshold, sample_threshold, aggregate)

    def aggregate_duplicate_genes(self) -> xr.DataArray:
        """Counts with rows sharing a symbol summed: :func:`archs4x.aggregate_duplicate_genes`.

        Examples
        --------
        >>> import archs4x
        >>> ds = archs4x.open_dataset(archs4x.datasets.example_file())
        >>> agg = ds.archs4.index([0]).archs4.aggregate_duplicate_genes()
        >>> agg.sizes["gene"] == len(set(ds.symbol.values))
        True
        """
        from .genes import aggregate_duplicate_genes

        return aggregate_duplicate_genes(self._ds)

    def to_zarr(self, store: Any, **options: Any) -> str:
        """Write this Dataset (or selection) to Zarr: :func:`archs4x.to_zarr`.

        Examples
        --------
        >>> import archs4x, tempfile, os
        >>> ds = archs4x.open_dataset(archs4x.datasets.example_file())
        >>> out = ds.archs4.index([3, 1]).archs4.to_zarr(os.path.join(tempfile.mkdtemp(), "x.zarr"))
        >>> archs4x.open_zarr(out).sizes["sample"]
        2
        """
        from .zarr import to_zarr

        return to_zarr(self._ds, store, **options)

    def to_pandas(self, index: str | None = None) -> pd.DataFrame:
        """Counts as a genes x samples DataFrame (computed): :func:`archs4x.to_pandas`.

        Examples
        --------
        >>> import archs4x
        >>> ds = archs4x.open_dataset(archs4x.datasets.example_file())
        >>> ds.archs4.index([0, 1]).archs4.to_pandas(index="symbol").shape
        (4500, 2)
        """
        from .interop import to_pandas

        return to_pandas(self._ds, index=index)

    def to_anndata(self, *, lazy: bool = False):
        """An AnnData (samples x genes) with the metadata: :func:`archs4x.to_anndata`.

        Examples
        --------
        >>> import archs4x
        >>> ds = archs4x.open_dataset(archs4x.datasets.example_file())
        >>> ds.archs4.index([0, 1, 2]).archs4.to_anndata().shape
        (3, 4500)
        """
        from .interop import to_anndata

        return to_anndata(self._ds, lazy=lazy)
