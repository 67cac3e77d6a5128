"""Serve a folder over HTTP on this machine, with byte ranges: remote reads without a network.

:func:`serve_http` is for trying :func:`archs4x.open_dataset` on a URL (the README and the
demo use it on the example file), and for testing code that reads ARCHS4 files remotely.
It answers ``GET`` and ``HEAD`` with ``Range`` (one range per request, as S3 does),
``ETag``, ``Last-Modified`` and ``If-Range``, from a thread of the calling process, on
127.0.0.1 only.  Python's own ``http.server`` ignores ``Range``, so it cannot serve HDF5
files to a reader that fetches chunks.
"""

from __future__ import annotations

import contextlib
import http.server
import os
import re
import threading
from collections.abc import Iterator
from email.utils import formatdate
from pathlib import Path
from urllib.parse import unquote, urlsplit

__all__ = ["serve_http"]

_RANGE = re.compile(r"bytes=(\d*)-(\d*)$")
_COPY_BYTES = 1 << 20


def _handler(root: Path) -> type[http.server.BaseHTTPRequestHandler]:
    class RangeHandler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # quiet
            pass

        def _file(self) -> Path | None:
            name = unquote(urlsplit(self.path).path).lstrip("/")
            path = (root / name).resolve()
            if root not in path.parents or not path.is_file():  # never outside the folder
                return None
            return path

        def _send(self, head_only: bool) -> None:
            path = self._file()
            if path is None:
                self.send_error(404)
                return
            st = path.stat()
            size = st.st_size
            etag = f'"{st.st_size:x}-{st.st_mtime_ns:x}"'
            modified = formatdate(st.st_mtime, usegmt=True)
            start, stop, status = 0, size, 200
            wanted = self.headers.get("Range")
            if_range = self.headers.get("If-Range")
            if wanted and (if_range is None or if_range in (etag, modified)):
                m = _RANGE.match(wanted.strip())
                if m is None or m.groups() == ("", ""):
                    self.send_error(416)
                    return
                a, b = m.groups()
                if a == "":  # the last b bytes
                    start, stop = max(0, size - int(b)), size
                else:
                    start, stop = int(a), size if b == "" else min(size, int(b) + 1)
                if start >= size or start >= stop:
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{size}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                status = 206
            self.send_response(status)
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("ETag", etag)
            self.send_header("Last-Modified", modified)
            self.send_header("Content-Length", str(stop - start))
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{stop - 1}/{size}")
            self.end_headers()
            if head_only:
                return
            with open(path, "rb") as f:
                f.seek(start)
                left = stop - start
                while left:
                    block = f.read(min(left, _COPY_BYTES))
                    if not block:
                        break
                    self.wfile.write(block)
                    left -= len(block)

        def do_GET(self) -> None:
            self._send(head_only=False)

        def do_HEAD(self) -> None:
            self._send(head_only=True)

    return RangeHandler


@contextlib.contextmanager
def serve_http(folder: str | os.PathLike) -> Iterator[str]:
    """Serve the files of ``folder`` on ``http://127.0.0.1:<free port>/`` within the block.

    Parameters
    ----------
    folder : path-like
        The folder whose files are served (its subfolders too; nothing outside it).

    Yields
    ------
    str
        The base URL, ending in ``/``: append a file name.

    Examples
    --------
    >>> import archs4x
    >>> path = archs4x.datasets.example_file()
    >>> with serve_http(path.parent) as base:
    ...     ds = archs4x.open_dataset(base + path.name)
    ...     int(ds.isel(sample=[0, 1]).counts.sum())
    19422784
    """
    root = Path(folder).resolve()
    if not root.is_dir():
        raise NotADirectoryError(f"not a folder: {folder}")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(root))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="archs4x-serve", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
