"""The fast chunk reader for ``data/expression``.

HDF5 serialises every call, including its own decompression, so threads around plain
h5py reads gain nothing, and h5py's fancy indexing over many columns is slow.  When a
dataset's filter pipeline is plain deflate (optionally after shuffle), this reader
fetches the raw chunks with ``read_direct_chunk`` (one cheap call each), then inflates
them with libdeflate in a thread pool (it releases the GIL) and scatters them into the
output.  Every chunk a selection needs is read exactly once; the filter mask of every
chunk is honoured; a chunk that fails to decode raises :class:`ChunkDecodeError`
naming the dataset and chunk.  Other filter pipelines fall back to h5py hyperslab
reads, still one per needed chunk block.
"""

from __future__ import annotations

import math
import os
import threading
import zlib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import h5py
import numpy as np

from .errors import ChunkDecodeError

try:  # libdeflate: the fastest inflate on PyPI, releases the GIL
    from deflate import DeflateError as _DeflateError
    from deflate import zlib_decompress as _libdeflate_inflate
except ImportError:  # pragma: no cover - deflate is a core dependency
    _libdeflate_inflate = None
    _DeflateError = zlib.error

__all__ = [
    "ChunkReader",
    "FilterPlan",
    "Selection",
    "decode_chunk",
    "filter_plan",
    "normalize_selection",
]

H5Z_FILTER_DEFLATE = 1
H5Z_FILTER_SHUFFLE = 2
_SUPPORTED = {H5Z_FILTER_DEFLATE, H5Z_FILTER_SHUFFLE}

Selection = slice | int | Sequence[int] | np.ndarray

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _thread_pool() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            n = int(os.environ.get("ARCHS4X_READ_THREADS", 0)) or max(2, os.cpu_count() or 2)
            _pool = ThreadPoolExecutor(n, thread_name_prefix="archs4x-inflate")
        return _pool


@dataclass(frozen=True)
class FilterPlan:
    """The filter pipeline of a dataset, in the order HDF5 applies it when writing."""

    filters: tuple[int, ...]
    direct: bool  # True when this module can decode the raw chunks itself

    @property
    def description(self) -> str:
        names = {H5Z_FILTER_DEFLATE: "deflate", H5Z_FILTER_SHUFFLE: "shuffle"}
        return "+".join(names.get(f, f"filter{f}") for f in self.filters) or "none"


def filter_plan(dset: h5py.Dataset) -> FilterPlan:
    """Read the filter pipeline of ``dset`` from the file (never assume it).

    Examples
    --------
    >>> from archs4x.datasets import example_file
    >>> from archs4x.files import open_h5
    >>> filter_plan(open_h5(example_file())["data/expression"])
    FilterPlan(filters=(1,), direct=True)"""
    if dset.chunks is None:
        return FilterPlan(filters=(), direct=False)
    plist = dset.id.get_create_plist()
    filters = tuple(int(plist.get_filter(i)[0]) for i in range(plist.get_nfilters()))
    return FilterPlan(filters=filters, direct=set(filters) <= _SUPPORTED)


def normalize_selection(sel: Selection, n: int) -> np.ndarray:
    """Turn an int, slice or integer sequence into an int64 index array within ``[0, n)``.

    Examples
    --------
    >>> normalize_selection(slice(1, 7, 2), 10).tolist(), normalize_selection([-1, 0], 10).tolist()
    ([1, 3, 5], [9, 0])"""
    if isinstance(sel, slice):
        return np.arange(n, dtype=np.int64)[sel]
    idx = np.asarray(sel)
    if idx.dtype == bool:
        if idx.shape != (n,):
            raise IndexError(f"boolean selection of length {idx.shape} for axis of length {n}")
        return np.flatnonzero(idx).astype(np.int64)
    idx = np.atleast_1d(idx).astype(np.int64, copy=False)
    if idx.ndim != 1:
        raise IndexError("selections must be one-dimensional")
    idx = np.where(idx < 0, idx + n, idx)
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        raise IndexError(f"index out of range for axis of length {n}")
    return idx


def _inflate(data: bytes, nbytes: int) -> bytes:
    if _libdeflate_inflate is not None:
        return _libdeflate_inflate(data, nbytes)
    return zlib.decompress(data)  # pragma: no cover


def _unshuffle(data: bytes, itemsize: int) -> bytes:
    if itemsize == 1:
        return data
    a = np.frombuffer(data, dtype=np.uint8)
    return a.reshape(itemsize, -1).T.tobytes()


def decode_chunk(
    raw: bytes,
    mask: int,
    plan: FilterPlan,
    dtype: np.dtype,
    chunks: tuple[int, ...],
    *,
    where: str | Callable[[], str] = "chunk",
    nbytes: int | None = None,
) -> np.ndarray:
    """Decode the stored bytes of one chunk into an array of shape ``chunks``.

    The filter pipeline is undone in reverse; bit ``i`` of ``mask`` means filter ``i``
    was skipped for this chunk.  Anything that fails to decode, or decodes to the wrong
    size, raises :class:`ChunkDecodeError` (prefixed with ``where``, a string or a
    function making it: this runs once per chunk, so the message is built only on error).

    Examples
    --------
    >>> import zlib, numpy as np
    >>> a = np.arange(6, dtype="<u4").reshape(3, 2)
    >>> plan = FilterPlan(filters=(H5Z_FILTER_DEFLATE,), direct=True)
    >>> decode_chunk(zlib.compress(a.tobytes()), 0, plan, a.dtype, (3, 2)).tolist()
    [[0, 1], [2, 3], [4, 5]]
    """
    if nbytes is None:
        nbytes = math.prod(chunks) * dtype.itemsize
    data = raw
    try:
        for i in reversed(range(len(plan.filters))):
            if mask & (1 << i):
                continue
            code = plan.filters[i]
            if code == H5Z_FILTER_DEFLATE:
                data = _inflate(data, nbytes)
            elif code == H5Z_FILTER_SHUFFLE:
                data = _unshuffle(data, dtype.itemsize)
    except (_DeflateError, zlib.error, ValueError) as exc:
        where = where() if callable(where) else where
        raise ChunkDecodeError(f"{where} failed to decode ({plan.description}): {exc}") from exc
    if len(data) != nbytes:
        where = where() if callable(where) else where
        raise ChunkDecodeError(f"{where} decoded to {len(data)} bytes, expected {nbytes}")
    return np.frombuffer(data, dtype=dtype).reshape(chunks)


class ChunkReader:
    """Read any outer selection of a chunked 2-D HDF5 dataset, one chunk at a time.

    Parameters
    ----------
    dset : h5py.Dataset
        A 2-D chunked dataset (``data/expression``).

    Examples
    --------
    >>> import numpy as np
    >>> from archs4x.datasets import example_file
    >>> from archs4x.files import open_h5
    >>> dset = open_h5(example_file())["data/expression"]
    >>> reader = ChunkReader(dset)
    >>> block = reader.read(slice(None), [5, 1, 5])
    >>> bool((block == dset[:, [1, 5]][:, [1, 0, 1]]).all())
    True
    """

    def __del__(self) -> None:
        if self._fd is not None and self._fd_pid == os.getpid():
            try:
                os.close(self._fd)
            except OSError:
                pass

    def __init__(self, dset: h5py.Dataset):
        if dset.ndim != 2:
            raise ValueError(f"{dset.name}: expected a 2-D dataset, got shape {dset.shape}")
        self.dset = dset
        self.name = f"{dset.file.filename}:{dset.name}"
        self.shape = tuple(int(s) for s in dset.shape)
        self.dtype = np.dtype(dset.dtype).newbyteorder("=")
        self._file_dtype = np.dtype(dset.dtype)
        # Contiguous datasets are read by the h5py path in blocks of one column.
        self.chunks = tuple(int(c) for c in (dset.chunks or (dset.shape[0], 1)))
        self.plan = filter_plan(dset)
        self._chunk_nbytes = int(np.prod(self.chunks)) * self._file_dtype.itemsize
        fill = dset.fillvalue
        self._fill = 0 if fill is None else fill
        self._count_lock = threading.Lock()
        self.chunks_read = 0
        # Local files: chunk byte offsets (chunkindex) let reads use os.pread.
        self._local_path = (
            dset.file.filename
            if dset.file.driver == "sec2" and os.path.isfile(dset.file.filename)
            else None
        )
        self._index = None
        self._fd: int | None = None
        self._fd_pid = -1

    # -- raw chunk access -------------------------------------------------
    def _prefetch(self, row_chunks: np.ndarray, col_chunks: np.ndarray) -> dict | None:
        """Fetch the raw bytes of every chunk a read needs at once (None: read one by one).

        Subclasses that read over a network (:mod:`archs4x.remote`) return a dict mapping
        chunk offsets ``(r0, c0)`` to ``(filter_mask, raw_bytes)``, or to None for an
        unallocated chunk.
        """
        return None

    #: Files with at most this many chunks get their byte-offset index at the first read
    #: (~1.5 µs per chunk); larger ones at the first read needing this many chunks.
    INDEX_EAGER_CHUNKS = 4_000_000
    INDEX_MIN_READ_CHUNKS = 100_000

    def _maybe_index(self, n_needed: int) -> None:
        """Load (or build and cache) the byte-offset index when it pays off."""
        if self._index is not None or self._local_path is None or not self.plan.direct:
            return
        from .chunkindex import cached_index

        total = math.prod(-(-s // c) for s, c in zip(self.shape, self.chunks, strict=True))
        build = total <= self.INDEX_EAGER_CHUNKS or n_needed >= self.INDEX_MIN_READ_CHUNKS
        with self._count_lock:
            if self._index is None:
                self._index = cached_index(self._local_path, self.dset, build=build)

    def _pread(self, offset: int, size: int) -> bytes:
        if self._fd is None or self._fd_pid != os.getpid():
            self._fd = os.open(self._local_path, os.O_RDONLY)
            self._fd_pid = os.getpid()
        data = os.pread(self._fd, size, offset)
        if len(data) != size:
            raise OSError(f"short read: {len(data)} of {size} bytes at offset {offset}")
        return data

    def _decode(self, raw: bytes, mask: int, offset: tuple[int, int]) -> np.ndarray:
        return decode_chunk(raw, mask, self.plan, self._file_dtype, self.chunks,
                            where=lambda: f"{self.name}: chunk at offset {offset}",
                            nbytes=self._chunk_nbytes)  # fmt: skip

    def _fill_chunk(self) -> np.ndarray:
        return np.full(self.chunks, self._fill, dtype=self._file_dtype)

    def _indexed_chunk(self, offset: tuple[int, int], byte_offset: int, size: int, mask: int):
        """One chunk through the byte-offset index: ``os.pread`` + decode."""
        if byte_offset < 0:  # never written: the fill value
            return self._fill_chunk()
        try:
            raw = self._pread(byte_offset, size)
        except OSError as exc:
            raise ChunkDecodeError(
                f"{self.name}: chunk at offset {offset} could not be read: {exc}"
            ) from exc
        return self._decode(raw, mask, offset)

    def _raw_chunk(self, r0: int, c0: int, prefetched: dict | None = None) -> np.ndarray:
        """Return one decoded chunk as a (chunk_rows, chunk_cols) array."""
        offset = (r0, c0)
        if prefetched is not None:
            got = prefetched[offset]
            return self._fill_chunk() if got is None else self._decode(got[1], got[0], offset)
        if self._index is not None:
            return self._indexed_chunk(offset, *self._index.locate(r0, c0))
        try:
            mask, raw = self.dset.id.read_direct_chunk(offset)
        except Exception as exc:  # unallocated chunk, or an HDF5 read failure
            info = None
            try:
                info = self.dset.id.get_chunk_info_by_coord(offset)
            except Exception:
                pass
            if info is not None and info.byte_offset is None:
                return self._fill_chunk()
            raise ChunkDecodeError(
                f"{self.name}: chunk at offset {offset} could not be read: {exc}"
            ) from exc
        return self._decode(raw, mask, offset)

    def _hyperslab(self, r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
        try:
            return self.dset[r0:r1, c0:c1]
        except OSError as exc:
            raise ChunkDecodeError(
                f"{self.name}: reading rows {r0}:{r1}, columns {c0}:{c1} failed: {exc}"
            ) from exc

    # -- public -----------------------------------------------------------
    def read(self, rows: Selection, cols: Selection) -> np.ndarray:
        """Return ``dset[rows, cols]`` with outer (orthogonal) indexing semantics.

        ``rows`` and ``cols`` may be slices, ints or integer arrays in any order with
        duplicates.  The result has shape ``(len(rows), len(cols))`` and is stored
        column-major (each sample contiguous), which suits per-sample work.
        """
        r_idx = normalize_selection(rows, self.shape[0])
        c_idx = normalize_selection(cols, self.shape[1])
        out_t = np.empty((c_idx.size, r_idx.size), dtype=self.dtype)
        if r_idx.size == 0 or c_idx.size == 0:
            return out_t.T
        cr, cc = self.chunks
        col_chunk = c_idx // cc
        order = np.argsort(col_chunk, kind="stable")
        uniq, starts = np.unique(col_chunk[order], return_index=True)
        groups = np.split(order, starts[1:])
        # Where each needed row chunk's rows go: (chunk start, output rows, rows in chunk).
        row_plan = []
        full_rows = r_idx.size == self.shape[0] and bool((np.diff(r_idx) == 1).all())
        if full_rows:
            for r0 in range(0, self.shape[0], cr):
                r1 = min(r0 + cr, self.shape[0])
                row_plan.append((r0, slice(r0, r1), slice(0, r1 - r0)))
        else:
            r_chunk = r_idx // cr
            for rc in np.unique(r_chunk):
                out_rows = np.flatnonzero(r_chunk == rc)
                row_plan.append((int(rc) * cr, out_rows, r_idx[out_rows] - int(rc) * cr))
        work = list(zip(uniq.tolist(), groups, strict=True))
        if self.plan.direct:
            row_chunks = np.array([r0 // cr for r0, _, _ in row_plan], dtype=np.int64)
            pre = self._prefetch(row_chunks, uniq)  # None for local files
            if pre is None:
                self._maybe_index(len(row_plan) * len(work))
            pool = _thread_pool()
            # Column blocks write disjoint rows of out_t.  They go to the pool in a few
            # batches per thread: one future per column would wake the waiting thread
            # hundreds of times, and concurrent reads (Dask threads) would fight for the GIL.
            fill = self._fill_column_block

            def run(batch):
                for k, pos in batch:
                    fill(k, pos, c_idx, row_plan, out_t, pre)

            n_batches = min(len(work), 4 * pool._max_workers)
            batches = [work[i::n_batches] for i in range(n_batches)]
            for _ in pool.map(run, batches):
                pass
        else:
            for k, pos in work:
                self._fill_hyperslab(k, pos, r_idx, c_idx, out_t)
        return out_t.T

    def _fill_column_block(
        self, k: int, pos: np.ndarray, c_idx, row_plan, out_t, prefetched=None
    ) -> None:
        c0 = k * self.chunks[1]
        local_cols = c_idx[pos] - c0
        single = pos.size == 1
        p0, l0 = int(pos[0]), int(local_cols[0])
        with self._count_lock:  # once per column block, not per chunk
            self.chunks_read += len(row_plan)
        cr = self.chunks[0]
        index = self._index if prefetched is None else None
        if index is not None:  # this column block's entries, fetched once
            entries = index.table[k]
            offsets, sizes, masks = (entries[f].tolist() for f in ("offset", "size", "mask"))
        for r0, out_rows, in_rows in row_plan:
            if index is not None:
                j = r0 // cr
                chunk = self._indexed_chunk((r0, c0), offsets[j], sizes[j], masks[j])
            else:
                chunk = self._raw_chunk(r0, c0, prefetched)
            if single and isinstance(out_rows, slice):
                out_t[p0, out_rows] = chunk[in_rows, l0]  # one contiguous copy
            elif isinstance(out_rows, slice):
                out_t[pos, out_rows] = chunk[in_rows][:, local_cols].T
            else:
                out_t[np.ix_(pos, out_rows)] = chunk[np.ix_(in_rows, local_cols)].T

    def _fill_hyperslab(self, k: int, pos: np.ndarray, r_idx, c_idx, out_t) -> None:
        cc = self.chunks[1]
        c0 = k * cc
        local_cols = c_idx[pos] - c0
        r0, r1 = int(r_idx.min()), int(r_idx.max()) + 1
        c1 = min(c0 + cc, self.shape[1])
        block = self._hyperslab(r0, r1, c0, c1)
        out_t[pos, :] = block[np.ix_(r_idx - r0, local_cols)].T
