"""Sources: the ARCHS4 HDF5 files archs4x reads, local or remote, behind one protocol.

A :class:`Source` is small, hashable and picklable: it is what Dask tasks, lazily indexed
arrays and caches carry, never an open file (h5py objects do not pickle, and a handle
opened before a ``fork`` is unsafe in the child).  Each process opens the file itself,
once, through the bounded caches of :mod:`archs4x.storage.caches`.  A source is pinned to
the file version it was opened on: :meth:`Source.check` raises
:class:`~archs4x.errors.FileChangedError` if the file was replaced or modified since.

* :class:`LocalFile` - a path; its identity is :class:`~archs4x.storage.identity.FileIdentity`.
* :class:`RemoteFile` - an ``https://`` or ``s3://`` URL with fsspec storage options; its
  identity is the size and ETag the server reported.

:func:`open_source` makes the right one from a path or URL; nothing else in archs4x asks
whether a string is a URL.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import fsspec
import h5py
import numpy as np

from .._options import cache_dir
from ..errors import ChunkDecodeError, ChunkReadError, FileChangedError, NotArchs4Error
from .btree import ChunkBTree, UnsupportedLayout, btree_root
from .caches import LRUCache, register_cleanup
from .chunktable import (
    SMALL_FILE_CHUNKS,
    ChunkTable,
    load_table,
    save_table,
    table_from_btree,
    table_from_chunk_iter,
)
from .codecs import filter_plan
from .identity import FileIdentity
from .layout import EXPRESSION, Layout, detect_layout
from .reader import ChunkReader
from .remote import RangeFile, fetch_ranges, probe

__all__ = [
    "ChunkLocator",
    "LocalFile",
    "RemoteFile",
    "Source",
    "build_chunk_table",
    "is_url",
    "open_source",
]


@runtime_checkable
class Source(Protocol):
    """What archs4x needs of an ARCHS4 file, wherever it lives."""

    @property
    def name(self) -> str:
        """The path or URL, for messages."""

    @property
    def cache_key(self) -> str:
        """Identifies this version of the file in on-disk caches."""

    def check(self) -> None:
        """Raise FileChangedError if the file changed since this source was opened."""

    def h5(self) -> h5py.File:
        """This process's read-only handle of the file."""

    def layout(self) -> Layout:
        """Where the counts and each metadata field live in this file."""

    def field(self, path: str) -> h5py.Dataset:
        """A metadata dataset, readable locally (remote fields are fetched once)."""

    def counts_reader(self) -> ChunkReader:
        """This process's reader of ``data/expression``."""


def is_url(source: Any) -> bool:
    """True for ``scheme://...`` strings other than ``file://`` (remote sources).

    Examples
    --------
    >>> is_url("s3://bucket/x.h5"), is_url("data/x.h5"), is_url("file:///tmp/x.h5")
    (True, False, False)
    """
    return isinstance(source, str) and "://" in source and not source.startswith("file://")


def open_source(source: Any, storage_options: dict | None = None) -> Source:
    """A :class:`Source` for a path, a URL, or a source.

    Raises
    ------
    FileNotFoundError
        Nothing at the path or URL.
    NotArchs4Error
        A local file that is not HDF5 (or is truncated).
    ConnectionError
        The server of a URL cannot be reached.

    Examples
    --------
    >>> from archs4x.datasets import example_file
    >>> src = open_source(example_file())
    >>> type(src).__name__, src.layout().level
    ('LocalFile', 'gene')
    """
    if isinstance(source, LocalFile | RemoteFile):
        return source
    if is_url(source):
        return RemoteFile.resolve(source, storage_options)
    if storage_options:
        raise ValueError("storage_options only apply to remote (https:// or s3://) sources")
    if not isinstance(source, str | os.PathLike):
        raise TypeError(f"expected a path or URL, got {type(source).__name__}")
    path = os.fspath(source)
    path = path[len("file://") :] if path.startswith("file://") else path
    src = LocalFile(FileIdentity.of(path))
    src.h5()  # fail now for a file that is not HDF5
    return src


# -- per-process state, bounded --------------------------------------------------------
def _open_files_capacity() -> int:
    from .._options import OPTIONS

    return int(OPTIONS["open_files"])


_handles: LRUCache[h5py.File] = LRUCache("open-files", _open_files_capacity)
_readers: LRUCache[ChunkReader] = LRUCache("chunk-readers", _open_files_capacity)
_layouts: LRUCache[Layout] = LRUCache("layouts", _open_files_capacity)
_descriptors: LRUCache[_Descriptor] = LRUCache("descriptors", _open_files_capacity)


class _Descriptor:
    """A read-only file descriptor for ``os.pread``, closed when dropped."""

    def __init__(self, path: str) -> None:
        self.fd = os.open(path, os.O_RDONLY)
        self.pid = os.getpid()

    def pread(self, ranges) -> list[bytes]:
        fd = self.fd
        if len(ranges) < 256 or threading.current_thread().name.startswith("archs4x-read"):
            return [os.pread(fd, b - a, a) for a, b in ranges]
        # many small reads (B-tree nodes): spread over the reader threads (pread frees the GIL)
        from .pool import reader_pool

        pool, threads = reader_pool()
        step = -(-len(ranges) // (2 * threads))
        parts = [ranges[i : i + step] for i in range(0, len(ranges), step)]
        out: list[bytes] = []
        for got in pool.map(lambda part: [os.pread(fd, b - a, a) for a, b in part], parts):
            out.extend(got)
        return out

    def __del__(self, _getpid=os.getpid, _close=os.close) -> None:
        if self.pid == _getpid():
            try:
                _close(self.fd)
            except OSError:
                pass


def _open_h5(path_or_file: Any, name: str) -> h5py.File:
    try:
        return h5py.File(path_or_file, "r")
    except OSError as exc:  # h5py reports every low-level failure as OSError
        text = str(exc)
        what = "a truncated HDF5 file" if "truncated" in text else "not a readable HDF5 file"
        raise NotArchs4Error(f"{name!r} is {what} ({text})") from exc


class ChunkLocator:
    """Where a dataset's chunks are: its chunk table when there is one, else its B-tree.

    See :mod:`archs4x.storage.chunktable` for when a table exists (small local files,
    or one built with :func:`build_chunk_table`); remote files walk only the paths a
    read needs.  Files whose chunks are not indexed by a version-1 B-tree always use a
    table (HDF5's ``chunk_iter``).
    """

    def __init__(self, src: Source, f: h5py.File, fetch, chunks: tuple[int, int]) -> None:
        dset = f[EXPRESSION]
        self.name = dset.name
        self.cache_key = src.cache_key
        self.source = src
        self.tree: ChunkBTree | None = None
        self._indexing: threading.Thread | None = None
        self.table: ChunkTable | None = load_table(src.cache_key, dset.name)
        if self.table is not None:
            return
        try:
            address = f.id.links.get_info(dset.name.encode()).u
            root = btree_root(fetch, address, _file_size(src))
            self.tree = ChunkBTree(fetch, root, dset.shape, chunks, src.cache_key, src.name)
        except UnsupportedLayout:
            self.table = save_table(src.cache_key, dset.name,
                                    lambda out: _copy_into(out, table_from_chunk_iter(dset)),
                                    _grid(dset.shape, chunks))  # fmt: skip
            return
        # local files: a whole small tree costs milliseconds; remote ones fetch only paths
        if isinstance(src, LocalFile) and np.prod(self.tree.grid) <= SMALL_FILE_CHUNKS:
            try:
                self.table = ChunkTable(table_from_btree(self.tree))
            except UnsupportedLayout:
                self.table = save_table(src.cache_key, dset.name,
                                        lambda out: _copy_into(out, table_from_chunk_iter(dset)),
                                        _grid(dset.shape, chunks))  # fmt: skip

    def locate(self, coords: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if self.table is None:
            self.table = load_table(self.cache_key, self.name)  # built meanwhile?
        if self.table is not None:
            return self.table.locate(coords)
        assert self.tree is not None
        self._maybe_index()
        return self.tree.locate(coords)

    def _maybe_index(self) -> None:
        """Start building the chunk table of a large local file, once, in the background."""
        from .._options import OPTIONS

        if self._indexing is not None or not OPTIONS["index_in_background"]:
            return
        if not isinstance(self.source, LocalFile):
            return
        self._indexing = threading.Thread(target=_index_quietly, args=(self.source,),
                                          name="archs4x-index", daemon=True)  # fmt: skip
        self._indexing.start()


def _index_quietly(src: LocalFile) -> None:
    """Build ``src``'s chunk table unless another process is building it (background)."""
    from .chunktable import table_path
    from .locks import try_file_lock

    target = table_path(src.cache_key, EXPRESSION)
    try:
        with try_file_lock(target) as acquired:
            if acquired and not target.exists():
                build_chunk_table(src, progress=True)
    except Exception:
        import logging

        logging.getLogger("archs4x").warning("building the chunk table of %s failed",
                                             src.name, exc_info=True)  # fmt: skip


def _chunk_shape(dset: h5py.Dataset) -> tuple[int, int]:
    """The chunk shape of the 2-D counts dataset (one column a chunk when contiguous)."""
    rows, cols = (int(c) for c in (dset.chunks or (dset.shape[0], 1)))
    return rows, cols


def _grid(shape, chunks) -> tuple[int, int]:
    return (-(-int(shape[0]) // chunks[0]), -(-int(shape[1]) // chunks[1]))


def _copy_into(out: np.ndarray, table: np.ndarray) -> np.ndarray:
    out[...] = table
    return out


def build_chunk_table(source: Any, *, progress: bool = True) -> Path:
    """Walk a file's whole chunk B-tree once and keep the table on disk.

    Later reads of this file version (in any process) locate every chunk with one array
    lookup instead of walking B-tree nodes: worth it for repeated reads of scattered
    samples of a large file.  The table takes 16 bytes a chunk (544 MB for 34 million)
    and is keyed by the file's identity, so an edited file is never served a stale one.

    Parameters
    ----------
    source : path, URL or Source
    progress : bool, default True
        Show a progress bar on stderr.

    Returns
    -------
    pathlib.Path
        Where the table is kept.

    Examples
    --------
    >>> from archs4x.datasets import example_file
    >>> build_chunk_table(example_file(), progress=False).suffix
    '.npy'
    """
    from tqdm.auto import tqdm

    from .chunktable import table_path

    src = open_source(source)
    f = src.h5()
    dset = f[EXPRESSION]
    chunks = _chunk_shape(dset)
    target = table_path(src.cache_key, dset.name)
    if target.exists():
        return target
    fetch = src.fetch  # type: ignore[attr-defined]
    try:
        address = f.id.links.get_info(dset.name.encode()).u
        tree = ChunkBTree(fetch, btree_root(fetch, address, _file_size(src)), dset.shape,
                          chunks, src.cache_key, src.name)  # fmt: skip
    except UnsupportedLayout:
        save_table(src.cache_key, dset.name,
                   lambda out: _copy_into(out, table_from_chunk_iter(dset)),
                   _grid(dset.shape, chunks))  # fmt: skip
        return target
    bar = tqdm(total=None, unit=" leaves", desc=f"archs4x: indexing {Path(src.name).name}",
               disable=not progress, leave=False, mininterval=1.0)  # fmt: skip

    def report(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()

    try:
        save_table(src.cache_key, dset.name, lambda out: table_from_btree(tree, out=out,
                   progress=report), _grid(dset.shape, chunks))  # fmt: skip
    finally:
        bar.close()
    # readers pick the table up (their keys are (pid, source, ...))
    _readers.discard(lambda k: isinstance(k, tuple) and len(k) > 1 and k[1] == src)
    return target


def _build_reader(src: Source, f: h5py.File, fetch, batch_fetch: bool) -> ChunkReader:
    dset = f[EXPRESSION]
    plan = filter_plan(dset)
    chunks = _chunk_shape(dset)
    locate = ChunkLocator(src, f, fetch, chunks).locate if plan.direct else None

    def hyperslab(r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
        """``dset[r0:r1, c0:c1]`` through h5py, one band of chunk rows at a time."""
        out = np.empty((r1 - r0, c1 - c0), dtype=dset.dtype)
        step = chunks[0]
        for b0 in range(r0 - r0 % step, r1, step):
            a, b = max(r0, b0), min(r1, b0 + step)
            try:
                out[a - r0 : b - r0] = dset[a:b, c0:c1]
            except OSError as exc:
                where = f"{src.name}:{EXPRESSION}: chunk at offset {(b0, c0)}"
                if "filter" in str(exc):
                    raise ChunkDecodeError(f"{where} failed to decode: {exc}") from exc
                raise ChunkReadError(f"{where} could not be read: {exc}") from exc
        return out

    fill = dset.fillvalue
    return ChunkReader(
        name=f"{src.name}:{EXPRESSION}", shape=tuple(dset.shape), dtype=dset.dtype,
        chunks=chunks, plan=plan, fill=0 if fill is None else fill, locate=locate,
        fetch=fetch, batch_fetch=batch_fetch, check=src.check, hyperslab=hyperslab,
    )  # fmt: skip


def _file_size(src: Source) -> int:
    if isinstance(src, LocalFile):
        return src.identity.size
    if isinstance(src, RemoteFile):
        return src.size
    raise TypeError(f"cannot tell the size of a {type(src).__name__} source")


@register_cleanup
def _close_handles() -> None:
    """Close the files this process opened (run by :func:`archs4x.clear_caches`)."""
    pid = os.getpid()
    for key, f in _handles.items():  # keys are (pid, source)
        if isinstance(key, tuple) and key[0] == pid and f.id.valid:
            f.close()


_exit_hook_lock = threading.Lock()
_exit_hook: list[bool] = []


def _close_handles_at_exit() -> None:
    """Close open files before the interpreter finalizes (registered on first remote open).

    HDF5 closes the files still open in its own C exit handler, after Python has shut
    down; a file opened on a Python file object (a remote file) then calls back into the
    finalized interpreter and the process dies with a segmentation fault.
    """
    with _exit_hook_lock:
        if not _exit_hook:
            atexit.register(_close_handles)
            _exit_hook.append(True)


def _close_other_versions(src: LocalFile) -> None:
    """Close this process's handles of other versions of the same path.

    HDF5 shares one open file per path within a process: a handle left open on an old
    version would serve the new version from stale metadata caches.
    """
    stale = []

    def other_version(key: Any) -> bool:
        other = key[1] if isinstance(key, tuple) and len(key) > 1 else None
        is_stale = (isinstance(other, LocalFile) and other != src
                    and other.identity.path == src.identity.path)  # fmt: skip
        if is_stale:
            stale.append(key)
        return is_stale

    for cache in (_readers, _descriptors, _layouts):
        cache.discard(other_version)
    old = [h for k, h in _handles.items() if other_version(k)]
    _handles.discard(other_version)
    for f in old:
        if f.id.valid:
            f.close()


# -- local files -----------------------------------------------------------------------
@dataclass(frozen=True)
class LocalFile:
    """A local ARCHS4 file, pinned to the version seen when it was opened.

    Examples
    --------
    >>> from archs4x.datasets import example_file
    >>> src = open_source(example_file())
    >>> src.field("meta/samples/geo_accession").shape, src.h5() is src.h5()
    ((400,), True)
    """

    identity: FileIdentity

    @property
    def name(self) -> str:
        return self.identity.path

    @property
    def cache_key(self) -> str:
        return self.identity.key

    def check(self) -> None:
        self.identity.check()

    def h5(self) -> h5py.File:
        self.check()
        key = (os.getpid(), self)
        f = _handles.get(key)
        if f is None or not f.id.valid:
            _close_other_versions(self)
            f = _open_h5(self.identity.path, self.identity.path)
            _handles.discard(lambda k: k == key)
            f = _handles.put(key, f)
        return f

    def layout(self) -> Layout:
        return _layouts.get_or_make((os.getpid(), self), lambda: detect_layout(self.h5()))

    def field(self, path: str) -> h5py.Dataset:
        return self.h5()[path]

    def fetch(self, ranges) -> list[bytes]:
        """``os.pread`` byte ranges of the file."""
        fd = _descriptors.get_or_make((os.getpid(), self), lambda: _Descriptor(self.name))
        return fd.pread(ranges)

    def counts_reader(self) -> ChunkReader:
        key = (os.getpid(), self, EXPRESSION)
        return _readers.get_or_make(key, lambda: _build_reader(self, self.h5(), self.fetch,
                                                               batch_fetch=False))  # fmt: skip

    def __str__(self) -> str:
        return self.identity.path


# -- remote files ----------------------------------------------------------------------
@dataclass(frozen=True)
class RemoteFile:
    """A remote ARCHS4 file: URL, storage options, and the size and ETag seen at open.

    Examples
    --------
    >>> src = RemoteFile("s3://bucket/x.h5", '{"anon": true}', 10, None)
    >>> str(src), src.storage_options
    ('s3://bucket/x.h5', {'anon': True})
    """

    url: str
    options: str  # JSON of the storage options (hashable)
    size: int
    etag: str | None

    @classmethod
    def resolve(cls, url: str, storage_options: dict | None = None) -> RemoteFile:
        """Check that ``url`` exists and record its size and ETag (see :func:`probe`)."""
        opts = dict(storage_options or {})
        if url.startswith(("s3://", "s3a://")):
            opts.setdefault("anon", True)
        try:
            fs, path = fsspec.core.url_to_fs(url, **opts)
        except ImportError as exc:  # e.g. s3fs not installed
            raise ImportError(
                f"reading {url.split('://')[0]}:// URLs needs an extra package: "
                f"pip install 'archs4x[s3]' ({exc})"
            ) from exc
        size, etag = probe(fs, path, url)
        return cls(url, json.dumps(opts, sort_keys=True, default=str), size, etag)

    @property
    def name(self) -> str:
        return self.url

    @property
    def storage_options(self) -> dict[str, Any]:
        return json.loads(self.options)

    @property
    def cache_key(self) -> str:
        return hashlib.sha1(f"{self.url}|{self.size}|{self.etag}".encode()).hexdigest()[:24]

    def filesystem(self) -> tuple[fsspec.AbstractFileSystem, str]:
        return fsspec.core.url_to_fs(self.url, **self.storage_options)

    def check(self) -> None:
        fs, path = self.filesystem()
        try:
            size, etag = probe(fs, path, self.url)
        except FileNotFoundError:
            raise FileChangedError(f"{self.url} was deleted after it was opened") from None
        if (size, etag) != (self.size, self.etag):
            raise FileChangedError(
                f"{self.url} changed after it was opened (size {self.size:,} -> {size:,}, "
                f"ETag {self.etag} -> {etag}); open it again"
            )

    def fetch(self, ranges) -> list[bytes]:
        fs, path = self.filesystem()
        return fetch_ranges(fs, path, list(ranges), self.url)

    def h5(self) -> h5py.File:
        key = (os.getpid(), self)
        f = _handles.get(key)
        if f is None or not f.id.valid:
            fs, path = self.filesystem()
            f = _open_h5(RangeFile(fs, path, self.size, self.url), self.url)
            f = _handles.put(key, f)
            _close_handles_at_exit()
        return f

    def layout(self) -> Layout:
        return _layouts.get_or_make((os.getpid(), self), lambda: detect_layout(self.h5()))

    def counts_reader(self) -> ChunkReader:
        key = (os.getpid(), self, EXPRESSION)
        return _readers.get_or_make(key, lambda: _build_reader(self, self.h5(), self.fetch,
                                                               batch_fetch=True))  # fmt: skip

    def field(self, path: str) -> h5py.Dataset:
        """The whole dataset ``path``, fetched once into the local cache.

        Written to a temporary file and renamed, so concurrent processes never see half
        a file.
        """
        folder = cache_dir() / "remote" / self.cache_key
        local = folder / (path.strip("/").replace("/", "%") + ".h5")
        if not local.exists():
            folder.mkdir(parents=True, exist_ok=True)
            meta = folder / "source.json"
            if not meta.exists():
                meta.write_text(json.dumps({"url": self.url, "size": self.size,
                                            "etag": self.etag}))  # fmt: skip
            remote = self.h5()[path]
            values = remote[()]
            tmp = local.with_name(f"{local.name}.{os.getpid()}.{threading.get_ident()}.tmp")
            with h5py.File(tmp, "w") as out:
                out.create_dataset("v", data=values, dtype=remote.dtype)
            os.replace(tmp, local)
        return LocalFile(FileIdentity.of(local)).h5()["v"]

    def __str__(self) -> str:
        return self.url
