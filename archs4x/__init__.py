"""archs4x: the ARCHS4 RNA-seq compendium as lazy, labelled, out-of-core arrays.

The flat public API; see the README for a tour.  Importing archs4x registers the
``ds.archs4`` accessor and changes nothing else: no Dask, fsspec or warnings settings.

Examples
--------
>>> import archs4x
>>> ds = archs4x.open_dataset(archs4x.datasets.example_file())
>>> hits = ds.archs4.search("myoblast", remove_sc=True)
>>> hits.sizes["sample"] > 0, hits.counts.dims
(True, ('gene', 'sample'))
"""

from __future__ import annotations

from . import accessor, align, catalog, compat, datasets, download, embedding, interop, query
from ._options import get_options, set_options
from .analysis import coexpression, correlation, diffexp, qc, qc_filter, score_genesets
from .backends import open_dataset
from .backends.zarr import open_zarr
from .catalog import versions
from .compute import (
    aggregate_duplicate_genes,
    cpm,
    expressed_genes,
    filter_genes,
    normalize,
    quantile_normalize,
    tmm_factors,
)
from .dims import GENE, SAMPLE, TRANSCRIPT
from .errors import (
    ChunkDecodeError,
    ChunkReadError,
    EmptyLibraryError,
    FileChangedError,
    IncompleteZarrError,
    MissingIdsWarning,
    NotArchs4Error,
    RegexTimeoutError,
    StoreIntegrityError,
)
from .listing import ls
from .query import (
    characteristics,
    facets,
    filter,
    genes,
    index,
    meta,
    rand,
    remove_single_cell,
    samples,
    search,
    series,
    with_characteristics,
)
from .storage.caches import clear_caches
from .write import from_anndata, sample_table, to_anndata, to_pandas, to_zarr, verify_zarr

__version__ = "0.2.0"

__all__ = [
    "GENE",
    "SAMPLE",
    "TRANSCRIPT",
    "ChunkDecodeError",
    "ChunkReadError",
    "EmptyLibraryError",
    "FileChangedError",
    "IncompleteZarrError",
    "MissingIdsWarning",
    "NotArchs4Error",
    "RegexTimeoutError",
    "StoreIntegrityError",
    "__version__",
    "accessor",
    "aggregate_duplicate_genes",
    "align",
    "catalog",
    "characteristics",
    "clear_caches",
    "coexpression",
    "compat",
    "correlation",
    "cpm",
    "datasets",
    "diffexp",
    "download",
    "embedding",
    "expressed_genes",
    "facets",
    "filter",
    "filter_genes",
    "from_anndata",
    "genes",
    "get_options",
    "index",
    "interop",
    "ls",
    "meta",
    "normalize",
    "open_dataset",
    "open_zarr",
    "qc",
    "qc_filter",
    "quantile_normalize",
    "query",
    "rand",
    "remove_single_cell",
    "sample_table",
    "samples",
    "score_genesets",
    "search",
    "series",
    "set_options",
    "tmm_factors",
    "to_anndata",
    "to_pandas",
    "to_zarr",
    "verify_zarr",
    "versions",
    "with_characteristics",
]
