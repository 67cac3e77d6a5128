"""Hand-offs to other libraries, in one namespace: ``archs4x.interop.to_pydeseq2`` and the
pandas / AnnData converters (implemented in :mod:`archs4x.write.interop`).

Examples
--------
>>> import archs4x.interop
>>> archs4x.interop.to_pydeseq2.__module__
'archs4x.write.interop'
"""

from __future__ import annotations

from .write.interop import from_anndata, sample_table, to_anndata, to_pandas, to_pydeseq2

__all__ = ["from_anndata", "sample_table", "to_anndata", "to_pandas", "to_pydeseq2"]
