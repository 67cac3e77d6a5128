"""Bytes of remote files (``https://``, ``s3://`` and other fsspec URLs) for archs4x.

Three things keep remote reads small and correct:

* :func:`fetch_ranges` fetches byte ranges concurrently (``fs.cat_ranges``), retrying
  failed or short ones with backoff: chunk data and B-tree nodes come this way, so only
  the chunks a read needs cross the network.
* :class:`RangeFile` is the file object h5py reads HDF5 metadata through: 8 KiB blocks
  (the ``remote_block_bytes`` option), fetched once and kept, each run of missing blocks
  in one request (never fsspec's 5 MB read-ahead).
* :func:`probe` checks that a URL exists and records its size and ETag, telling "cannot
  connect" apart from "not found".
"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Sequence
from typing import Any

import fsspec

from .._options import OPTIONS
from ..errors import ChunkReadError

__all__ = ["RangeFile", "fetch_ranges", "probe"]

RETRIES = 4
#: Bytes of HDF5 metadata kept per open remote file before the block cache is reset.
MAX_CACHED = 512 * 2**20


def _is_connection_error(exc: BaseException) -> bool:
    names = {type(e).__name__ for e in _chain(exc)}
    return bool(names & {"ClientConnectorError", "ServerDisconnectedError", "ConnectionError",
                         "ConnectionRefusedError", "ClientOSError", "EndpointConnectionError",
                         "ConnectTimeoutError", "gaierror"})  # fmt: skip


def _connection_reason(exc: BaseException) -> str:
    """The innermost error of the chain, in a few words (``connection refused`` ...)."""
    inner = list(_chain(exc))[-1]
    if isinstance(inner, ConnectionRefusedError):
        return "connection refused"
    text = str(inner).strip()
    return f"{type(inner).__name__}: {text}" if text else type(inner).__name__


def _chain(exc: BaseException):
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]


def probe(fs: fsspec.AbstractFileSystem, path: str, url: str) -> tuple[int, str | None]:
    """``(size, etag)`` of a remote file, asked of the server now (no cached listing).

    Raises
    ------
    FileNotFoundError
        The server says there is no such file.
    ConnectionError
        The server cannot be reached (the message names it).
    """
    try:
        fs.invalidate_cache(path)
        info = fs.info(path)
    except Exception as exc:
        # fsspec's HTTP filesystem reports a refused connection as FileNotFoundError,
        # with the connection error as its cause: look down the chain first
        if _is_connection_error(exc):
            reason = _connection_reason(exc)
            raise ConnectionError(
                f"cannot connect to the server of {url!r} ({reason}): it is down, the "
                "address is wrong, or the network is unreachable"
            ) from exc
        if isinstance(exc, FileNotFoundError):
            raise FileNotFoundError(
                f"No such remote ARCHS4 file: {url!r} (the server said it does not exist)"
            ) from None
        raise
    etag = (
        info.get("ETag")
        or info.get("etag")
        or info.get("LastModified")
        or info.get("last_modified")
    )
    size = info.get("size")
    if size is None:
        raise OSError(f"{url!r}: the server does not say how large the file is")
    return int(size), None if etag is None else str(etag)


def fetch_ranges(
    fs: fsspec.AbstractFileSystem, path: str, ranges: Sequence[tuple[int, int]], url: str
) -> list[bytes]:
    """Fetch byte ranges ``[start, stop)`` concurrently, retrying failed or short ones.

    Raises
    ------
    ChunkReadError
        A range still fails (or comes back short) after the retries.
    """
    out: list[Any] = [None] * len(ranges)
    todo = list(range(len(ranges)))
    error: BaseException | None = None
    for attempt in range(RETRIES):
        if not todo:
            break
        if attempt:
            time.sleep(min(2.0, 0.1 * 2**attempt))
        try:
            got = fs.cat_ranges(
                [path] * len(todo), [ranges[i][0] for i in todo], [ranges[i][1] for i in todo],
                on_error="return",
            )  # fmt: skip
        except Exception as exc:  # the whole batch failed (connection refused ...)
            error, got = exc, [exc] * len(todo)
        failed = []
        for i, data in zip(todo, got, strict=True):
            a, b = ranges[i]
            if isinstance(data, BaseException):
                error = data
                failed.append(i)
            elif len(data) != b - a:
                error = OSError(f"short read: {len(data)} of {b - a} bytes")
                failed.append(i)
            else:
                out[i] = data
        todo = failed
    if todo:
        a, b = ranges[todo[0]]
        raise ChunkReadError(f"{url}: reading bytes {a}-{b} failed after {RETRIES} tries: {error}")
    return out


class RangeFile(io.RawIOBase):
    """A read-only file object over byte-range requests, caching fixed-size blocks.

    Reads fetch only the blocks not seen before, each run of consecutive missing blocks
    in one request; blocks are kept (up to :data:`MAX_CACHED` bytes), so the neighbouring
    small reads HDF5 makes never fetch the same bytes twice.
    """

    def __init__(self, fs: fsspec.AbstractFileSystem, path: str, size: int, url: str) -> None:
        super().__init__()
        self._fs, self._path, self._size, self._url = fs, path, int(size), url
        self._block = int(OPTIONS["remote_block_bytes"])
        self._blocks: dict[int, bytes] = {}
        self._held = 0
        self._pos = 0
        self._lock = threading.Lock()

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def _range(self, start: int, stop: int) -> bytes:
        bs = self._block
        first, last = start // bs, (stop - 1) // bs
        with self._lock:
            if self._held > MAX_CACHED:
                self._blocks.clear()
                self._held = 0
            missing = [b for b in range(first, last + 1) if b not in self._blocks]
        runs: list[list[int]] = []
        for b in missing:
            if runs and b == runs[-1][1] + 1:
                runs[-1][1] = b
            else:
                runs.append([b, b])
        spans = [(b0 * bs, min((b1 + 1) * bs, self._size)) for b0, b1 in runs]
        datas = fetch_ranges(self._fs, self._path, spans, self._url) if spans else []
        with self._lock:
            for (b0, b1), data in zip(runs, datas, strict=True):
                for i, b in enumerate(range(b0, b1 + 1)):
                    self._blocks[b] = data[i * bs : (i + 1) * bs]
                self._held += len(data)
            buf = b"".join(self._blocks[b] for b in range(first, last + 1))
        return buf[start - first * bs : stop - first * bs]

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        stop = min(self._pos + len(view), self._size)
        if stop <= self._pos:
            return 0
        data = self._range(self._pos, stop)
        view[: len(data)] = data
        self._pos += len(data)
        return len(data)
