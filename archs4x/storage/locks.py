"""An inter-process file lock (POSIX ``flock``) guarding a cached file while it is made."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import tempfile
from pathlib import Path


@contextlib.contextmanager
def try_file_lock(target: str | os.PathLike):
    """Take ``<target>.lock`` if no other process holds it; yields whether it was taken.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "x.idx"
    >>> with try_file_lock(p) as first, try_file_lock(p) as second:
    ...     first, second
    (True, False)
    """
    lock = Path(f"{target}.lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


@contextlib.contextmanager
def file_lock(target: str | os.PathLike, *, beside: bool = True):
    """Hold an exclusive lock on ``<target>.lock`` for the duration of the block.

    With ``beside=False`` the lock file lives in the temporary folder instead (named by
    a hash of the target's absolute path), so nothing is left next to user files; it
    then serialises the processes of one host only.

    Concurrent processes (or threads) that make the same cached file take turns; the
    file itself is always written to a temporary name and renamed into place, so a reader
    that does not lock never sees a partial file either.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "x.idx"
    >>> with file_lock(p):
    ...     _ = p.write_text("done")
    >>> p.read_text()
    'done'
    """
    if beside:
        lock = Path(f"{target}.lock")
    else:
        digest = hashlib.sha1(str(Path(target).resolve()).encode()).hexdigest()
        lock = Path(tempfile.gettempdir()) / "archs4x-locks" / f"{digest}.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
