"""Dimension names used by every archs4x Dataset, in one place.

Gene-level files have the dimensions ``(gene, sample)``; transcript-level files
have ``(transcript, sample)``.  Functions that work on either find the *feature*
dimension with :func:`feature_dim`.
"""

from __future__ import annotations

from typing import Any

SAMPLE = "sample"
GENE = "gene"
TRANSCRIPT = "transcript"
FEATURE_DIMS = (GENE, TRANSCRIPT)
COUNTS = "counts"

__all__ = ["COUNTS", "FEATURE_DIMS", "GENE", "SAMPLE", "TRANSCRIPT", "feature_dim"]


def feature_dim(obj: Any) -> str:
    """Return the feature dimension (``"gene"`` or ``"transcript"``) of ``obj``.

    Parameters
    ----------
    obj : xarray.DataArray or xarray.Dataset
        An object with a ``sample`` dimension and one feature dimension.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> feature_dim(xr.DataArray(np.zeros((2, 3)), dims=("transcript", "sample")))
    'transcript'
    """
    for dim in obj.dims:
        if dim in FEATURE_DIMS:
            return dim
    raise ValueError(
        f"expected a dimension named one of {FEATURE_DIMS}, found dimensions {tuple(obj.dims)}"
    )
