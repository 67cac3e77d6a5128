"""Convert ARCHS4 datasets to Zarr (sample- or gene-major), resumably, in bounded memory.

:func:`to_zarr` writes a Dataset from :func:`archs4x.open_dataset` (or any selection of
it) to a Zarr v3 store; :func:`open_zarr` opens it again with the same schema.

How a conversion runs
---------------------
1. The *skeleton*: root attributes (``meta/info`` plus an ``archs4x_zarr`` state
   record), every coordinate (written field by field, strings as the Zarr v3
   ``string`` data type) and the empty ``counts`` array.
2. The *units* of :mod:`archs4x.rechunk`: each covers whole shards, is read from the
   source, written, and its checksum (BLAKE2b-64 of the counts) is recorded in the
   store (``archs4x_progress/<pass>``, one object per unit, written after the data).
   Units run on a thread pool, or on the active ``distributed`` client.
3. Completion: when every unit is recorded, ``archs4x_zarr.complete`` becomes true.
   :func:`open_zarr` refuses a store without it.

Running the same call again resumes: units with a recorded checksum are read back and
verified, the rest (and any that fail verification) are written.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass
from itertools import islice
from typing import Any

import dask.array as da
import numpy as np
import xarray as xr
import zarr
from zarr.codecs import BloscCodec

from ..backends.counts import Archs4Array
from ..dims import COUNTS, SAMPLE, feature_dim
from ..progress import current_client
from ..storage.zarrstore import (
    PROGRESS,
    STATE,
    TMP,
    check_storage_options,
    is_url,
    open_array,
    open_group,
    store_name,
)
from .plan import (
    DEFAULT_MAX_MEMORY,
    ConversionPlan,
    Pass,
    plan_conversion,
)

__all__ = ["default_compressor", "to_zarr"]

FORMAT = 1
COORD_CHUNK = 65_536
TARGET_DASK_BYTES = 128 * 2**20
FAST_CODEC = BloscCodec(cname="lz4", clevel=1, shuffle="bitshuffle")


def default_compressor() -> BloscCodec:
    """Zstandard level 3 through Blosc with bit-shuffle.

    Counts are small integers in 32-bit words: bit-shuffle gathers their (mostly zero)
    high bits so zstd packs a count matrix to ~20% of its size, and Blosc decodes it
    with several threads at GB/s.  Level 3 writes at ~200 MB/s per core; higher levels
    gain a few percent for several times the time.

    Examples
    --------
    >>> default_compressor().cname.value, default_compressor().clevel
    ('zstd', 3)
    """
    return BloscCodec(cname="zstd", clevel=3, shuffle="bitshuffle")


# -- stores -------------------------------------------------------------------------
def _existing_state(store: str, storage_options: dict | None) -> tuple[bool, dict | None]:
    """(store exists, its archs4x state or None)."""
    if not is_url(store) and not os.path.exists(store.removeprefix("file://")):
        return False, None
    try:
        root = open_group(store, "r", storage_options)
    except (FileNotFoundError, zarr.errors.GroupNotFoundError, KeyError):
        if not is_url(store):
            path = store.removeprefix("file://")
            if os.path.isdir(path) and not os.listdir(path):
                return False, None
            raise FileExistsError(
                f"{store} exists and is not a Zarr store: refusing to write into it"
            ) from None
        return False, None
    return True, dict(root.attrs.get(STATE) or {}) or None


# -- checksums ----------------------------------------------------------------------
def _digest(block: np.ndarray) -> int:
    """Nonzero 64-bit BLAKE2b digest of a C-ordered block (0 means "not written")."""
    h = hashlib.blake2b(memoryview(np.ascontiguousarray(block)).cast("B"), digest_size=8)
    return int.from_bytes(h.digest(), "little") | 1


def _fingerprint(ds: xr.Dataset, fdim: str, plan: ConversionPlan, codec: Any) -> str:
    h = hashlib.blake2b(digest_size=16)
    head = {
        "layout": plan.layout,
        "shape": plan.shape,
        "dtype": str(ds[COUNTS].dtype),
        "chunks": plan.chunks,
        "shards": plan.shards,
        "codec": _codec_json(codec),
        "coords": sorted(str(k) for k in ds.coords),
    }
    h.update(json.dumps(head, sort_keys=True, default=str).encode())
    for dim in (fdim, SAMPLE):
        for value in np.asarray(ds[dim].values).tolist():
            h.update(str(value).encode("utf-8", "surrogatepass") + b"\0")
    return h.hexdigest()


def _codec_json(codec: Any) -> Any:
    try:
        return codec.to_dict()
    except AttributeError:
        return repr(codec)


# -- the source ---------------------------------------------------------------------
def _as_dataset(obj: Any) -> tuple[xr.Dataset, str]:
    if isinstance(obj, xr.DataArray):
        obj = obj.to_dataset(name=COUNTS) if obj.name in (None, COUNTS) else obj.to_dataset()
    if not isinstance(obj, xr.Dataset):
        raise TypeError(f"expected an xarray Dataset from archs4x.open_dataset, got {type(obj)}")
    if COUNTS not in obj.data_vars:
        raise ValueError(f"the dataset has no {COUNTS!r} variable (found {list(obj.data_vars)})")
    fdim = feature_dim(obj[COUNTS])
    if set(obj[COUNTS].dims) != {fdim, SAMPLE}:
        raise ValueError(f"counts must have dimensions ({fdim}, sample), got {obj[COUNTS].dims}")
    for dim in (fdim, SAMPLE):
        if dim not in obj.indexes:
            raise ValueError(f"the dataset has no {dim!r} index coordinate")
    if obj.sizes[SAMPLE] == 0 or obj.sizes[fdim] == 0:
        raise ValueError(f"nothing to convert: the selection is empty ({dict(obj.sizes)})")
    extra = [v for v in obj.data_vars if v != COUNTS]
    if extra:
        raise ValueError(f"only {COUNTS!r} can be converted; drop {extra} first")
    return obj.transpose(fdim, SAMPLE, ...), fdim


def _source_array(ds: xr.Dataset, fdim: str) -> tuple[da.Array, bool]:
    """The counts as a Dask array, and whether reading a block of rows is cheap."""
    var = ds[COUNTS].variable
    in_memory = isinstance(var.data, np.ndarray)
    arr = var.data if isinstance(var.data, da.Array) else var.chunk().data
    if in_memory:
        return arr, True
    if isinstance(arr, Archs4Array):  # read by position: rows of any columns are cheap
        reader = arr.source.counts_reader()
        return arr, int(reader.chunks[0]) <= 4096
    return arr, False


# -- units --------------------------------------------------------------------------
@dataclass(frozen=True)
class _Job:
    """Everything a unit needs, picklable for distributed workers."""

    store: str
    storage_options: dict | None
    pass_: Pass
    target: str  # array path written
    source: Any  # a Dask array, or the path of the intermediate array
    dtype: str


def _read_source(job: _Job, rows: slice, cols: slice) -> np.ndarray:
    if isinstance(job.source, str):
        return open_array(job.store, job.source, job.storage_options, "r")[rows, cols]
    return job.source[rows, cols].compute(scheduler="sync")


def _run_unit(job: _Job, i: int) -> tuple[int, int]:
    """Read, write and record unit ``i``; returns (unit, bytes)."""
    rows, cols = job.pass_.region(i)
    block = np.ascontiguousarray(_read_source(job, rows, cols), dtype=job.dtype)
    expected = (rows.stop - rows.start, cols.stop - cols.start)
    if block.shape != expected:
        raise ValueError(f"source returned {block.shape} for unit {i}, expected {expected}")
    open_array(job.store, job.target, job.storage_options)[rows, cols] = block
    digest = _digest(block)
    progress = open_array(job.store, f"{PROGRESS}/{job.pass_.name}", job.storage_options)
    progress[i] = np.uint64(digest)
    return i, block.nbytes


def _run_pickled(payload: bytes, i: int) -> tuple[int, int]:
    import cloudpickle

    return _run_unit(cloudpickle.loads(payload), i)


def _delete_unit(job: _Job, i: int) -> None:
    """Delete the stored objects of unit ``i`` (a damaged shard cannot be rewritten)."""
    from zarr.core.sync import sync

    arr = open_array(job.store, job.target, job.storage_options)
    rows, cols = job.pass_.region(i)
    step = arr.shards or arr.chunks
    for r in range(rows.start // step[0], -(-rows.stop // step[0])):
        for c in range(cols.start // step[1], -(-cols.stop // step[1])):
            key = f"{arr.path}/{arr.metadata.encode_chunk_key((r, c))}"
            sync(arr.store_path.store.delete(key))


def _verify_unit(job: _Job, i: int, digest: int) -> bool:
    rows, cols = job.pass_.region(i)
    try:
        block = open_array(job.store, job.target, job.storage_options, "r")[rows, cols]
    except Exception:  # a damaged chunk: rewrite the unit
        return False
    return _digest(block) == digest


class _Progress:
    def __init__(self, enabled: bool, label: str, total: int, unit_bytes: int):
        self.enabled, self.label, self.total, self.done = enabled, label, total, 0
        self.nbytes, self.t0, self.unit_bytes = 0, time.perf_counter(), unit_bytes
        self._last = 0.0

    def update(self, nbytes: int) -> None:
        self.done += 1
        self.nbytes += nbytes
        now = time.perf_counter()
        if self.enabled and (now - self._last > 0.5 or self.done == self.total):
            self._last = now
            rate = self.nbytes / max(now - self.t0, 1e-9) / 1e6
            pct = 100 * self.done / max(self.total, 1)
            print(
                f"\r{self.label}: {self.done}/{self.total} units ({pct:.0f}%), {rate:.0f} MB/s",
                end="\n" if self.done == self.total else "",
                file=sys.stderr,
                flush=True,
            )


def _execute(job: _Job, todo: list[int], in_flight: int, report: Callable[[int], None]) -> None:
    """Run the units in ``todo`` with at most ``in_flight`` at once."""
    if not todo:
        return
    client = current_client()
    if client is not None:
        import cloudpickle
        from distributed import as_completed

        pending = iter(todo)
        # pickled by hand: distributed would compute a Dask array passed as an argument
        job_f = client.scatter(cloudpickle.dumps(job), broadcast=True)
        first = [
            client.submit(_run_pickled, job_f, i, pure=False) for i in islice(pending, in_flight)
        ]
        ac = as_completed(first)
        for fut in ac:
            _, nbytes = fut.result()
            fut.release()
            report(nbytes)
            nxt = next(pending, None)
            if nxt is not None:
                ac.add(client.submit(_run_pickled, job_f, nxt, pure=False))
        return
    with ThreadPoolExecutor(in_flight, thread_name_prefix="archs4x-zarr") as pool:
        pending = iter(todo)
        running = {pool.submit(_run_unit, job, i) for i in islice(pending, in_flight)}
        while running:
            done, running = wait(running, return_when=FIRST_COMPLETED)
            for fut in done:
                _, nbytes = fut.result()
                report(nbytes)
                nxt = next(pending, None)
                if nxt is not None:
                    running.add(pool.submit(_run_unit, job, nxt))


# -- the skeleton -------------------------------------------------------------------
def _plain(var: xr.Variable) -> xr.Variable:
    values = var.values
    if values.dtype.kind == "T":
        values = values.astype(object)
    return xr.Variable(var.dims, values, attrs=dict(var.attrs))


def _write_skeleton(
    ds: xr.Dataset, fdim: str, store: str, so: dict | None, plan: ConversionPlan,
    codec: Any, state: dict,
) -> None:  # fmt: skip
    kw = {"consolidated": False, "zarr_format": 3, **({"storage_options": so} if so else {})}
    attrs = {**ds.attrs, STATE: state}
    base = xr.Dataset(coords={d: _plain(ds[d].variable) for d in (fdim, SAMPLE)}, attrs=attrs)
    enc = {d: {"chunks": (min(base.sizes[d], COORD_CHUNK),), "_FillValue": None} for d in base}
    base.to_zarr(store, mode="w", encoding=enc, **kw)
    names = [str(k) for k in ds.coords if k not in (fdim, SAMPLE)]
    for name in names:  # one field in memory at a time
        var = _plain(ds[name].variable)
        chunks = tuple(min(n, COORD_CHUNK) for n in var.shape)
        enc = {name: {"chunks": chunks, "_FillValue": None}}
        xr.Dataset({name: var}).to_zarr(store, mode="a", encoding=enc, **kw)
    root = open_group(store, "r+", so)
    root.attrs.update(attrs)  # appending variables replaced the root attributes
    counts = ds[COUNTS]
    root.create_array(
        COUNTS,
        shape=plan.shape,
        dtype=counts.dtype,
        chunks=plan.chunks,
        shards=plan.shards,
        compressors=[codec],
        fill_value=0,
        dimension_names=(fdim, SAMPLE),
        attributes={**counts.attrs, "coordinates": " ".join(names)},
    )
    prog = root.create_group(PROGRESS)
    for p in plan.passes:
        prog.create_array(p.name, shape=(p.n_units,), chunks=(1,), dtype="uint64",
                          fill_value=0, compressors=None)  # fmt: skip
    if plan.intermediate_chunks:
        tmp = root.create_group(TMP)
        tmp.create_array(COUNTS, shape=plan.shape, dtype=counts.dtype,
                         chunks=plan.intermediate_chunks, fill_value=0,
                         compressors=[FAST_CODEC])  # fmt: skip
    root.attrs.update({STATE: {**state, "skeleton": True}})


def _plan_from_state(state: dict) -> tuple[Pass, ...]:
    return tuple(
        Pass(p["name"], p["target"], tuple(p["shape"]), tuple(p["unit"])) for p in state["passes"]
    )


def _state(plan: ConversionPlan, fingerprint: str, fdim: str, codec: Any) -> dict:
    return {
        "format": FORMAT,
        "complete": False,
        "skeleton": False,
        "layout": plan.layout,
        "feature_dim": fdim,
        "fingerprint": fingerprint,
        "chunks": list(plan.chunks),
        "shards": list(plan.shards) if plan.shards else None,
        "compressor": _codec_json(codec),
        "passes": [
            {"name": p.name, "target": p.target, "shape": list(p.shape), "unit": list(p.unit)}
            for p in plan.passes
        ],
    }


# -- public -------------------------------------------------------------------------
def to_zarr(
    ds: xr.Dataset,
    store: str | os.PathLike,
    *,
    layout: str = "sample",
    chunks: tuple[int, int] | None = None,
    shards: tuple[int, int] | str | None = "auto",
    compressor: Any = None,
    overwrite: bool = False,
    progress: bool = False,
    storage_options: dict | None = None,
    max_memory: int | str = DEFAULT_MAX_MEMORY,
    workers: int | None = None,
    verify: bool = True,
) -> str:
    """Write an ARCHS4 dataset (or a selection of it) to a Zarr v3 store.

    Parameters
    ----------
    ds : xarray.Dataset
        From :func:`archs4x.open_dataset` or :func:`open_zarr`, or any selection of
        one (``ds.isel(sample=...)``, ``ds.sel(gene=...)``): ``counts`` plus coordinates.
    store : path or fsspec URL
        A local directory, or ``s3://...``, ``gs://...``, ``memory://...``.
    layout : {"sample", "gene"}
        ``"sample"``: chunks of all features x 4 samples in shards of 256 samples, for
        per-sample work and any sample selection.  ``"gene"``: chunks of 16 genes x
        65,536 samples (shards of up to 2000 genes), so one gene over all samples is a
        few chunk reads.  See :func:`archs4x.rechunk.default_chunks`.
    chunks, shards : (int, int), optional
        Override the (features, samples) chunk and shard shapes; ``shards=None``
        writes one object per chunk.  A shard is the unit of writing and resuming.
    compressor : zarr codec, optional
        A Zarr v3 bytes-to-bytes codec; default :func:`default_compressor`.
    overwrite : bool
        Start over, deleting what ``store`` holds.  Otherwise a store holding an
        unfinished conversion of the same data and options is resumed, a finished one
        is left as it is, and anything else is refused.
    progress : bool
        Print progress to stderr.
    storage_options : dict, optional
        fsspec options for URL stores (credentials, endpoint).
    max_memory : int or str
        Memory budget of the units in flight (default 1.5 GiB); shards and
        concurrency are fitted to it.
    workers : int, optional
        Most units in flight (default: CPUs).  On a ``distributed`` cluster (an active
        client) units run as tasks on its workers.
    verify : bool
        On resume, read back each unit already recorded and check its checksum.

    Returns
    -------
    str
        The store.

    Raises
    ------
    FileExistsError
        ``store`` holds something else (a different conversion, or not Zarr) and
        ``overwrite`` is false.
    ValueError
        Bad options, or a dataset without ``counts``.

    Examples
    --------
    >>> import tempfile, archs4x
    >>> ds = archs4x.open_dataset(archs4x.datasets.example_file())
    >>> out = tempfile.mkdtemp() + "/genes.zarr"
    >>> _ = archs4x.to_zarr(ds.isel(sample=slice(0, 50)), out, layout="gene")
    >>> z = archs4x.open_zarr(out)
    >>> bool((z.counts.values == ds.counts[:, :50].values).all())
    True
    """
    ds, fdim = _as_dataset(ds)
    store = store_name(store)
    check_storage_options(storage_options, store)  # reject storage_options for a local path early
    codec = compressor if compressor is not None else default_compressor()
    if not isinstance(codec, zarr.abc.codec.BytesBytesCodec):
        raise TypeError(
            f"compressor must be a Zarr v3 bytes-to-bytes codec such as "
            f"zarr.codecs.BloscCodec or ZstdCodec, got {type(codec).__name__}"
        )
    src, rows_cheap = _source_array(ds, fdim)
    dtype = np.dtype(ds[COUNTS].dtype)
    plan = plan_conversion(
        (ds.sizes[fdim], ds.sizes[SAMPLE]), layout, chunks=chunks, shards=shards,
        itemsize=dtype.itemsize, rows_cheap=rows_cheap, max_memory=max_memory,
        workers=workers,
    )  # fmt: skip
    fingerprint = _fingerprint(ds, fdim, plan, codec)
    exists, state = _existing_state(store, storage_options)
    if exists and not overwrite:
        if state is None or state.get("fingerprint") != fingerprint:
            what = "another archs4x conversion" if state else "a Zarr store archs4x did not write"
            raise FileExistsError(
                f"{store} holds {what} (different data or options): pass overwrite=True "
                "to replace it, or choose another path"
            )
        if state.get("complete"):
            return store
    if exists and overwrite and state is None:
        open_group(store, "r", storage_options)  # a Zarr store: ok to replace
    if not exists or overwrite or not state.get("skeleton"):
        state = _state(plan, fingerprint, fdim, codec)
        _write_skeleton(ds, fdim, store, storage_options, plan, codec, state)
        state = {**state, "skeleton": True}
    passes = _plan_from_state(state)
    for p in passes:
        job = _Job(
            store=store,
            storage_options=storage_options,
            pass_=p,
            target=f"{TMP}/{COUNTS}" if p.target == "intermediate" else COUNTS,
            source=src if p is passes[0] else f"{TMP}/{COUNTS}",
            dtype=dtype.str,
        )
        todo = _pending_units(job, verify)
        label = f"archs4x to_zarr {p.name} ({plan.layout} layout)"
        unit_bytes = p.unit[0] * p.unit[1] * dtype.itemsize
        bar = _Progress(progress, label, p.n_units, unit_bytes)
        bar.done = p.n_units - len(todo)
        in_flight = max(1, min(plan.in_flight, plan.max_memory // (3 * unit_bytes) or 1))
        _execute(job, todo, in_flight, bar.update)
        missing = _pending_units(job, verify=False)
        if missing:  # never mark complete on faith
            raise RuntimeError(f"{store}: {len(missing)} units of pass {p.name} not recorded")
    root = open_group(store, "r+", storage_options)
    if TMP in root:
        del root[TMP]
    root.attrs.update({STATE: {**state, "complete": True}})
    return store


def _pending_units(job: _Job, verify: bool) -> list[int]:
    prog = open_array(job.store, f"{PROGRESS}/{job.pass_.name}", job.storage_options, "r")
    digests = np.asarray(prog[:], dtype=np.uint64)
    todo = [int(i) for i in np.flatnonzero(digests == 0)]
    if verify:
        done = np.flatnonzero(digests != 0)
        bad = [int(i) for i in done if not _verify_unit(job, int(i), int(digests[i]))]
        for i in bad:
            _delete_unit(job, i)
        todo = sorted(todo + bad)
    return todo
