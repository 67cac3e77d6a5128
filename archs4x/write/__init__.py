"""Write: Zarr conversion (plans, units, resume) and hand-offs to pandas and AnnData."""

from .interop import from_anndata, sample_table, to_anndata, to_pandas
from .zarr import default_compressor, to_zarr

__all__ = [
    "default_compressor",
    "from_anndata",
    "sample_table",
    "to_anndata",
    "to_pandas",
    "to_zarr",
]
