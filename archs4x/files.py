"""Opening ARCHS4 files by path, once per process.

Dask tasks never carry an open ``h5py.File`` (it does not pickle, and a handle
opened before a fork is unsafe in the child).  Each task names its file by path and
calls :func:`open_h5`, which keeps one read-only handle per process and per file
version (the cache key includes the size and modification time, so a replaced file
is reopened).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import h5py

__all__ = ["clear_cache", "file_identity", "open_h5"]

_lock = threading.Lock()
_handles: dict[tuple, h5py.File] = {}


def file_identity(path: str | os.PathLike) -> tuple[str, int, int]:
    """``(absolute path, size, mtime_ns)`` of a local file; raises FileNotFoundError."""
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


def clear_cache() -> None:
    """Close every cached handle of this process (tests, or before replacing a file)."""
    with _lock:
        for k, f in list(_handles.items()):
            if k[0] == os.getpid() and f.id.valid:
                f.close()
        _handles.clear()
