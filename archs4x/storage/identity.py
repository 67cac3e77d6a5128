"""The identity of a local file: what must not change while a Dataset reads it.

A :class:`FileIdentity` is taken when a file is opened: absolute path, size, modification
and change times (nanoseconds), inode and device.  Every read checks the file against it
(one ``os.stat``, about a microsecond) and raises :class:`~archs4x.errors.FileChangedError`
naming what changed, so a Dataset never mixes one file's labels with another's numbers.
The change time (``ctime``) cannot be set back by a program, so an in-place edit that
restores the size and modification time is still caught.  :attr:`FileIdentity.key` keys
every on-disk cache, so an edited file is never served stale cached data.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import FileChangedError

__all__ = ["FileIdentity"]


@dataclass(frozen=True)
class FileIdentity:
    """Path, size, times, inode and device of a local file, as seen at one moment.

    Examples
    --------
    >>> from archs4x.datasets import example_file
    >>> ident = FileIdentity.of(example_file())
    >>> ident.size > 0, ident == FileIdentity.of(example_file())
    (True, True)
    >>> ident.check()  # unchanged: no error
    """

    path: str
    size: int
    mtime_ns: int
    ctime_ns: int
    inode: int
    device: int

    @classmethod
    def of(cls, path: str | os.PathLike) -> FileIdentity:
        """Stat ``path`` now.

        Raises
        ------
        FileNotFoundError
            Nothing at ``path``.
        IsADirectoryError
            ``path`` is a directory.
        """
        p = Path(path).expanduser()
        try:
            st = p.stat()
        except FileNotFoundError:
            raise FileNotFoundError(f"No such ARCHS4 file: {str(path)!r}") from None
        if p.is_dir():
            raise IsADirectoryError(f"{str(path)!r} is a directory, not an ARCHS4 HDF5 file")
        return cls(str(p.resolve()), st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino,
                   st.st_dev)  # fmt: skip

    @property
    def key(self) -> str:
        """A short hex digest of every field: the key of this file version's caches."""
        text = "\0".join(map(str, (self.path, self.size, self.mtime_ns, self.ctime_ns,
                                   self.inode, self.device)))  # fmt: skip
        return hashlib.sha1(text.encode()).hexdigest()[:24]

    def differences(self, now: FileIdentity) -> list[str]:
        """What differs between this identity and ``now``, in words."""
        out = []
        if (now.inode, now.device) != (self.inode, self.device):
            out.append("the file was replaced (another inode)")
        if now.size != self.size:
            out.append(f"size {self.size:,} -> {now.size:,} bytes")
        if now.mtime_ns != self.mtime_ns:
            out.append("modification time changed")
        if now.ctime_ns != self.ctime_ns and not out:
            out.append("it was modified in place (change time moved)")
        return out

    def check(self) -> None:
        """Raise :class:`~archs4x.errors.FileChangedError` if the file changed since then.

        Raises
        ------
        FileChangedError
            The file was deleted, replaced, or modified; the message says how.
        """
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            raise FileChangedError(
                f"{self.path} was deleted after it was opened; open it again"
            ) from None
        if (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev) == (
            self.size, self.mtime_ns, self.ctime_ns, self.inode, self.device
        ):  # fmt: skip
            return
        now = FileIdentity(self.path, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino,
                           st.st_dev)  # fmt: skip
        raise FileChangedError(
            f"{self.path} changed after it was opened ({'; '.join(self.differences(now))}): "
            "archs4x will not mix the old file's labels with the new file's data; "
            "open it again"
        )
