"""Queries: select samples and genes by metadata, and read metadata tables.

Every selection is a plain function ``f(ds, ...) -> Dataset`` made with ``ds.isel``, so
``counts`` stays lazy and reads only what is selected; the same functions are on the
``ds.archs4`` accessor.  Metadata is matched on a columnar (Arrow) cache of the file,
read by sample position, without asking Dask to compute.
"""

from ..errors import MissingIdsWarning
from ..storage.layout import SAMPLE_ID_FIELD
from .characteristics import parse_characteristics
from .charfields import characteristics, with_characteristics
from .columns import sample_column, sample_fields
from .facets import facets
from .fields import field_names
from .filters import filter, parse_filter
from .matching import match
from .select import (
    DEFAULT_FIELDS,
    Missing,
    genes,
    index,
    rand,
    remove_single_cell,
    samples,
    search,
    series,
)
from .tables import field, meta

__all__ = [
    "DEFAULT_FIELDS",
    "SAMPLE_ID_FIELD",
    "Missing",
    "MissingIdsWarning",
    "characteristics",
    "facets",
    "field",
    "field_names",
    "filter",
    "genes",
    "index",
    "match",
    "meta",
    "parse_characteristics",
    "parse_filter",
    "rand",
    "remove_single_cell",
    "sample_column",
    "sample_fields",
    "samples",
    "search",
    "series",
    "with_characteristics",
]
