"""archs4x's options: :func:`set_options` and :func:`get_options`, in xarray's style.

Options are held in one dictionary, changed only through :class:`set_options` (unknown
names and invalid values are rejected) and read through :func:`get_options` or the small
helpers below.  Environment variables only seed the defaults, when an option is first
read: ``ARCHS4X_CACHE_DIR`` (``cache_dir``), ``ARCHS4X_READ_THREADS`` (``read_threads``).
Nothing here runs at import.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from types import MappingProxyType
from typing import Any

__all__ = ["OPTIONS", "cache_dir", "get_options", "read_threads", "set_options"]


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _non_negative_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value >= 0


_VALIDATORS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "cache_dir": (lambda v: v is None or isinstance(v, str | os.PathLike), "a path or None"),
    "read_threads": (lambda v: v is None or _positive_int(v), "a positive int or None"),
    "open_files": (_positive_int, "a positive int"),
    "btree_cache_bytes": (_positive_int, "a positive int (bytes)"),
    "remote_block_bytes": (_positive_int, "a positive int (bytes)"),
    "regex_timeout": (_non_negative_number, "a number of seconds >= 0"),
    "index_in_background": (lambda v: isinstance(v, bool), "True or False"),
}

#: The current options.  Read with :func:`get_options`; change with :class:`set_options`.
OPTIONS: dict[str, Any] = {
    # where archs4x keeps caches (metadata columns, remote metadata, example data)
    "cache_dir": None,
    # threads that fetch and inflate chunks (None: the number of CPUs, at least 2)
    "read_threads": None,
    # open files and chunk readers kept per process (least recently used are dropped)
    "open_files": 64,
    # parsed HDF5 chunk B-tree nodes kept per process, in bytes
    "btree_cache_bytes": 256 * 2**20,
    # block size of the cache that remote HDF5 metadata reads go through
    "remote_block_bytes": 2**13,
    # seconds a regular expression that RE2 cannot run may take (0: no limit)
    "regex_timeout": 30.0,
    # build the chunk table of a large local file in a background thread at its first read
    "index_in_background": True,
}


class set_options:
    """Set archs4x options globally, or for a ``with`` block.

    Parameters
    ----------
    cache_dir : path, optional
        Folder for caches (default ``$ARCHS4X_CACHE_DIR`` or ``~/.cache/archs4x``).
    read_threads : int, optional
        Threads that fetch and inflate chunks (default: CPUs, at least 2;
        ``$ARCHS4X_READ_THREADS`` seeds it).
    open_files : int, default 64
        Open files and chunk readers kept per process.
    btree_cache_bytes : int, default 256 MiB
        Memory for parsed HDF5 chunk B-tree nodes, per process.
    remote_block_bytes : int, default 8 KiB
        Block size of the cache remote HDF5 metadata is read through.
    regex_timeout : float, default 30
        Seconds a search pattern that needs Python's regex engine may run before
        :class:`archs4x.RegexTimeoutError` (0: no limit).
    index_in_background : bool, default True
        At the first read of a large local file (over 4 million chunks), build its chunk
        table in a background thread (once per file version, kept on disk); reads walk
        the chunk B-tree meanwhile and never wait for it.

    Examples
    --------
    >>> import archs4x
    >>> with archs4x.set_options(read_threads=4):
    ...     archs4x.get_options()["read_threads"]
    4
    >>> archs4x.set_options(no_such_option=1)
    Traceback (most recent call last):
    ...
    ValueError: unknown archs4x option 'no_such_option'; known options: btree_cache_bytes, ...
    """

    def __init__(self, **kwargs: Any) -> None:
        self.old: dict[str, Any] = {}
        for key, value in kwargs.items():
            if key not in OPTIONS:
                known = ", ".join(sorted(OPTIONS))
                raise ValueError(f"unknown archs4x option {key!r}; known options: {known}")
            valid, what = _VALIDATORS[key]
            if not valid(value):
                raise ValueError(f"option {key!r} must be {what}, got {value!r}")
        for key, value in kwargs.items():
            self.old[key] = OPTIONS[key]
            OPTIONS[key] = value

    def __enter__(self) -> set_options:
        return self

    def __exit__(self, *exc: object) -> None:
        OPTIONS.update(self.old)


def get_options() -> MappingProxyType:
    """The current options, read-only (defaults seeded from the environment resolved).

    Examples
    --------
    >>> import archs4x
    >>> sorted(archs4x.get_options())[:3]
    ['btree_cache_bytes', 'cache_dir', 'index_in_background']
    """
    resolved = dict(OPTIONS)
    resolved["cache_dir"] = str(cache_dir(create=False))
    resolved["read_threads"] = read_threads()
    return MappingProxyType(resolved)


def cache_dir(*, create: bool = True) -> Path:
    """The folder archs4x caches files in.

    The ``cache_dir`` option, else ``$ARCHS4X_CACHE_DIR``, else
    ``$XDG_CACHE_HOME/archs4x`` (``~/.cache/archs4x``).

    Examples
    --------
    >>> cache_dir().is_dir()
    True
    """
    value = OPTIONS["cache_dir"] or os.environ.get("ARCHS4X_CACHE_DIR")
    if value:
        base = Path(value).expanduser()
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "archs4x"
    if create:
        base.mkdir(parents=True, exist_ok=True)
    return base


def read_threads() -> int:
    """Threads that fetch and inflate chunks (the ``read_threads`` option, resolved).

    Examples
    --------
    >>> read_threads() >= 1
    True
    """
    value = OPTIONS["read_threads"]
    if value is None:
        env = os.environ.get("ARCHS4X_READ_THREADS", "")
        value = int(env) if env.strip().isdigit() and int(env) > 0 else None
    return value or max(2, os.cpu_count() or 2)
