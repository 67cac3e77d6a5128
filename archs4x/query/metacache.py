"""A columnar cache of the sample metadata of ARCHS4 files.

The metadata of a real file is ~1,000,000 samples x ~30 text fields: decoding it from
HDF5 with Python loops at every search is what makes searches slow.  :class:`MetaCache`
decodes a field once, straight into an Apache Arrow column, and keeps it as an
uncompressed Arrow IPC file under ``cache_dir()/metacache``; later loads memory-map it
(no copy, no decoding), so a warm search costs only the vectorised match.

Safety:

- The cache of a file lives in a folder named by the source's identity key (local:
  path, size, modification and change times, inode; remote: URL, size, ETag), so a
  replaced or edited file is never served stale columns (the old folder is removed).
- Every access checks the source (:meth:`archs4x.storage.Source.check`): a file that
  changed after it was opened raises :class:`~archs4x.errors.FileChangedError`.
- Columns are written to a temporary file in the same folder and renamed into place:
  concurrent processes may build the same column, each reader sees a complete file.
- Columns are built in blocks of :data:`BLOCK_ROWS` samples.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .._options import cache_dir
from ..storage.caches import LRUCache
from ..storage.sources import Source, open_source
from ..storage.text import MOJIBAKE_PATTERN, decode_strings, repair_mojibake

__all__ = ["BLOCK_ROWS", "CACHE_FORMAT", "MetaCache", "clear", "root"]

CACHE_FORMAT = 2
BLOCK_ROWS = 262_144

_memo: LRUCache[pa.ChunkedArray] = LRUCache("metadata-columns", capacity=lambda: 256)


def root() -> Path:
    """The folder holding every file's metadata cache.

    Examples
    --------
    >>> root().name
    'metacache'
    """
    return cache_dir() / "metacache"


def _manifests():
    for manifest in root().glob("*/manifest.json"):
        try:
            yield manifest, json.loads(manifest.read_text())
        except (OSError, ValueError):
            continue


def clear(source: str | os.PathLike | None = None) -> None:
    """Delete cached columns: those of ``source`` (every version), or all of them.

    Examples
    --------
    >>> import os, tempfile
    >>> from archs4x.datasets import write_archs4_file
    >>> p = write_archs4_file(os.path.join(tempfile.mkdtemp(), "x.h5"), n_genes=20, n_samples=5)
    >>> _ = MetaCache(p).column("title")
    >>> MetaCache(p).cached_fields()
    ('title',)
    >>> clear(p)
    >>> MetaCache(p).cached_fields()
    ()
    """
    _memo.clear()
    if source is None:
        shutil.rmtree(root(), ignore_errors=True)
        return
    name = open_source(source).name
    for manifest, info in _manifests():
        if info.get("name") == name:
            shutil.rmtree(manifest.parent, ignore_errors=True)


def _atomic_write(path: Path, write) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _to_strings(raw: np.ndarray, repair: bool) -> pa.Array:
    """Stored string values (bytes objects, fixed ``S`` or str) -> Arrow large_string."""
    arr = None
    if raw.dtype == object and all(isinstance(v, bytes) for v in raw[:16]):
        try:
            arr = pa.array(raw, type=pa.large_binary()).cast(pa.large_string())
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            arr = None  # invalid UTF-8 or mixed objects: decode the careful way
    if arr is None:
        arr = pa.array(decode_strings(raw), type=pa.large_string())
    if repair:
        suspect = pc.match_substring_regex(arr, MOJIBAKE_PATTERN)
        rows = np.flatnonzero(suspect.to_numpy(zero_copy_only=False))
        if rows.size:
            values = np.asarray(arr.to_numpy(zero_copy_only=False), dtype=object)
            values[rows] = [repair_mojibake(v) for v in values[rows]]
            arr = pa.array(values, type=pa.large_string())
    return arr


class MetaCache:
    """The cached sample metadata columns of one ARCHS4 file.

    Parameters
    ----------
    source : path-like, URL or Source
        An ARCHS4 HDF5 file.
    repair : bool, default False
        Cache text with double encoding repaired (as ``open_dataset(repair_text=True)``
        shows it); raw and repaired text are cached separately.

    Examples
    --------
    >>> import archs4x
    >>> mc = MetaCache(archs4x.datasets.example_file())
    >>> col = mc.column("title")          # built on first use, memory-mapped after
    >>> len(col), col.type
    (400, DataType(large_string))
    >>> mc.column("singlecellprobability").type
    DataType(double)
    """

    def __init__(self, source: Any, *, repair: bool = False) -> None:
        self.source: Source = open_source(source)
        self.repair = bool(repair)

    def directory(self) -> Path:
        """This file version's cache folder (created if needed)."""
        d = root() / self.source.cache_key
        if not (d / "manifest.json").exists():
            d.mkdir(parents=True, exist_ok=True)
            manifest = {"name": self.source.name, "key": self.source.cache_key,
                        "format": CACHE_FORMAT}  # fmt: skip
            _atomic_write(d / "manifest.json", lambda p: Path(p).write_text(json.dumps(manifest)))
            self._drop_stale()
        return d

    def _drop_stale(self) -> None:
        """Remove caches of older versions of the same file (best effort)."""
        for manifest, info in _manifests():
            if info.get("name") == self.source.name and info.get("key") != self.source.cache_key:
                shutil.rmtree(manifest.parent, ignore_errors=True)
        stale = self.source.cache_key
        name = self.source.name

        def older_version(key: Any) -> bool:  # keys: (cache_key, repair, field, name)
            return key[0] != stale and key[3] == name

        _memo.discard(older_version)

    def _file_name(self, field: str) -> str:
        return f"{field}.v{CACHE_FORMAT}.{'repaired' if self.repair else 'raw'}.arrow"

    def fields(self) -> tuple[str, ...]:
        """Names of the file's sample fields (as stored in ``meta/samples``)."""
        return self.source.layout().sample_fields

    def cached_fields(self) -> tuple[str, ...]:
        """Fields whose column is already on disk for this file version."""
        d = root() / self.source.cache_key
        suffix = f".v{CACHE_FORMAT}.{'repaired' if self.repair else 'raw'}.arrow"
        if not d.is_dir():
            return ()
        return tuple(sorted(p.name[: -len(suffix)] for p in d.glob(f"*{suffix}")))

    def column(self, field: str) -> pa.ChunkedArray:
        """The whole column of sample field ``field`` (file order), building it if needed.

        Strings come back as ``large_string``, numbers with their stored type.

        Raises
        ------
        KeyError
            ``field`` is not a sample field of the file (the message lists them).
        FileChangedError
            The file changed since it was opened.
        """
        self.source.check()
        memo_key = (self.source.cache_key, self.repair, field, self.source.name)
        hit = _memo.get(memo_key)
        if hit is not None:
            return hit
        path = self.directory() / self._file_name(field)
        if not path.exists():
            self._build(field, path)
            self.source.check()  # the file must not have changed while it was read
        with pa.memory_map(str(path), "r") as mapped:
            col = pa.ipc.open_file(mapped).read_all().column(0)
        return _memo.put(memo_key, col)

    def _build(self, field: str, path: Path) -> None:
        layout = self.source.layout()
        if field not in layout.sample_fields:
            raise KeyError(
                f"{field!r} is not a sample field of {self.source.name}; "
                f"available: {', '.join(layout.sample_fields)}"
            )
        dset = self.source.field(layout.sample_path(field))
        n = int(dset.shape[0])
        is_text = dset.dtype.kind in "OSU"

        def write(tmp: str) -> None:
            writer = None
            try:
                for start in range(0, max(n, 1), BLOCK_ROWS):
                    raw = np.asarray(dset[start : min(n, start + BLOCK_ROWS)])
                    if is_text:
                        arr = _to_strings(raw, self.repair)
                    else:
                        arr = pa.array(raw.astype(raw.dtype.newbyteorder("="), copy=False))
                    batch = pa.record_batch([arr], names=[field])
                    if writer is None:
                        writer = pa.ipc.new_file(tmp, batch.schema)
                    writer.write_batch(batch)
            finally:
                if writer is not None:
                    writer.close()

        _atomic_write(path, write)
