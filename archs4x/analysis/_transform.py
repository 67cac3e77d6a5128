"""The expression scale analyses work on, and the two layouts they stream over.

Transforms (``transform=``):

* ``"log_cpm"`` (default): ``log2(1 + counts * 1e6 / library size)`` per sample, the
  library size being the sum over every feature of the input.  Sample-local, so it is
  applied inside each task of the pass that uses it (no extra read).  A sample with no
  reads has no CPM: :class:`archs4x.EmptyLibraryError` at compute time, naming it (drop
  such samples with ``ds.archs4.qc_filter(min_library=1)``).
* ``"log_quantile"``: :func:`archs4x.quantile_normalize` with ``log=True`` (archs4py's
  ``log_quantile``) over the input samples: two more reads (target, then values).
* ``None``: the counts as they are (float64).

Layouts: *sample blocks* (every feature, a range of samples: the file's natural order,
one read of each chunk) for moments, cross-products and per-sample statistics; *gene
bands* (a range of features, every sample) for statistics that rank each gene across
samples (Spearman, Mann-Whitney).  On an ARCHS4 file a gene band is read straight from
the file (the reader builds band tasks, no shuffle in memory); on a gene-major Zarr copy
the bands are its chunks.
"""

from __future__ import annotations

from typing import Any

import dask.array as da
import numpy as np
import xarray as xr

from ..compute.normalize import quantile_normalize
from ..compute.validate import as_counts, check_block, counts_array, sample_labels
from ..dims import SAMPLE, feature_dim
from ..errors import EmptyLibraryError

__all__ = [
    "TRANSFORMS",
    "apply_transform",
    "check_transform",
    "gene_bands",
    "is_log",
    "sample_blocks",
]

TRANSFORMS = ("log_cpm", "log_quantile", None)

#: Bytes of float64 values in one gene band (all samples) at most, before rounding.
_BAND_BYTES = 64 * 2**20
#: Rows of one HDF5 chunk of an ARCHS4 file: bands are multiples of it when they can be.
_FILE_CHUNK_ROWS = 2000


def check_transform(transform: Any) -> None:
    if transform not in TRANSFORMS:
        raise ValueError(f"transform must be one of {TRANSFORMS}, got {transform!r}")


def is_log(transform: Any) -> bool:
    return transform in ("log_cpm", "log_quantile")


def apply_transform(
    block: np.ndarray,
    kind: str | None,
    labels: np.ndarray | None = None,
    rows: np.ndarray | None = None,
    lib: np.ndarray | None = None,
) -> np.ndarray:
    """``block`` (features x samples) on the analysis scale, float64, rows ``rows`` only.

    ``lib``: the library sizes of the block's samples when ``block`` holds only some
    features (gene bands); by default the column sums of ``block``.
    """
    check_block(block, "the analysis")
    part = block if rows is None else block[rows]
    if kind is None:
        return part.astype(np.float64)
    lib = block.sum(axis=0, dtype=np.float64) if lib is None else lib
    bad = ~(lib > 0)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        name = f"sample {labels[i]!r}" if labels is not None else "a sample"
        raise EmptyLibraryError(
            f"{name} has an empty library (0 reads): "
            "log-CPM is undefined; drop such samples first, e.g. with "
            "ds.archs4.qc_filter(min_library=1)"
        )
    return np.log2(1.0 + part * (1e6 / lib))


def sample_blocks(counts: Any, transform: Any) -> tuple[xr.DataArray, da.Array, str | None]:
    """``(arr, data, kind)``: the (feature, sample) counts, the array to stream over in
    sample blocks (every feature in one chunk), and the transform still to apply to each
    block with :func:`apply_transform` (``"log_quantile"`` is already applied)."""
    check_transform(transform)
    arr, _ = as_counts(counts)
    if arr.shape[1] == 0:
        raise ValueError("the counts have no samples")
    if transform == "log_quantile":
        return arr, quantile_normalize(arr, log=True).data, None
    return arr, arr.data, transform


def labels_row(arr: xr.DataArray, data: da.Array) -> da.Array:
    """Sample labels as a (1, n) array chunked like ``data``'s samples."""
    return sample_labels(arr.copy(data=data))


def _band_rows(n_rows: int, n_samples: int, band_bytes: int) -> int:
    rows = max(1, min(n_rows, band_bytes // max(1, 8 * n_samples)))
    if _FILE_CHUNK_ROWS <= rows < n_rows:
        rows -= rows % _FILE_CHUNK_ROWS
    return rows


def _band_block(block: np.ndarray, lib: np.ndarray, kind: str | None, labels: np.ndarray):
    return apply_transform(block, kind, labels[0], lib=None if lib is None else lib[0])


def gene_bands(
    counts: Any,
    transform: Any,
    rows: np.ndarray | None = None,
    *,
    band_bytes: int = _BAND_BYTES,
) -> tuple[xr.DataArray, da.Array]:
    """``(arr, bands)``: the (feature, sample) counts and the lazy float64 values of
    features ``rows`` (all by default) on the analysis scale, in bands of features with
    every sample in one chunk (each band <= ``band_bytes``).

    ``"log_cpm"`` takes the library sizes from a pass over all features first.
    """
    check_transform(transform)
    arr = counts_array(counts)
    feat = feature_dim(arr)
    arr = arr.transpose(feat, SAMPLE)
    if arr.shape[1] == 0:
        raise ValueError("the counts have no samples")
    if arr.chunks is None:
        arr = arr.chunk({feat: -1, SAMPLE: -1})
    sel = np.arange(arr.shape[0]) if rows is None else np.asarray(rows, dtype=np.int64)
    height = _band_rows(sel.size, arr.shape[1], band_bytes)
    if transform == "log_quantile":
        values = quantile_normalize(arr, log=True).data[sel]
        return arr, values.rechunk((height, -1))
    data = arr.data
    part = data if rows is None else data[sel]
    part = part.rechunk((height, -1))
    labels = da.from_array(np.asarray(arr[SAMPLE].values, dtype=object), chunks=-1)[None, :]
    if transform is None:
        return arr, part.map_blocks(lambda b: b.astype(np.float64), dtype=np.float64)
    lib = data.sum(axis=0, dtype=np.float64).rechunk(-1)[None, :]
    bands = da.map_blocks(_band_block, part, lib, transform, labels, dtype=np.float64)
    return arr, bands
