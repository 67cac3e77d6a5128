"""A real threaded HTTP file server on 127.0.0.1 for download and remote-read tests.

It serves the files of one folder with ``Range`` / ``If-Range`` support (like S3), and
can misbehave on purpose: ignore ``Range`` (always answer 200 with the whole file), drop
the connection after some bytes, serve wrong bytes, fail with a status code, send no
``ETag`` (``Last-Modified`` only, or no validator at all), ignore ``If-Range`` (answer
206 from a file that changed, with its new ``ETag``), or send a body without
``Content-Length`` ended by closing the connection.  A hook runs after a dropped
response (e.g. to replace the file between a download and its resume).  It counts the
requests and the body bytes it sends, so tests can bound what a reader transferred.
"""

from __future__ import annotations

import hashlib
import http.server
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import formatdate
from pathlib import Path

_RANGE = re.compile(r"bytes=(\d*)-(\d*)$")


@dataclass
class Behaviour:
    """What the server does wrong (everything off by default)."""

    ignore_range: bool = False
    drop_after: int | None = None  # close the connection after this many body bytes ...
    drops: int = 0  # ... for this many responses (then behave)
    corrupt: bool = False  # flip one byte in every body
    fail_status: int | None = None  # answer this status ...
    failures: int = 0  # ... for this many requests (then behave)
    send_etag: bool = True  # ETag header (and If-Range by ETag)
    send_last_modified: bool = False  # Last-Modified header (and If-Range by date)
    ignore_if_range: bool = False  # answer 206 even when If-Range does not match
    no_length: bool = False  # 200 without Content-Length: the body ends when we close
    after_drop: Callable[[], None] | None = None  # run once a dropped response is closed


@dataclass
class Stats:
    requests: list = field(default_factory=list)  # (method, path, range header, status)
    bytes_sent: int = 0

    def reset(self) -> None:
        self.requests.clear()
        self.bytes_sent = 0

    @property
    def gets(self) -> int:
        return sum(1 for r in self.requests if r[0] == "GET")


class FileServer:
    """Serve ``root`` on ``http://127.0.0.1:<port>/`` until :meth:`close`.

    Examples
    --------
    >>> import tempfile, pathlib, urllib.request
    >>> d = pathlib.Path(tempfile.mkdtemp()); _ = (d / "x.bin").write_bytes(b"0123456789")
    >>> with FileServer(d) as srv:
    ...     req = urllib.request.Request(srv.url("x.bin"), headers={"Range": "bytes=2-4"})
    ...     urllib.request.urlopen(req).read(), srv.stats.bytes_sent
    (b'234', 3)
    """

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.behaviour = Behaviour()
        self.stats = Stats()
        self._lock = threading.Lock()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # else delayed ACKs add 40 ms per request

            def log_message(self, *args):  # keep test output quiet
                pass

            def do_HEAD(self):
                server._handle(self, head=True)

            def do_GET(self):
                server._handle(self, head=False)

        class Server(http.server.ThreadingHTTPServer):
            request_queue_size = 512  # parallel range requests must not be refused

            def handle_error(self, request, client_address):  # clients hanging up: quiet
                pass

        self._httpd = Server(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    # -- helpers ------------------------------------------------------------
    def url(self, name: str = "") -> str:
        return f"http://127.0.0.1:{self.port}/{name}"

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> FileServer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @staticmethod
    def etag(path: Path) -> str:
        st = path.stat()
        return '"' + hashlib.md5(f"{st.st_size}-{st.st_mtime_ns}".encode()).hexdigest() + '"'

    @staticmethod
    def last_modified(path: Path) -> str:
        return formatdate(path.stat().st_mtime, usegmt=True)

    def _record(self, method, path, rng, status, nbytes=0):
        with self._lock:
            self.stats.requests.append((method, path, rng, status))
            self.stats.bytes_sent += nbytes

    def _take(self, attr: str) -> bool:
        """Consume one unit of a countdown behaviour; True while it is active."""
        with self._lock:
            left = getattr(self.behaviour, attr)
            if left > 0:
                setattr(self.behaviour, attr, left - 1)
                return True
            return False

    # -- the handler ----------------------------------------------------------
    def _handle(self, h: http.server.BaseHTTPRequestHandler, head: bool) -> None:
        method = "HEAD" if head else "GET"
        name = h.path.split("?", 1)[0].lstrip("/")
        rng_header = h.headers.get("Range")
        path = (self.root / name).resolve()
        if self.behaviour.fail_status and self._take("failures"):
            self._empty(h, self.behaviour.fail_status, method, name, rng_header)
            return
        if not name or not path.is_file() or self.root.resolve() not in path.parents:
            self._empty(h, 404, method, name, rng_header)
            return
        bh = self.behaviour
        size = path.stat().st_size
        etag = self.etag(path)
        modified = self.last_modified(path)
        validators = [etag] * bh.send_etag + [modified] * bh.send_last_modified
        start, end = 0, size - 1
        status = 200
        if rng_header and not bh.ignore_range:
            if_range = h.headers.get("If-Range")
            fresh = if_range is None or if_range in validators or bh.ignore_if_range
            m = _RANGE.match(rng_header.strip())
            if m and fresh:
                a, b = m.groups()
                if a == "":  # suffix range: the last b bytes
                    start, end = max(0, size - int(b)), size - 1
                else:
                    start = int(a)
                    end = min(int(b), size - 1) if b else size - 1
                if start >= size or start > end:
                    self._record(method, name, rng_header, 416)
                    h.send_response(416)
                    h.send_header("Content-Range", f"bytes */{size}")
                    h.send_header("Content-Length", "0")
                    h.end_headers()
                    return
                status = 206
        length = end - start + 1
        if head:
            self._record(method, name, rng_header, status)
        no_length = bh.no_length and status == 200
        h.send_response(status)
        h.send_header("Content-Type", "application/octet-stream")
        if no_length:
            h.send_header("Connection", "close")
            h.close_connection = True
        else:
            h.send_header("Content-Length", str(length))
        h.send_header("Accept-Ranges", "none" if self.behaviour.ignore_range else "bytes")
        if bh.send_etag:
            h.send_header("ETag", etag)
        if bh.send_last_modified:
            h.send_header("Last-Modified", modified)
        if status == 206:
            h.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        h.end_headers()
        if head:
            return
        with open(path, "rb") as f:
            f.seek(start)
            body = f.read(length)
        if self.behaviour.corrupt and body:
            mid = len(body) // 2
            body = body[:mid] + bytes([body[mid] ^ 0xFF]) + body[mid + 1 :]
        limit = self.behaviour.drop_after
        if limit is not None and self._take("drops"):
            body = body[:limit]
            self._record(method, name, rng_header, status, len(body))
            try:
                h.wfile.write(body)
                h.wfile.flush()
            finally:
                h.close_connection = True
                try:
                    import socket

                    h.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                if self.behaviour.after_drop is not None:
                    hook, self.behaviour.after_drop = self.behaviour.after_drop, None
                    hook()
            return
        self._record(method, name, rng_header, status, len(body))
        try:
            h.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _empty(self, h, status, method, name, rng) -> None:
        # record before answering: a client may check the stats as soon as it has the answer
        self._record(method, name, rng, status)
        h.send_response(status)
        h.send_header("Content-Length", "0")
        h.end_headers()
