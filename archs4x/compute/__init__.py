"""Compute: normalization, TMM factors and gene operations, lazy and out of core.

Plain functions on a counts DataArray (or a Dataset's ``counts``) returning lazy results
that run on any Dask scheduler.
"""

from .genes import aggregate_duplicate_genes, expressed_genes, filter_genes
from .normalize import cpm, normalize, quantile_normalize
from .tmm import tmm_factors

__all__ = [
    "aggregate_duplicate_genes",
    "cpm",
    "expressed_genes",
    "filter_genes",
    "normalize",
    "quantile_normalize",
    "tmm_factors",
]
