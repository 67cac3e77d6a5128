"""Opening ARCHS4 files by path, once per process.

Dask tasks never carry an open ``h5py.File`` (it does not pickle, and a handle
opened before a fork is unsafe in the child).  Each task names its file by path and
calls :func:`open_h5`, which keeps one read-only handle per process and per file
version (the cache key includes the size and modification time, so a replaced file
is reopened).  A *source* is a local path or a :class:`archs4x.remote.RemoteSource`
(an ``https://`` or ``s3://`` URL with its storage options): :func:`as_source` makes
one, :func:`open_h5` and :func:`open_field` open either.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import h5py

__all__ = ["as_source", "clear_cache", "file_identity", "is_url", "open_field", "open_h5"]

_lock = threading.Lock()
_handles: dict[tuple, h5py.File] = {}


def is_url(source) -> bool:
    """True for ``scheme://...`` strings other than ``file://`` (remote sources)."""
    return isinstance(source, str) and "://" in source and not source.startswith("file://")


def as_source(source, storage_options: dict | None = None):
    """A local path (``str``) or a :class:`~archs4x.remote.RemoteSource` for a URL.

    Examples
    --------
    >>> from archs4x.datasets import example_file
    >>> as_source(example_file()) == str(example_file())
    True
    """
    from .remote import RemoteSource

    if isinstance(source, RemoteSource):
        return source
    if is_url(source):
        return RemoteSource.resolve(source, storage_options)
    if storage_options:
        raise ValueError("storage_options only apply to remote (https:// or s3://) sources")
    path = os.fspath(source)
    return path[len("file://") :] if path.startswith("file://") else path


def file_identity(path: str | os.PathLike) -> tuple[str, int, int]:
    """``(absolute path, size, mtime_ns)`` of a local file; raises FileNotFoundError.

    Examples
    --------
    >>> from archs4x.datasets import example_file
    >>> path, size, mtime = file_identity(example_file())
    >>> size > 0
    True"""
    p = Path(path).expanduser()
    try:
        st = p.stat()
    except FileNotFoundError:
        raise FileNotFoundError(f"No such ARCHS4 file: {str(path)!r}") from None
    if p.is_dir():
        raise IsADirectoryError(f"{str(path)!r} is a directory, not an ARCHS4 HDF5 file")
    return (str(p.resolve()), st.st_size, st.st_mtime_ns)


def _open(path: str) -> h5py.File:
    try:
        return h5py.File(path, "r")
    except OSError as exc:  # h5py reports every low-level failure as OSError
        msg = str(exc)
        if "truncated" in msg:
            raise ValueError(f"{path!r} is a truncated HDF5 file ({msg})") from exc
        raise ValueError(f"{path!r} is not a readable HDF5 file ({msg})") from exc


def open_h5(path: str | os.PathLike) -> h5py.File:
    """Return a cached read-only ``h5py.File`` for ``path`` in this process.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file is not HDF5 or is truncated.

    Examples
    --------
    >>> from archs4x.datasets import example_file
    >>> f = open_h5(example_file())
    >>> f is open_h5(example_file())
    True
    """
    if not isinstance(path, str | os.PathLike):  # a RemoteSource
        from .remote import open_remote_h5

        return open_remote_h5(path)
    ident = file_identity(path)
    key = (os.getpid(), *ident)
    with _lock:
        f = _handles.get(key)
        if f is not None and f.id.valid:
            return f
        # Drop stale handles of the same path (file replaced) before reopening.
        for k in [k for k in _handles if k[1] == ident[0]]:
            old = _handles.pop(k)
            if k[0] == os.getpid() and old.id.valid:
                old.close()
        f = _open(ident[0])
        _handles[key] = f
        return f


def open_field(source, path: str) -> h5py.Dataset:
    """The dataset ``path`` of ``source``, read from a local copy for remote sources.

    For a local file this is ``open_h5(source)[path]``.  For a remote source the whole
    dataset is fetched once and kept in the local metadata cache
    (:func:`archs4x.remote.cached_field`), so queries never fetch it again.

    Examples
    --------
    >>> from archs4x.datasets import example_file
    >>> open_field(example_file(), "meta/samples/geo_accession").shape
    (400,)
    """
    if not isinstance(source, str | os.PathLike):
        from .remote import cached_field

        return cached_field(source, path)
    return open_h5(source)[path]


def clear_cache() -> None:
    """Close every cached handle of this process (tests, or before replacing a file)."""
    with _lock:
        for k, f in list(_handles.items()):
            if k[0] == os.getpid() and f.id.valid:
                f.close()
        _handles.clear()
