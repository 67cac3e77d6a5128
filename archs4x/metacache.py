"""A columnar cache of the sample metadata of ARCHS4 files.

The metadata of a real file is ~1,000,000 samples x ~30 text fields: decoding it from
HDF5 with Python loops at every search is what makes searches slow.  :class:`MetaCache`
decodes a field once, straight into an Apache Arrow column (no per-string Python work),
and keeps it as an uncompressed Arrow IPC file under
``archs4x.datasets.cache_dir() / "metacache"``; later loads memory-map it (no copy, no
decoding), so a warm search costs only the vectorised match (RE2 through
``pyarrow.compute``).

Safety:

- The cache of a file lives in a folder named by the file's identity
  ``(absolute path, size, mtime_ns)`` (:func:`archs4x.files.file_identity`); the
  identity is checked at every access, so a replaced or modified file is never served
  stale columns (its old folder is removed when the new one is made).
- Columns are written to a temporary file in the same folder and renamed into place
  (``os.replace`` is atomic): concurrent processes may build the same column, each
  reader sees a complete file, and the last writer wins with identical content.
- Columns are built in blocks of :data:`BLOCK_ROWS` samples, so building one field
  never holds more than a block of Python strings.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import threading
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .datasets import cache_dir
from .files import file_identity, open_h5
from .layout import detect_layout
from .text import decode_strings, repair_mojibake

__all__ = ["BLOCK_ROWS", "CACHE_FORMAT", "MetaCache", "clear", "root"]

CACHE_FORMAT = 1
BLOCK_ROWS = 262_144
_MOJIBAKE_RE = "[\u00c2-\u00f4][\u0080-\u00bf]"

_lock = threading.Lock()
_memo: dict[tuple, pa.ChunkedArray] = {}


def root() -> Path:
    """The folder holding every file's metadata cache.

    Examples
    --------
    >>> root().name
    'metacache'
    """
    return cache_dir() / "metacache"


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
    path = None if source is None else file_identity(source)[0]
    with _lock:
        for k in [k for k in _memo if path is None or k[0][0] == path]:
            del _memo[k]
    if path is None:
        shutil.rmtree(root(), ignore_errors=True)
        return
    for manifest in root().glob("*/manifest.json"):
        try:
            info = json.loads(manifest.read_text())
        except (OSError, ValueError):
            continue
        if info.get("path") == path:
            shutil.rmtree(manifest.parent, ignore_errors=True)


def _key(ident: tuple[str, int, int]) -> str:
    text = "\0".join(map(str, (*ident, CACHE_FORMAT)))
    return hashlib.sha1(text.encode()).hexdigest()[:24]


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
    """HDF5 string values (bytes objects or fixed ``S``) -> Arrow large_string."""
    arr = None
    if raw.dtype == object and all(isinstance(v, bytes) for v in raw[:16]):
        try:
            arr = pa.array(raw, type=pa.large_binary()).cast(pa.large_string())
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            arr = None  # invalid UTF-8 or mixed objects: decode the careful way
    if arr is None:
        arr = pa.array(decode_strings(raw), type=pa.large_string())
    if repair:
        suspect = pc.match_substring_regex(arr, _MOJIBAKE_RE)
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
    source : path-like
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

    def __init__(self, source: str | os.PathLike, *, repair: bool = False):
        self.source = file_identity(source)[0]
        self.repair = bool(repair)

    # -- identity ---------------------------------------------------------------------
    def identity(self) -> tuple[str, int, int]:
        """The file's current ``(path, size, mtime_ns)``: re-read at every access."""
        return file_identity(self.source)

    def directory(self, ident: tuple[str, int, int] | None = None) -> Path:
        """This file version's cache folder (created if needed)."""
        ident = ident or self.identity()
        d = root() / _key(ident)
        if not d.is_dir():
            d.mkdir(parents=True, exist_ok=True)
            manifest = {"path": ident[0], "size": ident[1], "mtime_ns": ident[2],
                        "format": CACHE_FORMAT}  # fmt: skip
            _atomic_write(d / "manifest.json", lambda p: Path(p).write_text(json.dumps(manifest)))
            self._drop_stale(ident)
        return d

    def _drop_stale(self, ident: tuple[str, int, int]) -> None:
        """Remove caches of older versions of the same path (best effort)."""
        for manifest in root().glob("*/manifest.json"):
            try:
                info = json.loads(manifest.read_text())
            except (OSError, ValueError):
                continue
            if info.get("path") == ident[0] and manifest.parent.name != _key(ident):
                shutil.rmtree(manifest.parent, ignore_errors=True)
        with _lock:
            for k in [k for k in _memo if k[0][0] == ident[0] and k[0] != ident]:
                del _memo[k]

    def _file_name(self, field: str) -> str:
        return f"{field}.repaired.arrow" if self.repair else f"{field}.arrow"

    # -- fields -----------------------------------------------------------------------
    def fields(self) -> tuple[str, ...]:
        """Names of the file's sample fields (as stored in ``meta/samples``)."""
        return detect_layout(open_h5(self.source)).sample_fields

    def cached_fields(self) -> tuple[str, ...]:
        """Fields whose column is already on disk for the current file version."""
        d = root() / _key(self.identity())
        suffix = ".repaired.arrow" if self.repair else ".arrow"
        if not d.is_dir():
            return ()
        names = (p.name[: -len(suffix)] for p in d.glob(f"*{suffix}"))
        return tuple(sorted(n for n in names if self.repair or not n.endswith(".repaired")))

    def column(self, field: str) -> pa.ChunkedArray:
        """The whole column of sample field ``field`` (file order), building it if needed.

        Strings come back as ``large_string``, numbers with their stored type.

        Raises
        ------
        KeyError
            ``field`` is not a sample field of the file (the message lists them).
        """
        ident = self.identity()
        memo_key = (ident, self.repair, field)
        with _lock:
            hit = _memo.get(memo_key)
        if hit is not None:
            return hit
        path = root() / _key(ident) / self._file_name(field)
        if not path.exists():
            self.directory(ident)
            self._build(field, path)
            if self.identity() != ident:  # the file changed while we read it
                path.unlink(missing_ok=True)
                return self.column(field)
        with pa.memory_map(str(path), "r") as source:
            col = pa.ipc.open_file(source).read_all().column(0)
        with _lock:
            _memo[memo_key] = col
        return col

    def _build(self, field: str, path: Path) -> None:
        f = open_h5(self.source)
        layout = detect_layout(f)
        if field not in layout.sample_fields:
            raise KeyError(
                f"{field!r} is not a sample field of {self.source}; "
                f"available: {', '.join(layout.sample_fields)}"
            )
        dset = f[layout.sample_path(field)]
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
