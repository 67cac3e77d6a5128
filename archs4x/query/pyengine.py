"""Python's own :mod:`re` over an Arrow column, with a time limit that holds.

Patterns RE2 cannot run with Python's meaning (look-around, back-references, ...) are
matched by :mod:`re` itself, so the results are Python's by definition.  ``re`` cannot be
interrupted from another thread (it holds the GIL), and a pattern such as
``(x+x+)+y(?=z)`` can backtrack for minutes on a single string, so the matching runs in a
small child process (``python -I -S``: the standard library only) that is killed when
the ``regex_timeout`` option runs out, raising :class:`archs4x.errors.RegexTimeoutError`.

The column goes to the child in batches of raw UTF-8 bytes and offsets (no Python
objects are built in the parent), and one byte per string comes back, so memory stays
bounded by a batch in both processes.
"""

from __future__ import annotations

import os
import pickle
import selectors
import subprocess
import sys
import time

import numpy as np
import pyarrow as pa

from .._options import OPTIONS
from ..errors import RegexTimeoutError

__all__ = ["search_column"]

BATCH_BYTES = 8 * 2**20
BATCH_ROWS = 65_536

_CHILD = r"""
import array, pickle, re, sys
inp, out = sys.stdin.buffer, sys.stdout.buffer
pattern, flags = pickle.load(inp)
search = re.compile(pattern, flags).search
out.write(b"k"); out.flush()
while True:
    try:
        offsets, data, valid = pickle.load(inp)
    except EOFError:
        break
    o = array.array("q"); o.frombytes(offsets)
    res = bytearray(len(o) - 1)
    for i in range(len(o) - 1):
        if valid[i] and search(data[o[i]:o[i + 1]].decode("utf-8")) is not None:
            res[i] = 1
    out.write(res); out.flush()
"""


def _batches(col: pa.Array | pa.ChunkedArray):
    """(offsets, data, valid) byte triples of at most BATCH_ROWS rows / ~BATCH_BYTES."""
    chunks = col.chunks if isinstance(col, pa.ChunkedArray) else [col]
    for chunk in chunks:
        chunk = chunk.cast(pa.large_string()) if chunk.type != pa.large_string() else chunk
        n = len(chunk)
        if n == 0:
            continue
        offsets = np.frombuffer(chunk.buffers()[1], dtype=np.int64)
        offsets = offsets[chunk.offset : chunk.offset + n + 1]
        data = chunk.buffers()[2]
        valid = np.asarray(chunk.is_valid().to_numpy(zero_copy_only=False), dtype=np.uint8)
        start = 0
        while start < n:
            stop = min(n, start + BATCH_ROWS)
            limit = offsets[start] + BATCH_BYTES
            stop = max(start + 1, min(stop, int(np.searchsorted(offsets, limit, "right")) - 1))
            lo, hi = int(offsets[start]), int(offsets[stop])
            rel = offsets[start : stop + 1] - lo
            blob = memoryview(data)[lo:hi].tobytes() if data is not None else b""
            yield stop - start, (rel.tobytes(), blob, valid[start:stop].tobytes())
            start = stop


class _Child:
    """The child process, answering batch after batch until the deadline."""

    def __init__(self, pattern: str, flags: int, deadline: float | None) -> None:
        self.deadline = deadline
        self.proc = subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", _CHILD],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        assert self.proc.stdin and self.proc.stdout and self.proc.stderr  # all are pipes
        self.stdin, self.stdout, self.stderr = self.proc.stdin, self.proc.stdout, self.proc.stderr
        self.sel = selectors.DefaultSelector()
        self.sel.register(self.stdout, selectors.EVENT_READ)
        self.send((pattern, flags))
        self.receive(1)

    def send(self, obj: object) -> None:
        try:
            self.stdin.write(pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL))
            self.stdin.flush()
        except BrokenPipeError:
            self.fail()

    def receive(self, n: int) -> bytes:
        got = bytearray()
        fd = self.stdout.fileno()
        while len(got) < n:
            wait = None if self.deadline is None else self.deadline - time.monotonic()
            if wait is not None and (wait <= 0 or not self.sel.select(wait)):
                raise TimeoutError
            block = os.read(fd, n - len(got))
            if not block:
                self.fail()
            got += block
        return bytes(got)

    def fail(self) -> None:
        self.proc.kill()
        err = self.stderr.read().decode(errors="replace").strip()
        raise RuntimeError(f"the Python regular expression worker failed: {err[-2000:]}")

    def close(self) -> None:
        self.sel.close()
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for stream in (self.stdin, self.stdout, self.stderr):
            try:
                stream.close()
            except OSError:  # a pipe the killed child left full
                pass


def search_column(
    col: pa.Array | pa.ChunkedArray, pattern: str, flags: int, *, timeout: float | None = None
) -> np.ndarray:
    """``[re.search(pattern, s, flags) is not None for s in col]`` (nulls: False), bounded.

    Parameters
    ----------
    col : pyarrow string array
    pattern, flags
        As for :func:`re.compile`.
    timeout : float, optional
        Seconds for the whole column (default: the ``regex_timeout`` option; 0 or None
        for no limit).

    Raises
    ------
    archs4x.errors.RegexTimeoutError
        The time ran out (the child process is killed).

    Examples
    --------
    >>> import pyarrow as pa
    >>> search_column(pa.array(["ab", None, "b"]), r"(?<=a)b", 0)
    array([ True, False, False])
    >>> search_column(pa.array(["x" * 40]), r"(x+x+)+y(?=z)", 0, timeout=0.5)
    Traceback (most recent call last):
    ...
    archs4x.errors.RegexTimeoutError: ...
    """
    limit = OPTIONS["regex_timeout"] if timeout is None else timeout
    deadline = time.monotonic() + limit if limit else None
    out = np.zeros(len(col), dtype=bool)
    if len(col) == 0:
        return out
    child = None
    try:
        child = _Child(pattern, flags, deadline)
        pos = 0
        for n, triple in _batches(col):
            child.send(triple)
            out[pos : pos + n] = np.frombuffer(child.receive(n), dtype=np.uint8).astype(bool)
            pos += n
    except TimeoutError:
        raise RegexTimeoutError(
            f"the regular expression {pattern!r} ran longer than {limit:g} s in Python's "
            "engine (it backtracks too much); pass regex=False to match the text literally, "
            "simplify the pattern, or raise archs4x.set_options(regex_timeout=...)"
        ) from None
    finally:
        if child is not None:
            child.close()
    return out
