"""``counts`` as a Dask array that knows which rows and columns of its source it holds.

:class:`Archs4Array` is a :class:`dask.array.Array` whose every task reads given rows
and columns of a counts source (an ARCHS4 file or an archs4x Zarr store) through that
source's chunk reader.  It also keeps those positions, and *selecting from it composes
them*: ``x[:, idx]``, ``x[rows, :]``, slices with any step, boolean masks and ints give a
new :class:`Archs4Array` whose graph reads exactly the selected positions, however many
selections were chained before.  xarray's ``isel``/``sel``, ``sortby``,
``where(..., drop=True)`` and the ``ds.archs4`` queries all select through
``__getitem__``, so a chain of them reads each needed chunk once and no other chunk.
``rechunk`` rebuilds the graph with the new chunks instead of adding a rechunk layer.

Anything else (arithmetic, reductions, ``map_blocks`` ...) returns an ordinary Dask
array built on top, exactly as for any other Dask array: no graph rewriting, no global
Dask configuration.  Tasks carry the source (a path or URL and its identity), never an
open file, so graphs pickle and run on any Dask scheduler.
"""

from __future__ import annotations

import math
from numbers import Integral
from typing import Any

import dask.array as da
import numpy as np
from dask.base import tokenize
from dask.highlevelgraph import HighLevelGraph

__all__ = ["TARGET_CHUNK_BYTES", "Archs4Array", "default_sample_chunk", "read_block"]

#: Bytes of counts in one Dask chunk when the caller does not choose (all rows per chunk).
TARGET_CHUNK_BYTES = 128 * 2**20


def default_sample_chunk(n_rows: int, itemsize: int = 4, n_samples: int | None = None) -> int:
    """Samples per Dask chunk: ~128 MiB of counts with all rows in the chunk.

    A 67,186-gene file gets 499 samples per chunk, so its 1,000,000 samples make about
    2,000 tasks; every chunk holds whole sample columns (normalisations need them).

    Examples
    --------
    >>> default_sample_chunk(67_186)
    499
    """
    k = max(1, TARGET_CHUNK_BYTES // max(1, n_rows * itemsize))
    return int(min(k, n_samples)) if n_samples else int(k)


def _compact(positions: np.ndarray) -> slice | np.ndarray:
    """A step-1 slice when the positions are one increasing run (small graphs)."""
    n = positions.size
    if n and positions[-1] - positions[0] == n - 1 and (n == 1 or np.all(np.diff(positions) == 1)):
        return slice(int(positions[0]), int(positions[-1]) + 1)
    return positions


def read_block(
    source: Any, rows: slice | np.ndarray, cols: slice | np.ndarray, dtype: Any = None
) -> np.ndarray:
    """The task of every :class:`Archs4Array` block: read ``rows`` x ``cols`` of ``source``."""
    block = source.counts_reader().read(rows, cols)
    return block if dtype is None else block.astype(dtype, copy=False)


def _read_tasks(name: str, source: Any, rows: np.ndarray, cols: np.ndarray,
                chunks: tuple[tuple[int, ...], tuple[int, ...]], cast: Any) -> dict:  # fmt: skip
    rb, cb = _boundaries(chunks[0]), _boundaries(chunks[1])
    row_parts = [_compact(rows[rb[i] : rb[i + 1]]) for i in range(len(chunks[0]))]
    col_parts = [_compact(cols[cb[j] : cb[j + 1]]) for j in range(len(chunks[1]))]
    return {
        (name, i, j): (read_block, source, rp, cp, cast)
        for i, rp in enumerate(row_parts)
        for j, cp in enumerate(col_parts)
    }


def _gather_plan(positions: np.ndarray, chunks: tuple[int, ...]):
    """None when no position is in two blocks; else how to read each once and gather.

    Returns ``(unique positions, their read chunks, maps)``: for every output block, a
    list of ``(read block, positions in the output block, positions in the read block)``.
    """
    if positions.size < 2 or len(chunks) < 2:
        return None
    block = np.repeat(np.arange(len(chunks)), chunks)
    uniq, inverse = np.unique(positions, return_inverse=True)
    if np.unique(positions * len(chunks) + block).size == uniq.size:
        return None
    read_chunks = _regular(max(chunks), uniq.size)
    read_block = np.repeat(np.arange(len(read_chunks)), read_chunks)
    local = np.arange(uniq.size) - _boundaries(read_chunks)[read_block]
    maps = []
    bounds = _boundaries(chunks)
    for i in range(len(chunks)):
        elems = inverse[bounds[i] : bounds[i + 1]]
        blocks = read_block[elems]
        maps.append([(int(b), np.flatnonzero(blocks == b), local[elems[blocks == b]])
                     for b in np.unique(blocks)])  # fmt: skip
    return uniq, read_chunks, maps


def _identity_maps(chunks: tuple[int, ...]) -> list:
    return [[(i, slice(None), slice(None))] for i in range(len(chunks))]


def _gather(parts: list, row_map: list, col_map: list, shape: tuple[int, int]) -> np.ndarray:
    """An output block made of pieces of read blocks (positions repeated across blocks)."""
    first = parts[0][0]
    out = np.empty(shape, dtype=first.dtype, order="F")
    for (_, out_rows, in_rows), row_parts in zip(row_map, parts, strict=True):
        for (_, out_cols, in_cols), block in zip(col_map, row_parts, strict=True):
            piece = block[in_rows][:, in_cols]
            if isinstance(out_rows, slice):
                out[out_rows, out_cols] = piece
            else:
                out[np.ix_(out_rows, out_cols if not isinstance(out_cols, slice)
                           else np.arange(shape[1]))] = piece  # fmt: skip
    return out


def _boundaries(chunks: tuple[int, ...]) -> np.ndarray:
    return np.cumsum((0, *chunks))


def _regular(size: int, n: int) -> tuple[int, ...]:
    if n == 0:
        return (0,)
    step = max(1, int(size))
    return tuple(min(step, n - s) for s in range(0, n, step))


#: One axis of an outer selection: a position, a slice or a 1-D int array of positions.
_AxisKey = int | slice | np.ndarray


class Archs4Array(da.Array):
    """A Dask array reading given rows and columns of a counts source.

    Parameters
    ----------
    source
        An object with ``counts_reader()`` (returning a reader with
        ``read(rows, cols)``), ``shape`` of the full counts, ``dtype`` and ``name``:
        :class:`archs4x.storage.Source` or an archs4x Zarr store.
    rows, cols : int arrays
        Positions in the source, in output order (repeats allowed).
    chunks : tuple of tuples, optional
        Dask chunks; default all rows x ~128 MiB of columns.

    Examples
    --------
    >>> import archs4x
    >>> ds = archs4x.open_dataset(archs4x.datasets.example_file())
    >>> x = ds.counts.data
    >>> type(x).__name__, x.shape
    ('Archs4Array', (4500, 400))
    >>> y = x[:, 10:200][:, [5, 1]][[3, 0]]
    >>> type(y).__name__, y.cols.tolist(), y.rows.tolist()
    ('Archs4Array', [15, 11], [3, 0])
    """

    source: Any  # a Source or an archs4x Zarr store (see above)
    rows: np.ndarray
    cols: np.ndarray

    def __new__(
        cls,
        source: Any,
        rows: np.ndarray,
        cols: np.ndarray,
        dtype: Any,
        chunks: tuple[tuple[int, ...], tuple[int, ...]] | None = None,
    ) -> Archs4Array:
        rows = np.asarray(rows, dtype=np.int64)
        cols = np.asarray(cols, dtype=np.int64)
        dtype = np.dtype(dtype)
        stored = np.dtype(source.counts_reader().dtype)
        cast = None if dtype == stored else dtype
        if chunks is None:
            width = default_sample_chunk(max(1, rows.size), dtype.itemsize)
            chunks = ((rows.size,), _regular(width, cols.size))
        chunks = (tuple(int(c) for c in chunks[0]), tuple(int(c) for c in chunks[1]))
        if sum(chunks[0]) != rows.size or sum(chunks[1]) != cols.size:
            raise ValueError(f"chunks {chunks} do not cover ({rows.size}, {cols.size})")
        name = "archs4-counts-" + tokenize(source, rows, cols, chunks, dtype.str)
        row_plan, col_plan = _gather_plan(rows, chunks[0]), _gather_plan(cols, chunks[1])
        if row_plan is None and col_plan is None:
            dsk = _read_tasks(name, source, rows, cols, chunks, cast)
        else:  # a position repeated in two blocks: read each once, then gather
            read_rows = rows if row_plan is None else row_plan[0]
            read_cols = cols if col_plan is None else col_plan[0]
            read_chunks = (chunks[0] if row_plan is None else row_plan[1],
                           chunks[1] if col_plan is None else col_plan[1])  # fmt: skip
            read_name = "archs4-read-" + tokenize(name)
            dsk = _read_tasks(read_name, source, read_rows, read_cols, read_chunks, cast)
            row_maps = _identity_maps(chunks[0]) if row_plan is None else row_plan[2]
            col_maps = _identity_maps(chunks[1]) if col_plan is None else col_plan[2]
            for i, rmap in enumerate(row_maps):
                for j, cmap in enumerate(col_maps):
                    parts = [[(read_name, a, b) for b, _, _ in cmap] for a, _, _ in rmap]
                    dsk[(name, i, j)] = (_gather, parts, rmap, cmap, (chunks[0][i], chunks[1][j]))
        graph = HighLevelGraph.from_collections(name, dsk, dependencies=())
        meta = np.empty((0, 0), dtype=dtype)
        self = super().__new__(cls, graph, name, chunks, meta=meta)
        self.source = source
        self.rows = rows
        self.cols = cols
        return self

    # -- dask arrays are immutable: copies are the array itself (keeps the positions) --
    def copy(self) -> Archs4Array:
        return self

    def __deepcopy__(self, memo: dict | None = None) -> Archs4Array:
        return self

    def __reduce__(self):
        return (_rebuild, (self.source, self.rows, self.cols, self.dtype.str, self.chunks))

    # -- materializing is one read (``np.asarray``, xarray's ``.values``) ---------------
    def __array__(self, dtype: Any = None, copy: Any = None, **kwargs: Any) -> np.ndarray:
        """The selection as NumPy: one read of its positions, no task graph.

        The reader reads each needed chunk once, in its own threads, straight into the
        result (no per-block copies, no concatenation), whatever the Dask chunks.
        """
        want = self.dtype if dtype is None else np.dtype(dtype)
        return read_block(self.source, _compact(self.rows), _compact(self.cols), want)

    # -- casts keep the positions ---------------------------------------------------------
    def astype(self, dtype: Any, **kwargs: Any) -> da.Array:
        """Cast while reading (later selections still read only what they select)."""
        dtype = np.dtype(dtype)
        if dtype == self.dtype:
            return self
        if kwargs.get("casting", "unsafe") != "unsafe" and not np.can_cast(
            self.dtype, dtype, casting=kwargs["casting"]
        ):
            return super().astype(dtype, **kwargs)
        return Archs4Array(self.source, self.rows, self.cols, dtype, self.chunks)

    def __array_function__(self, func: Any, types: Any, args: Any, kwargs: Any) -> Any:
        # ``where(mask, drop=True)`` keeps only samples where the mask holds, then applies
        # ``np.where`` with an all-True condition: that is a cast, which keeps positions
        if func is np.where and len(args) == 3 and not kwargs and args[1] is self:
            cond, other = args[0], args[2]
            if (isinstance(cond, np.ndarray) and cond.dtype == bool and cond.all()
                    and np.ndim(other) == 0 and np.broadcast_shapes(cond.shape, self.shape)
                    == self.shape):  # fmt: skip
                return self.astype(np.result_type(self.dtype, other))
        return super().__array_function__(func, types, args, kwargs)

    # -- selection composes positions ------------------------------------------------
    def __getitem__(self, index: Any) -> da.Array:
        key = self._outer_key(index)
        if key is None:
            return super().__getitem__(index)
        rows = self.rows[key[0]] if not isinstance(key[0], Integral) else self.rows[[key[0]]]
        cols = self.cols[key[1]] if not isinstance(key[1], Integral) else self.cols[[key[1]]]
        width = max(self.chunks[1]) if self.chunks[1] else 1
        height = max(self.chunks[0]) if self.chunks[0] else 1
        row_chunks = (rows.size,) if len(self.chunks[0]) == 1 else _regular(height, rows.size)
        chunks = (row_chunks, _regular(width, cols.size))
        out = Archs4Array(self.source, rows, cols, self.dtype, chunks)
        squeeze = tuple(0 if isinstance(k, Integral) else slice(None) for k in key)
        if any(isinstance(k, Integral) for k in key):
            return da.Array.__getitem__(out, squeeze)
        return out

    def _outer_key(self, index: Any) -> tuple[_AxisKey, _AxisKey] | None:
        """``index`` as (rows key, cols key) of ints, slices or 1-D int arrays, or None."""
        if not isinstance(index, tuple):
            index = (index,)
        if any(k is Ellipsis for k in index):
            i = next(i for i, k in enumerate(index) if k is Ellipsis)
            fill = (slice(None),) * (2 - (len(index) - 1))
            index = index[:i] + fill + index[i + 1 :]
        if len(index) == 1:
            index = (index[0], slice(None))
        if len(index) != 2:
            return None
        out: list[_AxisKey] = []
        arrays = 0
        for k, n in zip(index, self.shape, strict=True):
            if isinstance(k, slice):
                out.append(k)
            elif isinstance(k, Integral) and not isinstance(k, bool | np.bool_):
                k = int(k)
                if not -n <= k < n:
                    return None  # let dask raise its IndexError
                out.append(k % n)
            elif isinstance(k, list | np.ndarray) and not isinstance(k, da.Array):
                a = np.asarray(k)
                if a.ndim != 1:
                    return None
                if a.dtype == bool:
                    if a.size != n:
                        return None
                    a = np.flatnonzero(a)
                elif a.size == 0:
                    a = a.astype(np.int64)
                elif a.dtype.kind not in "iu":
                    return None
                a = a.astype(np.int64)
                if a.size and (a.min() < -n or a.max() >= n):
                    return None
                out.append(np.where(a < 0, a + n, a))
                arrays += 1
            else:
                return None
        if arrays > 1:
            return None  # numpy's pointwise semantics: dask decides (xarray goes per axis)
        return out[0], out[1]

    # -- rechunking rebuilds the graph ------------------------------------------------
    def rechunk(
        self,
        chunks: Any = "auto",
        threshold: Any = None,
        block_size_limit: Any = None,
        balance: bool = False,
        method: Any = None,
    ) -> da.Array:
        """Rechunk by building a new graph over the same positions (no rechunk layer)."""
        try:
            from dask.array.core import normalize_chunks

            if isinstance(chunks, dict):
                chunks = tuple(chunks.get(i, c) for i, c in enumerate(self.chunks))
            new = normalize_chunks(chunks, self.shape, dtype=self.dtype,
                                   previous_chunks=self.chunks,
                                   limit=block_size_limit)  # fmt: skip
        except (ValueError, TypeError, NotImplementedError):
            return super().rechunk(chunks, threshold, block_size_limit, balance, method)
        if any(math.isnan(c) for axis in new for c in axis):
            return super().rechunk(chunks, threshold, block_size_limit, balance, method)
        if new == self.chunks:
            return self
        return Archs4Array(self.source, self.rows, self.cols, self.dtype, new)


def _rebuild(source, rows, cols, dtype, chunks) -> Archs4Array:
    return Archs4Array(source, rows, cols, dtype, chunks)
