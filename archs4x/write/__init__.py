"""Write: Zarr conversion (plans, units, resume) and hand-offs to pandas and AnnData."""

from .interop import from_anndata, sample_table, to_anndata, to_pandas
from .verify import VerifyReport, verify_zarr
from .zarr import default_compressor, to_zarr

__all__ = [
    "VerifyReport",
    "default_compressor",
    "from_anndata",
    "sample_table",
    "to_anndata",
    "to_pandas",
    "to_zarr",
    "verify_zarr",
]
