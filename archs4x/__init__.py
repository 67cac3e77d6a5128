"""archs4x: the ARCHS4 RNA-seq compendium as lazy, labelled, out-of-core arrays.

The flat public API; see the README for a tour.

Examples
--------
>>> import archs4x
>>> ds = archs4x.open_dataset(archs4x.datasets.example_file())
>>> hits = ds.archs4.search("myoblast", remove_sc=True)
>>> hits.sizes["sample"] > 0, hits.counts.dims
(True, ('gene', 'sample'))
"""

from __future__ import annotations

from . import accessor as _accessor  # registers ds.archs4
from . import align, catalog, compat, datasets, download, query
from . import pushdown as _pushdown
from .catalog import versions
from .dims import GENE, SAMPLE, TRANSCRIPT
from .errors import ChunkDecodeError, EmptyLibraryError, IncompleteZarrError, NotArchs4Error
from .genes import aggregate_duplicate_genes, expressed_genes, filter_genes
from .interop import from_anndata, sample_table, to_anndata, to_pandas
from .io import open_dataset
from .listing import ls
from .normalize import cpm, normalize, quantile_normalize, tmm_factors
from .query import (
    MissingIdsWarning,
    genes,
    index,
    meta,
    rand,
    remove_single_cell,
    samples,
    search,
    series,
)
from .zarr import open_zarr, to_zarr

__version__ = "0.1.0"

__all__ = [
    "GENE",
    "SAMPLE",
    "TRANSCRIPT",
    "ChunkDecodeError",
    "EmptyLibraryError",
    "IncompleteZarrError",
    "MissingIdsWarning",
    "NotArchs4Error",
    "__version__",
    "aggregate_duplicate_genes",
    "align",
    "catalog",
    "compat",
    "cpm",
    "datasets",
    "download",
    "expressed_genes",
    "filter_genes",
    "from_anndata",
    "genes",
    "index",
    "ls",
    "meta",
    "normalize",
    "open_dataset",
    "open_zarr",
    "quantile_normalize",
    "query",
    "rand",
    "remove_single_cell",
    "sample_table",
    "samples",
    "search",
    "series",
    "tmm_factors",
    "to_anndata",
    "to_pandas",
    "to_zarr",
    "versions",
]

_pushdown.enable()
del _accessor
