"""Convert ARCHS4 datasets to Zarr (sample- or gene-major): resumable, checked, in bounded memory.

:func:`to_zarr` writes a Dataset from :func:`archs4x.open_dataset`, :func:`open_zarr`, a
selection or a transformation of one, or an alignment result, to a Zarr v3 store;
:func:`archs4x.open_zarr` opens it again with the same schema.

How a conversion runs
---------------------
0. Refusals, before anything is touched: a target the Dataset reads from (the file or
   store itself, or a folder holding it); a target holding anything but this job
   (another conversion: the message names what differs, see
   :mod:`archs4x.write.lineage`) unless ``overwrite=True``; a folder that is not Zarr.
1. The *skeleton* (:mod:`archs4x.write.skeleton`): root state, coordinates, metadata.
2. The *units* (:mod:`archs4x.write.units`): each covers whole shards, is read, encoded
   (every chunk with its CRC-32C), written and recorded.  Units run on a thread pool,
   or on the active ``distributed`` client.
3. Completion: every unit recorded, the root is rewritten once with
   ``complete: true`` and consolidated metadata.

Running the same call again resumes: recorded units are read back and verified against
their digests (damaged ones are rewritten), the rest are written.  On a complete store
the same call verifies it and repairs what is damaged.
"""

from __future__ import annotations

import os
import sys
import uuid
from typing import Any

import dask.array as da
import numpy as np
import xarray as xr
from zarr.codecs import BloscCodec, GzipCodec, ZstdCodec

from ..backends.counts import Archs4Array
from ..dims import COUNTS, SAMPLE, feature_dim
from ..errors import StoreIntegrityError
from ..storage.zarrstore import (
    FORMAT,
    PROGRESS,
    ROOT,
    STATE,
    TMP,
    ArrayMeta,
    ArrayReader,
    StoreIO,
    check_storage_options,
    crc32c,
    read_meta,
    store_name,
)
from . import skeleton
from .lineage import PARTS, describe_differences, job_identity, reads_from, same_location
from .plan import DEFAULT_MAX_MEMORY, ConversionPlan, Pass, parse_bytes, plan_conversion
from .units import (
    Job,
    Progress,
    encode_unit,
    execute,
    pending_units,
    read_unit_source,
    recorded_units,
    unit_digest,
)

__all__ = ["default_compressor", "to_zarr"]

#: Codec of the intermediate array of two-pass conversions (written once, read once).
FAST_CODEC = BloscCodec(cname="lz4", clevel=1, shuffle="shuffle")
CODECS = (BloscCodec, ZstdCodec, GzipCodec)


def default_compressor() -> BloscCodec:
    """LZ4 (level 5) through Blosc, with byte shuffle: the default counts codec.

    Chosen by measurement (``benchmarks/bench_zarr.py``; figures in the README section
    "Converting to Zarr"): on ARCHS4-like counts it stores ~28% of the raw bytes,
    encodes at ~1.4 GB/s and decodes at ~3.6 GB/s per core, so reading samples from a
    sample-major store costs a third of the CPU of inflating the HDF5's gzip chunks,
    and conversion is bound by reading the HDF5.  Blosc zstd level 1 (pass
    ``BloscCodec(cname="zstd", clevel=1, shuffle="shuffle")``) stores 20% of the raw
    bytes, a third less, but decodes no faster than gzip inflates.  Bit-shuffle packs
    these counts worse than byte shuffle with LZ4.

    Examples
    --------
    >>> default_compressor().cname.value, default_compressor().clevel
    ('lz4', 5)
    """
    return BloscCodec(cname="lz4", clevel=5, shuffle="shuffle")


# -- the source -------------------------------------------------------------------------
def _as_dataset(obj: Any) -> tuple[xr.Dataset, str]:
    if isinstance(obj, xr.DataArray):  # e.g. archs4x.normalize(...): its values are the counts
        obj = obj.to_dataset(name=COUNTS)
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
    if obj[COUNTS].dtype.kind not in "biuf":
        raise TypeError(f"counts of dtype {obj[COUNTS].dtype} cannot be stored (numbers only)")
    for name, coord in obj.coords.items():
        if coord.dtype.kind not in "biufOUST":
            raise TypeError(
                f"coordinate {name!r} has dtype {coord.dtype}: archs4x stores numbers, "
                "booleans and text (convert it, e.g. to text with .astype(str))"
            )
    return obj.transpose(fdim, SAMPLE, ...), fdim


def _source_array(ds: xr.Dataset) -> tuple[da.Array, bool]:
    """The counts as a Dask array, and whether reading a block of rows is cheap."""
    var = ds[COUNTS].variable
    if var.chunks is None:
        values = np.asarray(var.values)
        return da.from_array(values, chunks=values.shape), True
    arr = var.data
    if isinstance(arr, Archs4Array):  # read by position: rows of any columns are cheap
        return arr, int(arr.source.counts_reader().chunks[0]) <= 4096
    return arr, False


def _load_lazy_coordinates(ds: xr.Dataset, max_memory: int | str) -> xr.Dataset:
    """Compute Dask-backed coordinates (with the counts when they are small).

    Coordinates are written first; an alignment built lazily computes its per-sample
    statistics and its counts from the same tasks, so computing them together runs
    each task (each kallisto run) once.
    """
    lazy = [str(k) for k, c in ds.coords.items() if c.chunks is not None]
    if not lazy:
        return ds
    if ds[COUNTS].nbytes <= parse_bytes(max_memory) // 4:
        return ds.compute()
    return ds.assign_coords({k: ds[k].compute() for k in lazy})


def _check_codec(compressor: Any) -> Any:
    codec = compressor if compressor is not None else default_compressor()
    if not isinstance(codec, CODECS):
        raise TypeError(
            "compressor must be a Zarr v3 BloscCodec, ZstdCodec or GzipCodec "
            f"(zarr.codecs), got {type(codec).__name__}"
        )
    return codec


def _refuse_own_input(ds: xr.Dataset, store: str) -> None:
    for location in sorted(reads_from(ds)):
        if same_location(location, store):
            raise ValueError(
                f"cannot write to {store}: the dataset reads its values from {location}, "
                "which writing there would destroy before it is read. Write to another "
                "path (then move it), or load the data first"
            )


# -- the existing store -----------------------------------------------------------------
def _existing(io: StoreIO) -> tuple[bool, dict | None]:
    """(something is there, its root document or None when it is not Zarr v3)."""
    children = io.children()
    if not children:
        if io.local and os.path.exists(io.root) and not os.path.isdir(io.root):
            raise FileExistsError(f"{io.store} is a file, not a Zarr store")
        return False, None
    try:
        root = io.read_json(ROOT)
    except (FileNotFoundError, StoreIntegrityError):
        return True, None
    if root.get("zarr_format") != 3 or root.get("node_type") != "group":
        return True, None
    return True, root


def _check_existing(store: str, root: dict | None, job: dict) -> str:
    """Refuse what cannot be resumed; "same", or "content" when only the graph token differs."""
    if root is None:
        raise FileExistsError(
            f"{store} exists and is not a Zarr store archs4x can replace: refusing to "
            "write into it (choose another path)"
        )
    state = (root.get("attributes") or {}).get(STATE)
    if not state:
        raise FileExistsError(
            f"{store} holds a Zarr store archs4x did not write: pass overwrite=True to "
            "replace it, or choose another path"
        )
    if state.get("format") != FORMAT:
        raise FileExistsError(
            f"{store} holds a store written by an older archs4x (format "
            f"{state.get('format')}, without checksums): pass overwrite=True to convert again"
        )
    if state.get("fingerprint") == job["fingerprint"]:
        return "same"
    old = state.get("job") or {}
    differ = [p for p in PARTS if old.get(p) != job["parts"].get(p)]
    if differ == ["transformation"]:
        return "content"  # same operations, a graph token made at random: compare content
    _refuse_other_job(store, state, job)
    return "other"  # unreachable


def _refuse_other_job(store: str, state: dict, job: dict) -> None:
    diffs = describe_differences(state.get("job") or {}, job["parts"]) or [
        "its fingerprint differs"]  # fmt: skip
    old = state.get("source_name")
    where = f" (the store holds a conversion of {old})" if old else ""
    raise FileExistsError(
        f"{store} holds another archs4x conversion{where}, not the one asked for: "
        f"{'; '.join(diffs)}. Resuming would mix the two jobs: pass overwrite=True to "
        "replace it, or choose another path"
    )


def _same_content(io: StoreIO, store: str, storage_options: dict | None, state: dict,
                  src: da.Array, dtype: np.dtype) -> bool:  # fmt: skip
    """Whether recomputed units equal the recorded ones (first and last of each pass)."""
    for p in _passes(state):
        target = f"{TMP}/{COUNTS}" if p.target == "intermediate" else COUNTS
        try:
            doc = io.read_json(f"{target}/zarr.json")
        except FileNotFoundError:
            continue
        meta = ArrayMeta.from_json(target, doc)
        records = recorded_units(io, p.name, p.n_units)
        job = Job(store, storage_options, p, target, src, dtype.str)
        for i in sorted({min(records), max(records)} if records else set()):
            rows, cols = p.region(i)
            block = read_unit_source(job, rows, cols).astype(dtype, copy=False)
            objects = encode_unit(meta, block, rows, cols)
            if unit_digest([(k, len(b), crc32c(b)) for k, b in objects]) != records[i]:
                return False
    return True


# -- state ----------------------------------------------------------------------------
def _layout_record(plan: ConversionPlan, dtype: np.dtype, codec: Any) -> dict:
    return {
        "format": FORMAT,
        "layout": plan.layout,
        "shape": list(plan.shape),
        "dtype": dtype.str,
        "chunks": list(plan.chunks),
        "shards": list(plan.shards) if plan.shards else None,
        "codec": codec.to_dict(),
        "passes": [[p.name, p.target, list(p.unit)] for p in plan.passes],
    }


def _new_state(plan: ConversionPlan, job: dict, fdim: str, codec: Any) -> dict:
    return {
        "format": FORMAT,
        "complete": False,
        "skeleton": False,
        "layout": plan.layout,
        "feature_dim": fdim,
        "fingerprint": job["fingerprint"],
        "job": job["parts"],
        "source_name": job["source_name"],
        "write_id": uuid.uuid4().hex,
        "chunks": list(plan.chunks),
        "shards": list(plan.shards) if plan.shards else None,
        "compressor": codec.to_dict(),
        "passes": [
            {"name": p.name, "target": p.target, "shape": list(p.shape), "unit": list(p.unit)}
            for p in plan.passes
        ],
    }


def _passes(state: dict) -> tuple[Pass, ...]:
    return tuple(
        Pass(p["name"], p["target"], tuple(p["shape"]), tuple(p["unit"])) for p in state["passes"]
    )


def _write_skeleton(io: StoreIO, ds: xr.Dataset, fdim: str, plan: ConversionPlan, codec: Any,
                    attrs: dict, state: dict) -> None:  # fmt: skip
    skeleton.write_root(io, attrs, state)  # first: the store is this job's from now on
    for child in io.children():
        if child != ROOT:
            io.delete(child)
    names = [str(k) for k in ds.coords]
    for name in names:  # one coordinate in memory at a time
        skeleton.write_coordinate(io, name, ds[name].variable)
    counts = ds[COUNTS]
    others = [n for n in names if n not in (fdim, SAMPLE)]
    cattrs = {**skeleton.json_attrs(counts.attrs, "counts"), "coordinates": " ".join(others)}
    io.write_json(
        f"{COUNTS}/zarr.json",
        skeleton.counts_doc(
            plan.shape, counts.dtype, plan.chunks, plan.shards, codec, (fdim, SAMPLE), cattrs
        ),
    )
    io.write_json(f"{PROGRESS}/zarr.json", skeleton.group_doc())
    for p in plan.passes:
        io.write_json(f"{PROGRESS}/{p.name}/zarr.json", skeleton.progress_doc(p.n_units))
    if plan.intermediate_chunks:
        io.write_json(f"{TMP}/zarr.json", skeleton.group_doc())
        io.write_json(
            f"{TMP}/{COUNTS}/zarr.json",
            skeleton.counts_doc(
                plan.shape, counts.dtype, plan.intermediate_chunks, None, FAST_CODEC, None, {}
            ),
        )
    skeleton.write_root(io, attrs, {**state, "skeleton": True})


def _repair_coordinates(io: StoreIO, ds: xr.Dataset, progress: bool) -> int:
    """Check every coordinate array of a resumed store; rewrite those that are damaged."""
    fixed = 0
    for name in (str(k) for k in ds.coords):
        try:
            reader = ArrayReader(io, read_meta(io, name))
            sound = all(not reader.check_object(obj) for obj in reader.meta.objects())
        except (FileNotFoundError, StoreIntegrityError, KeyError, ValueError):
            sound = False
        if not sound:
            skeleton.write_coordinate(io, name, ds[name].variable)
            fixed += 1
            if progress:
                print(f"{io.store}: coordinate {name!r} was damaged: written again",
                      file=sys.stderr)  # fmt: skip
    return fixed


def _clean_partial(io: StoreIO) -> None:
    for path in io.partial_files():  # temporary files of a killed writer
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


# -- public -------------------------------------------------------------------------
def to_zarr(
    ds: xr.Dataset | xr.DataArray,
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
    """Write an ARCHS4 dataset (or a selection or transformation of one) to a Zarr v3 store.

    Parameters
    ----------
    ds : xarray.Dataset or xarray.DataArray
        From :func:`archs4x.open_dataset` or :func:`open_zarr`, any selection of one
        (``ds.isel(sample=...)``, ``ds.sel(gene=...)``), a transformation
        (``archs4x.normalize(ds, "cpm")``), or an alignment result of
        :mod:`archs4x.align`: ``counts`` (features x samples) plus coordinates
        (numbers, booleans or text).
    store : path or fsspec URL
        A local directory, or ``s3://...``, ``gs://...``, ``memory://...``.
    layout : {"sample", "gene"}
        ``"sample"``: chunks of all features x 1 sample in shards of 256 samples, for
        per-sample work and any sample selection.  ``"gene"``: chunks of 16 genes x
        65,536 samples (shards of up to 2000 genes), so one gene over all samples is a
        few chunk reads.  See :func:`archs4x.write.plan.default_chunks`.
    chunks, shards : (int, int), optional
        Override the (features, samples) chunk and shard shapes; ``shards=None``
        writes one object per chunk.  A shard is the unit of writing and resuming.
    compressor : zarr codec, optional
        ``zarr.codecs.BloscCodec``, ``ZstdCodec`` or ``GzipCodec``; default
        :func:`default_compressor`.  A ``crc32c`` checksum always follows it.
    overwrite : bool
        Start over, deleting what ``store`` holds.  Otherwise a store holding an
        unfinished conversion of the same job is resumed, a finished one is verified
        (and repaired), and anything else is refused.
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
        On resume (or a rerun on a complete store), read back each unit already
        recorded and check it against its digest; damaged units are written again.

    Returns
    -------
    str
        The store.

    Raises
    ------
    ValueError
        Bad options, a dataset without ``counts``, or a target the dataset reads from.
    FileExistsError
        ``store`` holds something else (another conversion: the message says what
        differs; a store of another program; not Zarr) and ``overwrite`` is false.

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
    check_storage_options(storage_options, store)  # reject storage_options for a local path
    codec = _check_codec(compressor)
    _refuse_own_input(ds, store)  # point of no return is far below: nothing touched yet
    ds = _load_lazy_coordinates(ds, max_memory)
    src, rows_cheap = _source_array(ds)
    dtype = np.dtype(ds[COUNTS].dtype)
    plan = plan_conversion(
        (ds.sizes[fdim], ds.sizes[SAMPLE]), layout, chunks=chunks, shards=shards,
        itemsize=dtype.itemsize, rows_cheap=rows_cheap, max_memory=max_memory,
        workers=workers,
    )  # fmt: skip
    attrs = skeleton.json_attrs(ds.attrs, "dataset")
    if STATE in attrs:
        attrs.pop(STATE)  # the state of the store ds was read from is not ours
    job = job_identity(ds, _layout_record(plan, dtype, codec))
    io = StoreIO(store, storage_options)
    exists, root = _existing(io)
    if exists and (not overwrite or root is None):
        if _check_existing(store, root, job) == "content":
            state = dict(root["attributes"][STATE])  # type: ignore[index]
            if not _same_content(io, store, storage_options, state, src, dtype):
                _refuse_other_job(store, state, job)
            state.update(fingerprint=job["fingerprint"], job=job["parts"])
            write = skeleton.write_final_root if state.get("complete") else skeleton.write_root
            write(io, attrs, state)  # the same job: recorded with this process's token
            root = io.read_json(ROOT)
    state = dict((root or {}).get("attributes", {}).get(STATE) or {})
    fresh = not exists or overwrite or not state.get("skeleton")
    if fresh:
        state = _new_state(plan, job, fdim, codec)
        _write_skeleton(io, ds, fdim, plan, codec, attrs, state)
        state["skeleton"] = True
    else:
        _clean_partial(io)
    was_complete = bool(state.get("complete"))
    if was_complete and not verify:
        return store
    fixed = 0 if fresh or not verify else _repair_coordinates(io, ds, progress)
    repaired = _run_passes(io, store, storage_options, state, src, dtype, plan, verify,
                           progress)  # fmt: skip
    if not was_complete or repaired or fixed:
        if io.exists(f"{TMP}/zarr.json"):
            io.delete(TMP)
        _clean_partial(io)
        skeleton.write_final_root(io, attrs, {**state, "complete": True})
    return store


def _run_passes(io: StoreIO, store: str, storage_options: dict | None, state: dict,
                src: da.Array, dtype: np.dtype, plan: ConversionPlan, verify: bool,
                progress: bool) -> int:  # fmt: skip
    """Write (or verify and repair) every unit; returns how many were written."""
    passes = _passes(state)
    final = passes[-1]

    def job_for(p: Pass, source: Any) -> tuple[Job, ArrayMeta, dict]:
        target = f"{TMP}/{COUNTS}" if p.target == "intermediate" else COUNTS
        doc = io.read_json(f"{target}/zarr.json")
        job = Job(store, storage_options, p, target, source, dtype.str)
        return job, ArrayMeta.from_json(target, doc), doc

    def pending(job: Job, meta: ArrayMeta) -> list[int]:
        p = job.pass_
        bar = Progress(progress and verify, f"archs4x to_zarr verify {p.name}", p.n_units, "")
        todo, bad = pending_units(job, meta, verify, lambda _i: bar.update())
        if progress and bad:
            print(f"{store}: {bad} damaged unit(s) of pass {p.name} will be written again",
                  file=sys.stderr)  # fmt: skip
        return todo

    def run(job: Job, meta: ArrayMeta, doc: dict, todo: list[int] | None = None) -> int:
        p = job.pass_
        todo = pending(job, meta) if todo is None else todo
        unit_bytes = p.unit[0] * p.unit[1] * dtype.itemsize
        bar = Progress(progress, f"archs4x to_zarr {p.name} ({state['layout']} layout)",
                       p.n_units)  # fmt: skip
        bar.done = p.n_units - len(todo)
        in_flight = max(1, min(plan.in_flight, plan.max_memory // (3 * unit_bytes) or 1))
        execute(job, doc, todo, in_flight, bar.update)
        missing, _ = pending_units(job, meta, verify=False)
        if missing:  # never mark complete on faith
            raise RuntimeError(f"{store}: {len(missing)} units of pass {p.name} not recorded")
        return len(todo)

    if len(passes) == 1:
        return run(*job_for(final, src))
    via_tmp = io.exists(f"{TMP}/{COUNTS}/zarr.json")
    final_job = job_for(final, f"{TMP}/{COUNTS}" if via_tmp else src)
    todo = pending(final_job[0], final_job[1])
    if todo and via_tmp:
        run(*job_for(passes[0], src))
    # after completion the intermediate is gone: repairs read straight from the source
    return run(*final_job, todo=todo)
