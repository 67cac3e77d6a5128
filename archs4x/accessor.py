"""The ``ds.archs4`` accessor: archs4x's functions as methods of an :class:`xarray.Dataset`.

A thin front (composition, not subclassing): each method calls the plain function of the
same name with the Dataset as first argument and returns what it returns, so selections
chain (``ds.archs4.search("liver").archs4.rand(10)``) and stay lazy.  Methods are made
from the functions listed in :data:`METHODS`, with the functions' own signatures (minus
the Dataset): nothing is restated here.  To add a method, add its function to the list.
Importing this module registers the accessor.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import xarray as xr

from .analysis import coexpression, correlation, diffexp, qc, qc_filter, score_genesets
from .compute.genes import aggregate_duplicate_genes, expressed_genes, filter_genes
from .compute.normalize import normalize
from .compute.tmm import tmm_factors
from .embedding.similar import similar
from .query import charfields, filters, select, tables
from .query.facets import facets
from .write import interop, zarr

__all__ = ["METHODS", "Archs4Accessor"]

#: Every accessor method: ``ds.archs4.<name>(...)`` is ``function(ds, ...)``.
METHODS: dict[str, Callable[..., Any]] = {
    # selections and metadata (archs4x.query)
    "search": select.search,
    "samples": select.samples,
    "series": select.series,
    "rand": select.rand,
    "index": select.index,
    "remove_single_cell": select.remove_single_cell,
    "genes": select.genes,
    "meta": tables.meta,
    "field": tables.field,
    "filter": filters.filter,
    "facets": facets,
    "characteristics": charfields.characteristics,
    "with_characteristics": charfields.with_characteristics,
    # transforms (archs4x.compute)
    "normalize": normalize,
    "tmm_factors": tmm_factors,
    "filter_genes": filter_genes,
    "expressed_genes": expressed_genes,
    "aggregate_duplicate_genes": aggregate_duplicate_genes,
    # analyses (archs4x.analysis)
    "coexpression": coexpression,
    "correlation": correlation,
    "diffexp": diffexp,
    "qc": qc,
    "qc_filter": qc_filter,
    "score_genesets": score_genesets,
    # writers (archs4x.write)
    "to_zarr": zarr.to_zarr,
    "to_pandas": interop.to_pandas,
    "to_anndata": interop.to_anndata,
    # nearest samples in an embedding (archs4x.embedding)
    "similar": similar,
}


def _method(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    def method(self: Archs4Accessor, *args: Any, **kwargs: Any) -> Any:
        return func(self._ds, *args, **kwargs)

    public = func.__module__.rsplit(".", 1)[0]
    method.__name__ = method.__qualname__ = name
    method.__doc__ = (
        f":func:`{public}.{func.__name__}` with this Dataset as first argument: "
        f"``ds.archs4.{name}(...)`` is ``{func.__name__}(ds, ...)``.\n"
    )
    params = list(inspect.signature(func).parameters.values())[1:]
    self_param = inspect.Parameter("self", inspect.Parameter.POSITIONAL_ONLY)
    method.__signature__ = inspect.Signature([self_param, *params])  # type: ignore[attr-defined]
    return method


@xr.register_dataset_accessor("archs4")
class Archs4Accessor:
    """archs4x's queries, transforms and writers as methods of a Dataset.

    Examples
    --------
    >>> import archs4x
    >>> ds = archs4x.open_dataset(archs4x.datasets.example_file())
    >>> hits = ds.archs4.search("myoblast", remove_sc=True)
    >>> hits.archs4.meta(["title"]).shape[1]
    1
    >>> ds.archs4.samples(["GSM1000003", "GSM1000000"]).archs4.genes("ACTB").counts.shape
    (1, 2)
    """

    def __init__(self, ds: xr.Dataset) -> None:
        self._ds = ds


for _name, _func in METHODS.items():
    setattr(Archs4Accessor, _name, _method(_name, _func))
del _name, _func
