"""Write units: read a region of the source, encode its shards, write them, record a digest.

A unit of a :class:`~archs4x.write.plan.Pass` covers whole stored objects (shards, or
chunks when unsharded), so units never share an object and run in any order, in
parallel, and again after an interruption.  A unit is:

1. read from the source (a Dask array, or the intermediate array of this store);
2. encoded, chunk by chunk, each chunk followed by its CRC-32C, shards with their index;
3. written, each object replacing its key atomically;
4. recorded: the unit's digest (BLAKE2b-64 of its objects' keys, sizes and CRC-32Cs) is
   written to ``archs4x_progress/<pass>/c/<unit>``, after the data.

A recorded unit is verified by reading its objects back and recomputing the digest
(:func:`pending_units`): any damage since it was written (a flipped bit, a truncated or
deleted object) changes it, and the unit is written again.
"""

from __future__ import annotations

import hashlib
import sys
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass
from itertools import islice
from typing import Any

import numpy as np

from ..backends.counts import Archs4Array
from ..progress import current_client
from ..storage.pool import reader_pool
from ..storage.zarrstore import PROGRESS, ArrayMeta, ArrayReader, StoreIO, crc32c, read_meta
from .plan import Pass

__all__ = [
    "Job",
    "Progress",
    "encode_unit",
    "execute",
    "pending_units",
    "read_unit_source",
    "record_key",
    "run_unit",
    "unit_digest",
]


@dataclass(frozen=True)
class Job:
    """Everything a unit needs, picklable for distributed workers."""

    store: str
    storage_options: dict | None
    pass_: Pass
    target: str  # array path written
    source: Any  # a Dask array, or the path of an array of this store
    dtype: str

    def io(self) -> StoreIO:
        return StoreIO(self.store, self.storage_options)


def record_key(pass_name: str, i: int) -> str:
    return f"{PROGRESS}/{pass_name}/c/{i}"


def unit_digest(objects: list[tuple[str, int, int]]) -> int:
    """Nonzero 64-bit digest of a unit's ``(key, size, crc32c)`` objects (0: not written)."""
    h = hashlib.blake2b(digest_size=8)
    for key, size, crc in sorted(objects):
        h.update(f"{key}\0{size}\0{crc}\n".encode())
    return int.from_bytes(h.digest(), "little") | 1


def _record(digest: int) -> bytes:
    raw = np.uint64(digest).astype("<u8").tobytes()
    return raw + crc32c(raw).to_bytes(4, "little")


def _parse_record(raw: bytes) -> int:
    """The digest of a progress record, 0 when the record is damaged."""
    if len(raw) != 12 or crc32c(raw[:8]) != int.from_bytes(raw[8:], "little"):
        return 0
    return int(np.frombuffer(raw[:8], dtype="<u8")[0])


def unit_objects(meta: ArrayMeta, rows: slice, cols: slice) -> list[tuple[int, int]]:
    """The stored objects covering a unit region."""
    g0, g1 = meta.grid
    return [(r, c) for r in range(rows.start // g0, -(-rows.stop // g0))
            for c in range(cols.start // g1, -(-cols.stop // g1))]  # fmt: skip


def _c_order(sub: np.ndarray, step: int = 2048) -> np.ndarray:
    """A C-ordered copy of a wide slice of a column-major block, copied in column bands.

    A plain ``np.ascontiguousarray`` of 16 rows of a column-major block strides through
    memory and costs ~2.5x more (measured on 2,000 x 20,000 uint32).
    """
    if sub.flags.c_contiguous or sub.ndim != 2 or sub.shape[0] >= sub.shape[1]:
        return sub
    out = np.empty(sub.shape, dtype=sub.dtype)
    for c in range(0, sub.shape[1], step):
        out[:, c : c + step] = sub[:, c : c + step]
    return out


def encode_unit(meta: ArrayMeta, block: np.ndarray, rows: slice, cols: slice
                ) -> list[tuple[str, bytes]]:  # fmt: skip
    """Encode the objects of a unit: ``(key, bytes)`` pairs.

    Every chunk of the region is written (zeros too), so a missing chunk is damage.

    Examples
    --------
    >>> from archs4x.write.skeleton import array_doc
    >>> meta = ArrayMeta.from_json("x", array_doc((6, 4), "uint32", (6, 1), shards=(6, 2)))
    >>> block = np.arange(24, dtype="uint32").reshape(6, 4)
    >>> [k for k, _ in encode_unit(meta, block, slice(0, 6), slice(0, 4))]
    ['x/c/0/0', 'x/c/0/1']
    """
    out = []
    r0, c0 = rows.start, cols.start
    ic = meta.inner
    if ic[1] < ic[0] and not block.flags.f_contiguous:
        block = np.asfortranarray(block)  # tall chunks: columns contiguous, one copy
    for obj in unit_objects(meta, rows, cols):
        chunks = meta.chunks_of(obj)
        encoded = {}
        for chunk in chunks:
            a, b = chunk[0] * ic[0], min(meta.shape[0], (chunk[0] + 1) * ic[0])
            c, d = chunk[1] * ic[1], min(meta.shape[1], (chunk[1] + 1) * ic[1])
            encoded[chunk] = meta.encode_chunk(_c_order(block[a - r0 : b - r0, c - c0 : d - c0]))
        key = meta.object_key(obj)
        if meta.sharded:
            out.append((key, meta.encode_shard(encoded)))
        else:
            out.append((key, encoded[chunks[0]]))
    return out


def read_unit_source(job: Job, rows: slice, cols: slice) -> np.ndarray:
    """The unit's block, as the source's reader returns it (column-major, no Dask copy)."""
    src = job.source
    if isinstance(src, str):
        io = job.io()
        return ArrayReader(io, read_meta(io, src)).read(rows, cols)
    if isinstance(src, Archs4Array):  # read the positions it holds straight from its source
        return src.source.counts_reader().read(src.rows[rows], src.cols[cols])
    return np.asarray(src[rows, cols].compute(scheduler="sync"))


def run_unit(job: Job, meta_doc: dict, i: int) -> tuple[int, int]:
    """Read, encode, write and record unit ``i``; returns ``(unit, bytes of counts)``."""
    meta = ArrayMeta.from_json(job.target, meta_doc)
    rows, cols = job.pass_.region(i)
    block = read_unit_source(job, rows, cols)
    expected = (rows.stop - rows.start, cols.stop - cols.start)
    if block.shape != expected:
        raise ValueError(f"source returned {block.shape} for unit {i}, expected {expected}")
    if block.dtype != np.dtype(job.dtype):
        block = block.astype(job.dtype)
    io = job.io()
    objects = []
    for key, data in encode_unit(meta, block, rows, cols):
        io.write(key, data)
        objects.append((key, len(data), crc32c(data)))
    io.write(record_key(job.pass_.name, i), _record(unit_digest(objects)))
    return i, block.nbytes


def _run_pickled(payload: bytes, meta_doc: dict, i: int) -> tuple[int, int]:
    import cloudpickle

    return run_unit(cloudpickle.loads(payload), meta_doc, i)


def recorded_units(io: StoreIO, pass_name: str, n_units: int) -> dict[int, int]:
    """``{unit: digest}`` of the units with a sound progress record."""
    prefix = f"{PROGRESS}/{pass_name}/c/"
    found = {}
    for key in io.list(f"{PROGRESS}/{pass_name}/c"):
        tail = key[len(prefix) :]
        if tail.isdigit() and int(tail) < n_units:
            found[int(tail)] = key
    if not found:
        return {}
    units = sorted(found)
    raws = io.read_many([(found[i], 0, None) for i in units]) if not io.local else [
        io.read(found[i]) for i in units]  # fmt: skip
    out = {}
    for i, raw in zip(units, raws, strict=True):
        digest = _parse_record(raw)
        if digest:
            out[i] = digest
    return out


def stored_digest(io: StoreIO, meta: ArrayMeta, pass_: Pass, i: int) -> int:
    """The digest of unit ``i`` as stored now (0 when an object is missing)."""
    rows, cols = pass_.region(i)
    objects = []
    for obj in unit_objects(meta, rows, cols):
        key = meta.object_key(obj)
        try:
            data = io.read(key)
        except FileNotFoundError:
            return 0
        objects.append((key, len(data), crc32c(data)))
    return unit_digest(objects)


def pending_units(
    job: Job, meta: ArrayMeta, verify: bool, report: Callable[[int], None] | None = None
) -> tuple[list[int], int]:
    """Units still to write, and how many recorded ones failed verification.

    With ``verify``, every recorded unit is read back and its digest recomputed; a unit
    that does not match its record (damaged since) is deleted and rewritten.
    """
    io = job.io()
    n = job.pass_.n_units
    done = recorded_units(io, job.pass_.name, n)
    todo = [i for i in range(n) if i not in done]
    if not verify or not done:
        return todo, 0
    pool, _threads = reader_pool()
    units = sorted(done)

    def check(i: int) -> bool:
        ok = stored_digest(io, meta, job.pass_, i) == done[i]
        if report is not None:
            report(i)
        return ok

    bad = [i for i, ok in zip(units, pool.map(check, units), strict=True) if not ok]
    for i in bad:
        rows, cols = job.pass_.region(i)
        io.delete(record_key(job.pass_.name, i))
        for obj in unit_objects(meta, rows, cols):
            io.delete(meta.object_key(obj))
    return sorted(todo + bad), len(bad)


class Progress:
    """``label: done/total units (pct%), rate`` on stderr, at most twice a second."""

    def __init__(
        self, enabled: bool, label: str, total: int, unit: str = "MB/s", what: str = "units"
    ) -> None:
        self.enabled, self.label, self.total, self.done = enabled, label, total, 0
        self.what = what
        self.nbytes, self.t0, self.unit = 0, time.perf_counter(), unit
        self._last = 0.0

    def update(self, nbytes: int = 0) -> None:
        self.done += 1
        self.nbytes += nbytes
        now = time.perf_counter()
        if self.enabled and (now - self._last > 0.5 or self.done == self.total):
            self._last = now
            rate = self.nbytes / max(now - self.t0, 1e-9) / 1e6
            pct = 100 * self.done / max(self.total, 1)
            speed = f", {rate:.0f} {self.unit}" if self.unit else ""
            print(
                f"\r{self.label}: {self.done}/{self.total} {self.what} ({pct:.0f}%){speed}",
                end="\n" if self.done == self.total else "",
                file=sys.stderr,
                flush=True,
            )


def execute(job: Job, meta_doc: dict, todo: list[int], in_flight: int,
            report: Callable[[int], None]) -> None:  # fmt: skip
    """Run the units in ``todo`` with at most ``in_flight`` at once (threads or cluster)."""
    if not todo:
        return
    client = current_client()
    if client is not None:
        import cloudpickle
        from distributed import as_completed

        pending = iter(todo)
        # pickled by hand: distributed would compute a Dask array passed as an argument
        job_f = client.scatter(cloudpickle.dumps(job), broadcast=True)
        first = [client.submit(_run_pickled, job_f, meta_doc, i, pure=False)
                 for i in islice(pending, in_flight)]  # fmt: skip
        ac = as_completed(first)
        for fut in ac:
            _, nbytes = fut.result()
            fut.release()
            report(nbytes)
            nxt = next(pending, None)
            if nxt is not None:
                ac.add(client.submit(_run_pickled, job_f, meta_doc, nxt, pure=False))
        return
    with ThreadPoolExecutor(in_flight, thread_name_prefix="archs4x-zarr") as pool:
        pending = iter(todo)
        running = {pool.submit(run_unit, job, meta_doc, i) for i in islice(pending, in_flight)}
        while running:
            done, running = wait(running, return_when=FIRST_COMPLETED)
            for fut in done:
                _, nbytes = fut.result()
                report(nbytes)
                nxt = next(pending, None)
                if nxt is not None:
                    running.add(pool.submit(run_unit, job, meta_doc, nxt))
