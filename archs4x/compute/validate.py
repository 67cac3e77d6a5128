"""Validating a counts matrix and shaping it for the out-of-core passes.

Every compute function starts with :func:`counts_array` (one place that says what a
counts matrix is) or :func:`as_counts` (the same, shaped for the passes: feature
dimension first, Dask-backed, all features in one chunk), and reports compute-time
problems with :func:`check_block` and :func:`empty_library_error`, naming the sample.
"""

from __future__ import annotations

import uuid
from typing import Any, cast

import dask.array as da
import numpy as np
import xarray as xr

from ..backends.counts import TARGET_CHUNK_BYTES
from ..dims import COUNTS, SAMPLE, feature_dim
from ..errors import EmptyLibraryError

__all__ = [
    "as_counts",
    "check_block",
    "counts_array",
    "empty_library_error",
    "restore",
    "sample_labels",
]


def counts_array(counts: Any) -> xr.DataArray:
    """The counts DataArray of ``counts`` (a Dataset's ``counts``), validated.

    Raises ``ValueError`` for a Dataset without ``counts`` or an array without a
    ``sample`` and a feature dimension, ``TypeError`` for anything else.

    Examples
    --------
    >>> import archs4x
    >>> ds = archs4x.open_dataset(archs4x.datasets.example_file())
    >>> counts_array(ds).name
    'counts'
    """
    if isinstance(counts, xr.Dataset):
        if COUNTS not in counts:
            raise ValueError(f"the Dataset has no {COUNTS!r} variable")
        counts = counts[COUNTS]
    if not isinstance(counts, xr.DataArray):
        raise TypeError(f"expected an xarray DataArray or Dataset, got {type(counts).__name__}")
    feature_dim(counts)  # raises, naming the accepted feature dimensions
    if SAMPLE not in counts.dims:
        raise ValueError(f"expected a {SAMPLE!r} dimension, found {tuple(counts.dims)}")
    return counts


def as_counts(counts: Any, *, one_block: bool = False) -> tuple[xr.DataArray, str]:
    """Return ``counts`` as a (feature, sample) Dask-backed DataArray with one feature chunk.

    A Dataset is replaced by its ``counts`` variable.  NumPy-backed inputs are chunked
    along ``sample`` (or kept as one block with ``one_block``, for element-wise methods
    where splitting an in-memory matrix only adds the cost of reassembling it); a feature
    dimension split over several chunks is merged into one (sorting and ranking need
    whole columns).

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> arr, feat = as_counts(xr.DataArray(np.ones((3, 4)), dims=("sample", "gene")))
    >>> feat, arr.dims, arr.chunks
    ('gene', ('gene', 'sample'), ((4,), (3,)))
    """
    counts = counts_array(counts)
    feat = feature_dim(counts)
    if counts.ndim != 2 or SAMPLE not in counts.dims:
        raise ValueError(
            f"expected a 2-D array with dimensions ({feat!r}, {SAMPLE!r}), "
            f"found {tuple(counts.dims)}"
        )
    dtype = counts.dtype
    if dtype.kind not in "iuf":
        raise TypeError(f"counts must be numeric (integer or float), got dtype {dtype}")
    counts = counts.transpose(feat, SAMPLE)
    n_feat = counts.sizes[feat]
    if counts.chunks is None:  # blocks of ~128 MiB of float64
        width = -1 if one_block else max(1, TARGET_CHUNK_BYTES // max(1, 8 * n_feat))
        # a random token: tokenizing (hashing) a large in-memory array costs more than using it
        counts = counts.chunk({feat: -1, SAMPLE: width}, token=uuid.uuid4().hex)
    elif len(counts.chunks[0]) > 1:
        counts = counts.chunk({feat: -1})
    return counts, feat


def restore(
    result: da.Array, like: xr.DataArray, original: xr.DataArray | xr.Dataset, attrs: dict
) -> xr.DataArray:
    """Wrap ``result`` (laid out like ``like``) with its coords, in ``original``'s dim order.

    The coordinates are shared, not copied: ``xr.DataArray(..., coords=like.coords)``
    would deep-copy every one, which for the sample metadata of a large selection costs
    more than normalizing it.
    """
    out = like.copy(deep=False, data=result)
    out.attrs = attrs
    out.encoding = {}  # the input's on-disk encoding (uint32, its chunks) is not the result's
    if isinstance(original, xr.DataArray):
        out = out.transpose(*original.dims)
    return out


def check_block(block: np.ndarray, what: str, *, negative: bool = False) -> None:
    """Raise ``ValueError`` if a block holds NaN or infinities (or, unless ``negative``,
    values below zero).  Runs inside tasks, so the error surfaces at compute time."""
    if block.dtype.kind == "u" or block.size == 0:
        return
    if block.dtype.kind == "f" and not np.isfinite(block).all():
        raise ValueError(f"{what}: the input contains NaN or infinite values")
    if not negative and block.min() < 0:
        raise ValueError(f"{what}: counts contain negative values")


def sample_labels(arr: xr.DataArray) -> da.Array:
    """The sample labels (or positions) as a (1, n_samples) array chunked like ``arr``.

    Passed to block functions so that compute-time errors can name the sample.
    """
    index = arr.indexes.get(SAMPLE)
    labels = np.asarray(index, dtype=object) if index is not None else np.arange(arr.shape[1])
    chunks = cast("tuple[tuple[int, ...], ...]", arr.chunks)  # Dask-backed: chunks are known
    return da.from_array(labels, chunks=(chunks[1],))[None, :]


def empty_library_error(what: str, lib: np.ndarray, labels: np.ndarray, block_info: Any) -> None:
    """Raise :class:`EmptyLibraryError` naming the first sample of a block with ``lib <= 0``."""
    bad = np.flatnonzero(~(lib > 0))
    if bad.size:
        start = block_info[0]["array-location"][1][0] if block_info else 0
        i = int(bad[0])
        raise EmptyLibraryError(
            f"sample {labels[0, i]!r} (position {start + i}) has an empty library (0 reads): "
            f"{what} is undefined; drop it, or pass empty='nan' to get NaN for such samples"
        )
