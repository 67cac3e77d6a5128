"""Multi-pass, out-of-core Dask graphs over a counts matrix.

Normalizations such as quantile and TMM need a statistic of *all* samples (a target
distribution, a reference sample) before any output column can be written.  Built
naively, such a graph shares each input block between the statistic and the output, and
Dask must then keep every block in memory until the statistic is ready: the whole matrix.

:func:`reread` gives a *fresh copy* of the input graph (new keys, via
:func:`dask.graph_manipulation.bind`) whose reads start only after the statistics it
depends on are computed.  Each pass then streams over the samples in bounded memory; the
price is one more read of the input per pass, which is what out of core means.

:func:`as_counts` puts any (feature, sample) DataArray into the shape the passes expect:
feature dimension first, Dask-backed, all features in one chunk.
"""

from __future__ import annotations

import uuid
from typing import Any

import dask.array as da
import numpy as np
import xarray as xr
from dask._task_spec import Task, TaskRef, convert_legacy_graph
from dask.base import tokenize
from dask.graph_manipulation import checkpoint
from dask.highlevelgraph import HighLevelGraph

from .dims import COUNTS, SAMPLE, feature_dim
from .errors import EmptyLibraryError

__all__ = [
    "EmptyLibraryError",
    "as_counts",
    "check_block",
    "counts_array",
    "empty_library_error",
    "reread",
    "restore",
    "sample_labels",
]

#: Sample chunk used when a NumPy-backed input is made lazy (~128 MiB of float64).
_TARGET_CHUNK_BYTES = 128 * 2**20


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
    if counts.chunks is None:
        width = -1 if one_block else max(1, _TARGET_CHUNK_BYTES // max(1, 8 * n_feat))
        # a random token: tokenizing (hashing) a large in-memory array costs more than using it
        counts = counts.chunk({feat: -1, SAMPLE: width}, token=uuid.uuid4().hex)
    elif len(counts.chunks[0]) > 1:
        counts = counts.chunk({feat: -1})
    return counts, feat


def _first(value: Any, *_after: Any) -> Any:
    return value


_first.passthrough = True  # archs4x.pushdown sees through it to the array it gates


def _renamed(key: Any, token: str) -> Any:
    if isinstance(key, tuple):
        return (f"{key[0]}-reread-{token}", *key[1:])
    return f"{key}-reread-{token}"


def reread(data: da.Array, *after: Any) -> da.Array:
    """A fresh copy of ``data``'s whole graph whose reads start after ``after`` are computed.

    Every key of ``data``'s graph is renamed (so no task, in particular no read, is shared
    with another pass) and every task without dependencies waits for a checkpoint of
    ``after``.  (:func:`dask.graph_manipulation.bind` keeps the layers the parents share
    with ``data``, e.g. the source blocks of a sample selection, which would then stay in
    memory between passes.)

    Examples
    --------
    >>> import dask.array as da
    >>> x = da.ones((4, 6), chunks=(4, 2))
    >>> total = x.sum()
    >>> y = reread(x, total)
    >>> y.name != x.name, float((y / total).sum().compute())
    (True, 1.0)
    """
    gate = checkpoint(*after)
    token = tokenize(data.name, gate.key)
    graph = convert_legacy_graph(dict(data.__dask_graph__()))
    subs = {key: _renamed(key, token) for key in graph}
    new: dict = {}
    for key, node in graph.items():
        node = node.substitute(subs, key=subs[key])
        if not node.dependencies:
            node = Task(subs[key], _first, node, TaskRef(gate.key))
        new[subs[key]] = node
    name = _renamed(data.name, token)
    hlg = HighLevelGraph.from_collections(name, new, dependencies=[gate])
    return da.Array(hlg, name, data.chunks, meta=data._meta)


def restore(
    result: da.Array, like: xr.DataArray, original: xr.DataArray, attrs: dict
) -> xr.DataArray:
    """Wrap ``result`` (laid out like ``like``) with its coords, in ``original``'s dim order."""
    out = xr.DataArray(result, dims=like.dims, coords=like.coords, name=like.name, attrs=attrs)
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
    return da.from_array(labels, chunks=(arr.chunks[1],))[None, :]


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
