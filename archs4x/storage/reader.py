"""The chunk reader: any outer selection of ``data/expression``, each needed chunk once.

A read is four steps, the same for local and remote files:

1. **Plan** the chunks: every (row chunk, column chunk) pair holding a selected value,
   and nothing else (a gene selection needs only the row chunks of those genes).
2. **Locate** them: byte offset, stored size and filter mask, from the dataset's chunk
   B-tree (:mod:`archs4x.storage.btree`) or a chunk list.
3. **Fetch** their bytes: ``os.pread`` of coalesced spans inside the worker threads for
   local files; for remote files one batch of coalesced range requests up front.
4. **Decode** each chunk (libdeflate, outside the GIL; :mod:`archs4x.storage.codecs`)
   in the reader thread pool and copy the selected values into the output.

Chunks that were never written read as the fill value, as fast as written ones.  A chunk
that cannot be read raises :class:`~archs4x.errors.ChunkReadError`, one that cannot be
decoded :class:`~archs4x.errors.ChunkDecodeError`: never zeros.  Filter pipelines other
than deflate/shuffle are read through h5py, one block of columns at a time.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ChunkReadError
from .btree import Fetch
from .codecs import FilterPlan, _inflate, decode_chunk
from .pool import reader_pool

__all__ = ["ChunkReader", "ReadStats", "merge_ranges", "normalize_selection"]

Selection = slice | int | Sequence[int] | np.ndarray
Locate = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray]]
#: Bytes of gap between two chunks still worth reading in one request.
MERGE_GAP = 4096


def normalize_selection(sel: Selection, n: int) -> np.ndarray:
    """An int, slice, boolean mask or integer sequence as int64 positions in ``[0, n)``.

    Examples
    --------
    >>> normalize_selection(slice(1, 7, 2), 10).tolist(), normalize_selection([-1, 0], 10).tolist()
    ([1, 3, 5], [9, 0])
    >>> normalize_selection([10], 10)
    Traceback (most recent call last):
    ...
    IndexError: index out of range for axis of length 10
    """
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


def merge_ranges(ranges: Sequence[tuple[int, int]], gap: int = MERGE_GAP) -> list[tuple[int, int]]:
    """Coalesce byte ranges ``[start, stop)`` that overlap or lie within ``gap`` bytes.

    Examples
    --------
    >>> merge_ranges([(10, 20), (0, 5), (20, 30), (9000, 9100)], gap=8)
    [(0, 30), (9000, 9100)]
    """
    out: list[list[int]] = []
    for a, b in sorted(ranges):
        if out and a <= out[-1][1] + gap:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return [(a, b) for a, b in out]


@dataclass
class ReadStats:
    """What this reader has read in this process (for tests and benchmarks)."""

    chunks: int = 0  # chunks served, each needed chunk counted once per read
    fill_chunks: int = 0  # of which never written (served as the fill value)
    bytes: int = 0  # stored bytes fetched
    requests: int = 0  # fetch calls (preads or range requests)


class ChunkReader:
    """Read outer selections of a chunked 2-D dataset.

    Built by a source (:mod:`archs4x.storage.sources`), which knows how to find and
    fetch the chunks of its file; see the module docstring for the steps.

    Examples
    --------
    >>> import numpy as np, h5py
    >>> from archs4x.datasets import example_file
    >>> from archs4x.storage.sources import open_source
    >>> reader = open_source(example_file()).counts_reader()
    >>> block = reader.read(slice(None), [5, 1, 5])
    >>> with h5py.File(example_file()) as f:
    ...     want = f["data/expression"][:, [1, 5]][:, [1, 0, 1]]
    >>> bool((block == want).all())
    True
    """

    def __init__(
        self,
        *,
        name: str,
        shape: tuple[int, int],
        dtype: np.dtype,
        chunks: tuple[int, int],
        plan: FilterPlan,
        fill: float,
        locate: Locate | None,
        fetch: Fetch | None,
        batch_fetch: bool,
        check: Callable[[], None],
        hyperslab: Callable[[int, int, int, int], np.ndarray],
    ) -> None:
        self.name = name
        self.shape = tuple(int(s) for s in shape)
        self._file_dtype = np.dtype(dtype)
        self.dtype = self._file_dtype.newbyteorder("=")
        self.chunks = tuple(int(c) for c in chunks)
        self.plan = plan
        self._locate = locate
        self._fetch = fetch
        self._batch_fetch = batch_fetch
        self._check = check
        self._hyperslab = hyperslab
        self._nbytes = int(np.prod(self.chunks)) * self._file_dtype.itemsize
        self._fill_chunk = np.full(self.chunks, fill, dtype=self._file_dtype)
        self._fill_chunk.flags.writeable = False
        self.stats = ReadStats()
        self._stats_lock = threading.Lock()

    @property
    def direct(self) -> bool:
        """Whether chunks are decoded by archs4x (else read through h5py)."""
        return self.plan.direct and self._locate is not None and self._fetch is not None

    # -- public -----------------------------------------------------------------------
    def read(self, rows: Selection, cols: Selection) -> np.ndarray:
        """Return ``dset[rows, cols]`` with outer (orthogonal) indexing semantics.

        ``rows`` and ``cols`` may be slices, ints, boolean masks or integer arrays in any
        order with repeats.  The result has shape ``(len(rows), len(cols))`` and is stored
        column-major (each sample contiguous), which suits per-sample work.

        Raises
        ------
        FileChangedError
            The file changed since it was opened.
        ChunkReadError, ChunkDecodeError
            A chunk could not be read or decoded.
        """
        self._check()
        r_idx = normalize_selection(rows, self.shape[0])
        c_idx = normalize_selection(cols, self.shape[1])
        out_t = np.empty((c_idx.size, r_idx.size), dtype=self.dtype)
        if r_idx.size == 0 or c_idx.size == 0:
            return out_t.T
        _cr, cc = self.chunks
        col_chunk = c_idx // cc
        order = np.argsort(col_chunk, kind="stable")
        uniq_cols, starts = np.unique(col_chunk[order], return_index=True)
        groups = np.split(order, starts[1:])
        row_plan = self._row_plan(r_idx)
        if not self.direct:
            for k, pos in zip(uniq_cols.tolist(), groups, strict=True):
                self._fill_hyperslab(k, pos, r_idx, c_idx, out_t)
            with self._stats_lock:
                self.stats.chunks += len(row_plan) * uniq_cols.size
            return out_t.T
        row_chunks = np.array([rc for rc, _, _ in row_plan], dtype=np.int64)
        coords = np.empty((uniq_cols.size, row_chunks.size, 2), dtype=np.int64)
        coords[:, :, 0] = row_chunks[None, :]
        coords[:, :, 1] = uniq_cols[:, None]
        assert self._locate is not None
        offsets, sizes, masks = (a.reshape(uniq_cols.size, row_chunks.size)
                                 for a in self._locate(coords.reshape(-1, 2)))  # fmt: skip
        prefetched = None
        if self._batch_fetch:  # remote: every chunk in one batch of coalesced requests
            blobs, span_of, start_in = self._fetch_spans(offsets, sizes, gap=MERGE_GAP)
            prefetched = (blobs, span_of.reshape(offsets.shape).tolist(),
                          start_in.reshape(offsets.shape).tolist(), sizes.tolist())  # fmt: skip
        work = [
            (k, pos, offsets[i], sizes[i], masks[i], i)
            for i, (k, pos) in enumerate(zip(uniq_cols.tolist(), groups, strict=True))
        ]
        self._run(work, c_idx, row_plan, out_t, prefetched)
        n_fill = int((offsets < 0).sum())
        with self._stats_lock:
            self.stats.chunks += offsets.size
            self.stats.fill_chunks += n_fill
        return out_t.T

    # -- steps ------------------------------------------------------------------------
    def _row_plan(self, r_idx: np.ndarray) -> list[tuple[int, slice | np.ndarray, Any]]:
        """For each needed row chunk: (row chunk, output rows, rows inside the chunk)."""
        cr = self.chunks[0]
        n = self.shape[0]
        plan: list = []
        if r_idx.size == n and r_idx[0] == 0 and bool((np.diff(r_idx) == 1).all()):
            for r0 in range(0, n, cr):
                r1 = min(r0 + cr, n)
                plan.append((r0 // cr, slice(r0, r1), slice(0, r1 - r0)))
            return plan
        r_chunk = r_idx // cr
        for rc in np.unique(r_chunk).tolist():
            out_rows = np.flatnonzero(r_chunk == rc)
            plan.append((rc, out_rows, r_idx[out_rows] - rc * cr))
        return plan

    def _fetch_spans(self, offsets: np.ndarray, sizes: np.ndarray, gap: int):
        """Fetch the written chunks among ``offsets`` in coalesced spans.

        Returns ``(blobs, span_of, start_in_span)``: for every entry of ``offsets`` the
        index of the blob holding it and where it starts there (-1 for unwritten chunks).
        """
        flat_off = offsets.ravel()
        flat_size = sizes.ravel().astype(np.int64)
        ok = np.flatnonzero(flat_off >= 0)
        span_of = np.full(flat_off.size, -1, dtype=np.int64)
        start_in = np.zeros(flat_off.size, dtype=np.int64)
        if ok.size == 0:
            return [], span_of, start_in
        order = ok[np.argsort(flat_off[ok], kind="stable")]
        a = flat_off[order]
        b = a + flat_size[order]
        # a new span starts where a chunk begins beyond the furthest end so far + gap
        reach = np.maximum.accumulate(b)
        new = np.ones(a.size, dtype=bool)
        new[1:] = a[1:] > reach[:-1] + gap
        span_id = np.cumsum(new) - 1
        starts = a[new]
        ends = np.maximum.reduceat(b, np.flatnonzero(new))
        ranges = list(zip(starts.tolist(), ends.tolist(), strict=True))
        assert self._fetch is not None
        try:
            blobs = self._fetch(ranges)
        except OSError as exc:
            if isinstance(exc, ChunkReadError):
                raise
            raise ChunkReadError(f"{self.name}: reading chunk bytes failed: {exc}") from exc
        lengths = np.array([len(x) for x in blobs], dtype=np.int64)
        short = lengths < (ends - starts)
        if short.any():
            k = int(np.flatnonzero(short)[0])
            raise ChunkReadError(
                f"{self.name}: short read at byte {int(starts[k])} ({int(lengths[k])} of "
                f"{int(ends[k] - starts[k])} bytes; the file is truncated?)"
            )
        with self._stats_lock:
            self.stats.requests += len(ranges)
            self.stats.bytes += int(lengths.sum())
        span_of[order] = span_id
        start_in[order] = a - starts[span_id]
        return blobs, span_of, start_in

    def _run(self, work: list, c_idx, row_plan, out_t, prefetched) -> None:
        pool, threads = reader_pool()
        fill = self._fill_batch

        def run(batch: list) -> None:
            if batch:
                fill(batch, c_idx, row_plan, out_t, prefetched)

        if len(work) == 1 or threads == 1:
            run(work)
            return
        # a few batches per thread: one future per column would wake the waiting thread
        # hundreds of times, and concurrent reads (Dask threads) would fight for the GIL
        n_batches = min(len(work), 4 * threads)
        size = -(-len(work) // n_batches)
        batches = [work[i : i + size] for i in range(0, len(work), size)]
        for _ in pool.map(run, batches):
            pass

    def _fill_batch(self, batch: list, c_idx, row_plan, out_t, prefetched,
                    general: bool = False) -> None:  # fmt: skip
        """Fetch (local files), decode and scatter the chunks of a batch of columns."""
        offsets = np.stack([item[2] for item in batch])
        masks = np.stack([item[4] for item in batch])
        if prefetched is None:
            sizes = np.stack([item[3] for item in batch])
            blobs, span_of, start_in = self._fetch_spans(offsets, sizes, gap=0)
            span_of = span_of.reshape(offsets.shape).tolist()
            start_in = start_in.reshape(offsets.shape).tolist()
            size_list = sizes.tolist()
        else:
            blobs, span_of, start_in, size_list = prefetched
            span_of = [span_of[item[5]] for item in batch]
            start_in = [start_in[item[5]] for item in batch]
            size_list = [size_list[item[5]] for item in batch]
        off_list, mask_list = offsets.tolist(), masks.tolist()
        _cr, cc = self.chunks
        plan, dtype, nbytes = self.plan, self._file_dtype, self._nbytes
        simple = plan.filters == (1,)  # deflate alone: the ARCHS4 pipeline
        fast = simple and cc == 1 and dtype == self.dtype and isinstance(row_plan[0][1], slice)
        if fast and not general:
            # the ARCHS4 case: whole columns of (rows, 1) chunks, inflated straight into place
            self._fill_columns(batch, c_idx, blobs, span_of, start_in, size_list, off_list,
                               mask_list, row_plan, out_t)  # fmt: skip
            return
        fill_chunk = self._fill_chunk
        views = [memoryview(blob) for blob in blobs]
        bands = [(rc, out_rows, in_rows) for rc, out_rows, in_rows in row_plan]
        for n, (k, pos, *_rest) in enumerate(batch):
            c0 = k * cc
            local_cols = c_idx[pos] - c0
            one_col = cc == 1
            single = pos.size == 1
            p0, l0 = int(pos[0]), int(local_cols[0])
            offs, spans, starts, szs, msks = (off_list[n], span_of[n], start_in[n],
                                              size_list[n], mask_list[n])  # fmt: skip
            for j, (rc, out_rows, in_rows) in enumerate(bands):
                if offs[j] < 0:
                    chunk = fill_chunk
                else:
                    raw = views[spans[j]][starts[j] : starts[j] + szs[j]]
                    if simple and msks[j] == 0:
                        try:
                            data = _inflate(raw, nbytes)
                        except Exception as exc:
                            chunk = decode_chunk(
                                raw,
                                0,
                                plan,
                                dtype,
                                self.chunks,
                                where=self._where(rc, c0),
                                nbytes=nbytes,
                            )
                            raise AssertionError("unreachable") from exc  # pragma: no cover
                        if len(data) != nbytes:
                            chunk = decode_chunk(
                                raw,
                                0,
                                plan,
                                dtype,
                                self.chunks,
                                where=self._where(rc, c0),
                                nbytes=nbytes,
                            )
                        chunk = np.frombuffer(data, dtype=dtype).reshape(self.chunks)
                    else:
                        chunk = decode_chunk(
                            raw,
                            int(msks[j]),
                            plan,
                            dtype,
                            self.chunks,
                            where=self._where(rc, c0),
                            nbytes=nbytes,
                        )
                if one_col:
                    column = chunk[:, 0]
                    if single:
                        out_t[p0, out_rows] = column[in_rows]
                    else:
                        out_t[pos[:, None], out_rows] = column[in_rows]
                elif single and isinstance(out_rows, slice):
                    out_t[p0, out_rows] = chunk[in_rows, l0]
                elif isinstance(out_rows, slice):
                    out_t[pos, out_rows] = chunk[in_rows][:, local_cols].T
                else:
                    out_t[np.ix_(pos, out_rows)] = chunk[np.ix_(in_rows, local_cols)].T

    def _fill_columns(self, batch, c_idx, blobs, span_of, start_in, size_list, off_list,
                      mask_list, row_plan, out_t) -> None:  # fmt: skip
        """:meth:`_fill_batch` for whole columns of one-column deflate chunks.

        Each chunk is inflated and its bytes copied into the output row of its sample with
        one ``memoryview`` assignment: no array objects per chunk, which matters at ~30,000
        chunks per 1,000 samples.  Unusual chunks (filter masks, wrong sizes, repeated
        samples) take the general path.
        """
        nbytes = self._nbytes
        itemsize = self.dtype.itemsize
        row_bytes = out_t.shape[1] * itemsize
        dst = memoryview(out_t).cast("B") if out_t.flags.c_contiguous else None
        views = [memoryview(blob) for blob in blobs]
        bands = [(rc, out_rows.start * itemsize, out_rows.stop * itemsize)
                 for rc, out_rows, _ in row_plan]  # fmt: skip
        slow = []
        for n, item in enumerate(batch):
            pos = item[1]
            if dst is None or pos.size != 1 or any(mask_list[n]):
                slow.append(n)
                continue
            base = int(pos[0]) * row_bytes
            offs, spans, starts, szs = off_list[n], span_of[n], start_in[n], size_list[n]
            for j, (rc, a, b) in enumerate(bands):
                if offs[j] < 0:
                    dst[base + a : base + b] = self._fill_chunk.data.cast("B")[: b - a]
                    continue
                raw = views[spans[j]][starts[j] : starts[j] + szs[j]]
                try:
                    data = _inflate(raw, nbytes)
                except Exception:
                    data = b""
                if len(data) != nbytes:  # raises ChunkDecodeError, naming the chunk
                    decode_chunk(raw, 0, self.plan, self._file_dtype, self.chunks,
                                 where=self._where(rc, int(item[0]) * self.chunks[1]),
                                 nbytes=nbytes)  # fmt: skip
                    raise AssertionError("unreachable")  # pragma: no cover
                dst[base + a : base + b] = memoryview(data)[: b - a]
        if slow:
            general = [batch[n] for n in slow]
            prefetched = (blobs, [span_of[n] for n in slow], [start_in[n] for n in slow],
                          [size_list[n] for n in slow])  # fmt: skip
            # index the prefetched lists by the slow items' places among themselves
            general = [(*item[:5], i) for i, item in enumerate(general)]
            self._fill_batch(general, c_idx, row_plan, out_t, prefetched, general=True)

    def _where(self, rc: int, c0: int) -> Callable[[], str]:
        return lambda: f"{self.name}: chunk at offset {(rc * self.chunks[0], c0)}"

    def _fill_hyperslab(self, k: int, pos: np.ndarray, r_idx, c_idx, out_t) -> None:
        cc = self.chunks[1]
        c0 = k * cc
        local_cols = c_idx[pos] - c0
        r0, r1 = int(r_idx.min()), int(r_idx.max()) + 1
        c1 = min(c0 + cc, self.shape[1])
        block = self._hyperslab(r0, r1, c0, c1)
        out_t[pos, :] = block[np.ix_(r_idx - r0, local_cols)].T
