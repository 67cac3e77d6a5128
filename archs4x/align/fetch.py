"""Resumable, cached HTTP downloads for the alignment inputs (reference FASTA, reads).

A file is streamed to ``<dest>.part`` and renamed into place only when complete (and, if
given, its size and MD5 match), so an interrupted download never looks finished.  A later
call resumes the ``.part`` file with an HTTP ``Range`` request (starting over when the
server ignores it).  Concurrent callers fetching the same file take turns on a lock.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from ._lock import file_lock

__all__ = ["DownloadError", "fetch"]

CHUNK = 1 << 20


class DownloadError(OSError):
    """A download failed (HTTP error, short body, checksum mismatch) after all retries."""


def _md5(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        while b := f.read(CHUNK):
            h.update(b)
    return h.hexdigest()


def fetch(
    url: str,
    dest: str | os.PathLike,
    *,
    size: int | None = None,
    md5: str | None = None,
    retries: int = 3,
    timeout: float = 60.0,
    on_bytes: Callable[[int], None] | None = None,
) -> Path:
    """Download ``url`` to ``dest`` unless it is already there; resume partial downloads.

    Parameters
    ----------
    url : str
        ``http://`` or ``https://`` URL.
    dest : path-like
        Final file.  An existing ``dest`` is trusted (and returned at once) when its size
        matches ``size`` (if given).
    size, md5 : optional
        Expected byte size and MD5 hex digest, checked before the rename.
    retries : int
        Attempts after a dropped connection or 5xx answer (each resumes where it stopped).
    on_bytes : callable, optional
        Called with the number of bytes received, for progress bars.

    Raises
    ------
    DownloadError
        HTTP 4xx (e.g. 404), repeated failures, or a size / MD5 mismatch (the partial
        file is removed then, so the next call starts over).

    Examples
    --------
    >>> import tempfile, pathlib, threading, http.server, functools
    >>> d = pathlib.Path(tempfile.mkdtemp()); _ = (d / "f.txt").write_text("hello")
    >>> h = functools.partial(http.server.SimpleHTTPRequestHandler, directory=d)
    >>> h.log_message = lambda *a: None
    >>> srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), h)
    >>> _ = threading.Thread(target=srv.serve_forever, daemon=True).start()
    >>> out = fetch(f"http://127.0.0.1:{srv.server_port}/f.txt", d / "out" / "f.txt", size=5)
    >>> out.read_text()
    'hello'
    >>> srv.shutdown(); srv.server_close()
    """
    dest = Path(dest)
    if dest.exists() and (size is None or dest.stat().st_size == size):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = Path(f"{dest}.part")
    with file_lock(dest, beside=False):
        if dest.exists() and (size is None or dest.stat().st_size == size):
            return dest  # another process finished it while we waited
        last: Exception | None = None
        for attempt in range(retries + 1):
            try:
                _stream(url, part, timeout, on_bytes)
                break
            except DownloadError:
                raise
            except (OSError, http.client.HTTPException) as exc:
                last = exc
                time.sleep(min(0.2 * 2**attempt, 5))
        else:
            raise DownloadError(f"download of {url} failed after {retries + 1} attempts: {last}")
        got = part.stat().st_size
        if size is not None and got != size:
            part.unlink()
            raise DownloadError(f"{url}: received {got} bytes, expected {size}")
        if md5 is not None and _md5(part) != md5.lower():
            part.unlink()
            raise DownloadError(f"{url}: MD5 mismatch (expected {md5})")
        os.replace(part, dest)
    return dest


def _stream(url: str, part: Path, timeout: float, on_bytes) -> None:
    have = part.stat().st_size if part.exists() else 0
    req = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        resp = urllib.request.urlopen(req, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # nothing left to fetch
            return
        if 400 <= exc.code < 500:
            raise DownloadError(f"{url}: HTTP {exc.code} {exc.reason}") from exc
        raise
    with resp:
        mode = "ab" if (have and resp.status == 206) else "wb"
        expected = resp.headers.get("Content-Length")
        received = 0
        with open(part, mode) as f:
            # read1 hands over what arrived even when the connection then drops
            while block := resp.read1(CHUNK):
                f.write(block)
                received += len(block)
                if on_bytes:
                    on_bytes(len(block))
    if expected is not None and received < int(expected):
        raise ConnectionError(f"connection dropped after {received} of {expected} bytes")
