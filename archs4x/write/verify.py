"""Check a whole archs4x Zarr store against its recorded checksums.

:func:`verify_zarr` reads every stored object once and checks:

* each chunk's CRC-32C (and each shard index's), that every chunk of every array is
  present (a complete store holds every chunk, zeros included) and that no shard is
  truncated;
* each unit of ``counts`` against the digest recorded when it was written (BLAKE2b of
  its objects' keys, sizes and CRC-32Cs), so an object replaced by another job's is
  caught even when its own checksums hold;
* the consolidated metadata against every array's own ``zarr.json``;
* that the conversion finished.

It decompresses nothing: checking is bound by reading the bytes.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

from ..errors import StoreIntegrityError
from ..storage.pool import reader_pool
from ..storage.zarrstore import (
    COUNTS_ARRAY,
    FORMAT,
    PROGRESS,
    ROOT,
    STATE,
    TMP,
    ArrayMeta,
    ArrayReader,
    StoreIO,
    crc32c,
    store_name,
)
from .plan import Pass
from .units import Progress, recorded_units, unit_digest, unit_objects

__all__ = ["VerifyReport", "verify_zarr"]

#: Problems listed by ``str(report)`` (all are in ``report.problems``).
SHOWN = 20


@dataclass
class VerifyReport:
    """What :func:`verify_zarr` found.

    ``ok`` is true when the store is complete and every check passed; ``problems``
    lists each failure in words (array, chunk and object named).
    """

    store: str
    complete: bool = False
    arrays: int = 0
    objects: int = 0
    chunks: int = 0
    units: int = 0
    nbytes: int = 0
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.complete and not self.problems

    @property
    def mb_per_s(self) -> float:
        return self.nbytes / max(self.seconds, 1e-9) / 1e6

    def __str__(self) -> str:
        head = "OK" if self.ok else f"DAMAGED: {len(self.problems)} problem(s)"
        lines = [
            f"{self.store}: {head}",
            f"  {self.arrays} arrays, {self.objects} objects, {self.chunks} chunks, "
            f"{self.units} units checked; {self.nbytes / 1e6:.1f} MB read in "
            f"{self.seconds:.2f} s ({self.mb_per_s:.0f} MB/s)",
        ]
        lines += [f"  - {p}" for p in self.problems[:SHOWN]]
        if len(self.problems) > SHOWN:
            lines.append(f"  ... and {len(self.problems) - SHOWN} more")
        return "\n".join(lines)


def _array_docs(io: StoreIO, root: dict, report: VerifyReport) -> dict[str, dict]:
    listed = {}
    for key in io.list(""):
        if key.endswith("/zarr.json"):
            path = key[: -len("/zarr.json")]
            try:
                listed[path] = io.read_json(key)
            except StoreIntegrityError as exc:
                report.problems.append(str(exc))
    consolidated = (root.get("consolidated_metadata") or {}).get("metadata")
    if consolidated is not None:
        for path, doc in consolidated.items():
            own = listed.get(path)
            if own is None:
                report.problems.append(f"{io.store}: {path}/zarr.json is missing")
                listed[path] = doc
            elif doc.get("node_type") == "array" and own != doc:
                report.problems.append(
                    f"{io.store}: {path}/zarr.json differs from the consolidated metadata"
                )
    return {p: d for p, d in listed.items() if d.get("node_type") == "array"}


def verify_zarr(
    store: str, *, storage_options: dict | None = None, progress: bool = False
) -> VerifyReport:
    """Check every byte of an archs4x Zarr store against its checksums and records.

    Parameters
    ----------
    store : path or fsspec URL
    storage_options : dict, optional
        fsspec options for URL stores.
    progress : bool
        Print progress to stderr.

    Returns
    -------
    VerifyReport
        ``report.ok`` and, for each failure, a message naming the array, chunk and
        object (``report.problems``); ``str(report)`` is a summary.

    Raises
    ------
    FileNotFoundError
        Nothing at ``store``.
    ValueError
        ``store`` is not a store written by :func:`archs4x.to_zarr`.

    Examples
    --------
    >>> import tempfile, archs4x
    >>> ds = archs4x.open_dataset(archs4x.datasets.example_file())
    >>> out = archs4x.to_zarr(ds.isel(sample=slice(0, 20)), tempfile.mkdtemp() + "/v.zarr")
    >>> report = archs4x.verify_zarr(out)
    >>> report.ok, report.problems
    (True, [])
    """
    t0 = time.perf_counter()
    store = store_name(store)
    io = StoreIO(store, storage_options)
    try:
        root = io.read_json(ROOT)
    except FileNotFoundError:
        raise FileNotFoundError(f"no Zarr store at {store}") from None
    except NotADirectoryError:  # a file where a store's folder should be
        raise ValueError(f"{store} is a file, not a Zarr store (a folder)") from None
    state = (root.get("attributes") or {}).get(STATE)
    if not state:
        raise ValueError(f"{store} is not a store written by archs4x.to_zarr")
    report = VerifyReport(store, complete=bool(state.get("complete")))
    if state.get("format") != FORMAT:
        report.problems.append(
            f"{store}: written by an older archs4x (format {state.get('format')}) without "
            "per-chunk checksums: nothing to verify against; convert it again"
        )
        return report
    if not report.complete:
        report.problems.append(f"{store}: the conversion did not finish (rerun to_zarr)")
    docs = _array_docs(io, root, report)
    metas = {}
    for path, doc in docs.items():
        if report.complete and path.startswith(f"{TMP}/"):
            continue
        try:
            metas[path] = ArrayMeta.from_json(path, doc)
        except (KeyError, ValueError) as exc:
            report.problems.append(f"{store}: array {path!r} has unreadable metadata ({exc})")
    report.arrays = len(metas)
    work = [(path, obj) for path, meta in metas.items() for obj in meta.objects()]
    bar = Progress(progress, "archs4x verify", len(work), what="objects")
    readers = {path: ArrayReader(io, meta) for path, meta in metas.items()}
    found: dict[str, tuple[int, int]] = {}

    def check(item: tuple[str, tuple[int, ...]]) -> tuple[list[str], int, int, str, tuple]:
        path, obj = item
        meta = metas[path]
        key = meta.object_key(obj)
        try:
            raw = io.read(key)
        except FileNotFoundError:
            return [readers[path].missing_message(key)], 0, 0, key, ()
        problems = readers[path].check_object(obj, raw)
        return problems, len(raw), len(meta.chunks_of(obj)), key, (len(raw), crc32c(raw))

    pool, _threads = reader_pool()
    for problems, nbytes, nchunks, key, digest_part in pool.map(check, work):
        report.problems += problems
        report.objects += 1
        report.nbytes += nbytes
        report.chunks += nchunks
        if digest_part:
            found[key] = digest_part
        bar.update(nbytes)
    if COUNTS_ARRAY in metas:
        _check_units(io, state, metas[COUNTS_ARRAY], found, report)
    report.seconds = time.perf_counter() - t0
    return report


def _check_units(io: StoreIO, state: dict, meta: ArrayMeta, found: dict,
                 report: VerifyReport) -> None:  # fmt: skip
    """Each recorded unit of ``counts`` against the digest of its objects as stored."""
    for p in state.get("passes", []):
        if p["target"] != "final":
            continue
        pass_ = Pass(p["name"], p["target"], tuple(p["shape"]), tuple(p["unit"]))
        records = recorded_units(io, pass_.name, pass_.n_units)
        for i in range(pass_.n_units):
            rows, cols = pass_.region(i)
            keys = [meta.object_key(obj) for obj in unit_objects(meta, rows, cols)]
            if i not in records:
                if report.complete:
                    report.problems.append(
                        f"{io.store}: unit {i} of {COUNTS_ARRAY!r} (pass {pass_.name}) has no "
                        f"sound record in {PROGRESS}/{pass_.name}"
                    )
                continue
            report.units += 1
            if any(k not in found for k in keys):
                continue  # already reported as missing
            digest = unit_digest([(k, *found[k]) for k in keys])
            if digest != records[i]:
                report.problems.append(
                    f"{io.store}: unit {i} of {COUNTS_ARRAY!r} ({', '.join(keys)}) does not "
                    "match the digest recorded when it was written (replaced or rewritten "
                    "since)"
                )


def report_json(report: VerifyReport) -> str:
    """The report as JSON (for scripts)."""
    return json.dumps({"store": report.store, "ok": report.ok, "complete": report.complete,
                       "arrays": report.arrays, "objects": report.objects,
                       "chunks": report.chunks, "units": report.units,
                       "bytes": report.nbytes, "seconds": report.seconds,
                       "problems": report.problems}, indent=2)  # fmt: skip
