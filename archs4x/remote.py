"""Reading ARCHS4 files where they live: ``https://`` and ``s3://`` URLs through fsspec.

``archs4x.open_dataset("https://.../human_gene_v2.5.h5")`` (or ``"s3://bucket/key"``)
returns the same lazy Dataset as a local file.  Three things keep the transfer small:

* **Chunk data by byte range.**  The byte offset of each needed chunk is found by walking
  the dataset's HDF5 chunk B-tree (version 1, what ARCHS4 files use) *only along the
  paths that lead to the needed chunks*, one batch of parallel range requests per tree
  level.  The raw chunks are then fetched with ``fs.cat_ranges`` after coalescing
  neighbouring ranges (the chunks of one sample are contiguous in ARCHS4 files, so one
  sample is one request), and inflated by the same code as local reads
  (:func:`archs4x.chunks.decode_chunk`).  Files with another chunk index fall back to
  listing every chunk once with ``chunk_iter``.
* **Metadata once.**  Sample ids, gene ids and every sample field a query touches are
  fetched whole on first use and kept in ``archs4x.datasets.cache_dir()/remote/``, keyed
  by URL, size and ETag (a changed remote file gets a fresh cache).
* **Small metadata reads.**  h5py reads the file structure through a cache of 8 KiB
  blocks (:class:`SparseBlockCache`) that never fetches a byte twice and fetches each
  run of missing blocks in one request; never fsspec's default 5 MB blocks.

Tasks stay picklable: arrays carry a :class:`RemoteSource` (URL, options, size, ETag),
never an open handle, and every process opens the file itself.  ``s3://`` is anonymous
by default; pass ``storage_options={"endpoint_url": ...}`` for another S3-compatible
server or ``{"anon": False}`` to use credentials.
"""

from __future__ import annotations

import atexit
import bisect
import hashlib
import json
import os
import struct
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fsspec
import h5py
import numpy as np

from .chunks import ChunkReader

__all__ = [
    "RemoteChunkReader",
    "RemoteSource",
    "cached_field",
    "close_all",
    "open_remote_h5",
    "remote_reader",
]

METADATA_BLOCK = int(os.environ.get("ARCHS4X_REMOTE_BLOCK", 2**13))
METADATA_CACHE = os.environ.get("ARCHS4X_REMOTE_CACHE", "archs4x-sparse")
MERGE_GAP = 4096  # bytes of gap between two ranges still worth fetching in one request

_lock = threading.Lock()
_handles: dict[tuple, h5py.File] = {}
_readers: dict[tuple, RemoteChunkReader] = {}


@dataclass(frozen=True)
class RemoteSource:
    """A remote file: URL, fsspec storage options, and the size and ETag seen at open.

    Picklable and hashable; it is what Dask tasks carry instead of an open file.

    Examples
    --------
    >>> src = RemoteSource("s3://bucket/x.h5", '{"anon": true}', 10, None)
    >>> str(src), src.storage_options
    ('s3://bucket/x.h5', {'anon': True})
    """

    url: str
    options: str  # JSON of the storage options (hashable)
    size: int
    etag: str | None

    @classmethod
    def resolve(cls, url: str, storage_options: dict | None = None) -> RemoteSource:
        """Check that ``url`` exists and record its size and ETag.

        Raises
        ------
        FileNotFoundError
            If the server says the file does not exist.
        """
        opts = dict(storage_options or {})
        if url.startswith(("s3://", "s3a://")):
            opts.setdefault("anon", True)
        fs, path = fsspec.core.url_to_fs(url, **opts)
        try:
            info = fs.info(path)
        except FileNotFoundError:
            raise FileNotFoundError(f"No such remote ARCHS4 file: {url!r}") from None
        etag = info.get("ETag") or info.get("etag") or info.get("LastModified")
        return cls(url, json.dumps(opts, sort_keys=True, default=str), int(info["size"]),
                   None if etag is None else str(etag))  # fmt: skip

    @property
    def storage_options(self) -> dict[str, Any]:
        return json.loads(self.options)

    def filesystem(self) -> tuple[fsspec.AbstractFileSystem, str]:
        """``(fs, path)`` for this source (fsspec caches filesystem instances)."""
        return fsspec.core.url_to_fs(self.url, **self.storage_options)

    @property
    def key(self) -> str:
        """Cache key: URL + size + ETag."""
        return hashlib.sha1(f"{self.url}|{self.size}|{self.etag}".encode()).hexdigest()[:20]

    def __str__(self) -> str:
        return self.url


class SparseBlockCache(fsspec.caching.BaseCache):
    """fsspec read cache for HDF5 metadata: small blocks, kept, fetched in merged runs.

    A read fetches only the blocks not seen before, each run of consecutive missing
    blocks in one request; blocks are kept (up to ``MAX_CACHED`` bytes), so the
    neighbouring reads HDF5 makes never fetch the same bytes twice.
    """

    name = "archs4x-sparse"
    MAX_CACHED = 512 * 2**20

    def __init__(self, blocksize: int, fetcher, size: int) -> None:
        super().__init__(blocksize, fetcher, size)
        self.blocks: dict[int, bytes] = {}
        self.held = 0

    def _fetch(self, start: int | None, stop: int | None) -> bytes:
        start = 0 if start is None else start
        stop = self.size if stop is None else min(stop, self.size)
        if start >= stop:
            return b""
        bs = self.blocksize
        first, last = start // bs, (stop - 1) // bs
        missing = [b for b in range(first, last + 1) if b not in self.blocks]
        if self.held > self.MAX_CACHED:
            self.blocks.clear()
            self.held = 0
            missing = list(range(first, last + 1))
        runs: list[list[int]] = []
        for b in missing:
            if runs and b == runs[-1][1] + 1:
                runs[-1][1] = b
            else:
                runs.append([b, b])
        for b0, b1 in runs:
            data = self.fetcher(b0 * bs, min((b1 + 1) * bs, self.size))
            for i, b in enumerate(range(b0, b1 + 1)):
                self.blocks[b] = data[i * bs : (i + 1) * bs]
            self.held += len(data)
        buf = b"".join(self.blocks[b] for b in range(first, last + 1))
        return buf[start - first * bs : stop - first * bs]


fsspec.caching.register_cache(SparseBlockCache, clobber=True)


def open_remote_h5(src: RemoteSource) -> h5py.File:
    """A read-only ``h5py.File`` over fsspec for ``src``, one per process.

    Raises
    ------
    ValueError
        If the remote bytes are not HDF5.
    """
    key = (os.getpid(), src)
    with _lock:
        f = _handles.get(key)
        if f is not None and f.id.valid:
            return f
        fs, path = src.filesystem()
        fobj = fs.open(path, "rb", cache_type=METADATA_CACHE, block_size=METADATA_BLOCK)
        try:
            f = h5py.File(fobj, "r")
        except OSError as exc:
            raise ValueError(f"{src.url!r} is not a readable HDF5 file ({exc})") from exc
        _handles[key] = f
        return f


def close_all() -> None:
    """Close this process's remote files and forget its readers (also run at exit).

    h5py files over Python file objects must be closed before the interpreter shuts
    down, or HDF5 may call into a half-finalised file object.
    """
    with _lock:
        for (pid, _), f in list(_handles.items()):
            if pid == os.getpid() and f.id.valid:
                f.close()
        _handles.clear()
        _readers.clear()


atexit.register(close_all)


# -- metadata cache -------------------------------------------------------------
def _cache_folder(src: RemoteSource) -> Path:
    from .datasets import cache_dir

    folder = cache_dir() / "remote" / src.key
    folder.mkdir(parents=True, exist_ok=True)
    meta = folder / "source.json"
    if not meta.exists():
        meta.write_text(json.dumps({"url": src.url, "size": src.size, "etag": src.etag}))
    return folder


def cached_field(src: RemoteSource, path: str) -> h5py.Dataset:
    """The whole dataset ``path`` of ``src``, fetched once into the local cache.

    The copy is written to a temporary file and renamed, so concurrent processes never
    see half a file.  Returns a read-only local ``h5py.Dataset``.
    """
    from .files import open_h5

    local = _cache_folder(src) / (path.strip("/").replace("/", "%") + ".h5")
    if not local.exists():
        remote = open_remote_h5(src)[path]
        values = remote[()]
        tmp = local.with_name(f"{local.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        with h5py.File(tmp, "w") as out:
            out.create_dataset("v", data=values, dtype=remote.dtype)
        os.replace(tmp, local)
    return open_h5(local)["v"]


# -- where the chunks are -------------------------------------------------------
class _Unsupported(Exception):
    pass


def _layout_message(fs, path: str, addr: int) -> bytes:
    """Body of the data layout message (type 8) of the object header at ``addr``."""
    blocks = [(addr, None)]
    while blocks:
        start, length = blocks.pop(0)
        head = fs.cat_file(path, start=start, end=start + (length or 4096))
        if length is None and head[:4] == b"OHDR":  # version 2 header
            flags = head[5]
            pos = 6 + (16 if flags & 0x20 else 0) + (4 if flags & 0x10 else 0)
            width = 1 << (flags & 3)
            size = int.from_bytes(head[pos : pos + width], "little")
            pos += width
            body = fs.cat_file(path, start=start + pos, end=start + pos + size)
            msgs = _v2_messages(body, flags)
        elif length is None:  # version 1 header
            if head[0] != 1:
                raise _Unsupported(f"object header version {head[0]}")
            size = struct.unpack_from("<I", head, 8)[0]
            body = fs.cat_file(path, start=start + 16, end=start + 16 + size)
            msgs = _v1_messages(body)
        elif head[:4] == b"OCHK":
            msgs = _v2_messages(head[4 : length - 4], flags)
        else:
            msgs = _v1_messages(head[:length])
        for mtype, data in msgs:
            if mtype == 8:
                return data
            if mtype == 0x10:  # continuation
                blocks.append(struct.unpack_from("<QQ", data, 0))
    raise _Unsupported("no data layout message")


def _v1_messages(body: bytes):
    pos = 0
    while pos + 8 <= len(body):
        mtype, size = struct.unpack_from("<HH", body, pos)
        yield mtype, body[pos + 8 : pos + 8 + size]
        pos += 8 + size


def _v2_messages(body: bytes, hdr_flags: int):
    pos = 0
    extra = 2 if hdr_flags & 0x04 else 0
    while pos + 4 + extra <= len(body):
        mtype = body[pos]
        size = struct.unpack_from("<H", body, pos + 1)[0]
        pos += 4 + extra
        yield mtype, body[pos : pos + size]
        pos += size


class ChunkIndex:
    """Byte offset, stored size and filter mask of chunks of a remote 2-D dataset.

    Walks the version-1 chunk B-tree only along the paths to the requested chunks, one
    batch of parallel range requests per level; nodes and answers are memoised.  Other
    chunk indexes fall back to one ``chunk_iter`` pass over the whole dataset.
    """

    def __init__(self, src: RemoteSource, dset: h5py.Dataset):
        self.src = src
        self.fs, self.path = src.filesystem()
        self.found: dict[tuple[int, int], tuple[int, int, int] | None] = {}
        self.nodes: dict[int, tuple] = {}
        self.requests = 0
        self.bytes = 0
        self._lock = threading.Lock()
        self._full = False
        try:
            self._setup_btree(dset)
        except (_Unsupported, struct.error, IndexError) as exc:  # pragma: no cover
            self.root = None
            self._fallback_reason = str(exc)
            self._dset = dset

    def _setup_btree(self, dset: h5py.Dataset) -> None:
        fcpl = dset.file.id.get_create_plist()
        if tuple(fcpl.get_sizes()) != (8, 8):
            raise _Unsupported("addresses are not 8 bytes")
        # The link's target address: h5o.get_info would walk the whole chunk B-tree.
        addr = dset.file.id.links.get_info(dset.name.encode()).u
        msg = _layout_message(self.fs, self.path, addr)
        if msg[0] not in (1, 2, 3):
            raise _Unsupported(f"layout message version {msg[0]} (not a v1 B-tree)")
        if msg[0] == 3:
            if msg[1] != 2:
                raise _Unsupported("dataset is not chunked")
            ndims = msg[2]
            self.root = struct.unpack_from("<Q", msg, 3)[0]
        else:  # versions 1 and 2
            ndims = msg[1]
            if msg[2] != 2:
                raise _Unsupported("dataset is not chunked")
            self.root = struct.unpack_from("<Q", msg, 8)[0]
        self.ndims = ndims  # rank + 1
        self.key_size = 8 + 8 * ndims
        k = 32  # HDF5's default "istore K"; _parse fetches the rest of a larger node
        self.node_size = 24 + (2 * k + 1) * self.key_size + 2 * k * 8

    def _fetch(self, ranges: list[tuple[int, int]]) -> list[bytes]:
        out = fetch_ranges(self.fs, self.path, ranges, self.src.url)
        with self._lock:
            self.requests += len(ranges)
            self.bytes += sum(len(b) for b in out)
        return out

    def _parse(self, addr: int, raw: bytes) -> tuple:
        if raw[:4] != b"TREE" or raw[4] != 1:
            raise OSError(f"{self.src.url}: no chunk B-tree node at byte {addr}")
        level, used = raw[5], struct.unpack_from("<H", raw, 6)[0]
        need = 24 + (used + 1) * self.key_size + used * 8
        if need > len(raw):
            raw = raw + self._fetch([(addr + len(raw), addr + need)])[0]
        keys, children = [], []
        pos = 24
        stride = self.key_size + 8
        for i in range(used):
            size, mask = struct.unpack_from("<II", raw, pos + i * stride)
            coords = struct.unpack_from(f"<{self.ndims - 1}Q", raw, pos + i * stride + 8)
            child = struct.unpack_from("<Q", raw, pos + i * stride + self.key_size)[0]
            keys.append(tuple(coords))
            children.append((child, size, mask))
        return level, keys, children

    def lookup(self, coords: list[tuple[int, int]]) -> dict:
        """Map each chunk offset ``(r0, c0)`` to ``(byte_offset, size, mask)`` or None."""
        todo = sorted({c for c in coords if c not in self.found})
        if todo and self.root is None:
            self._lookup_all()
        elif todo:
            frontier = {self.root: todo}
            while frontier:
                new = [a for a in frontier if a not in self.nodes]
                raws = self._fetch([(a, a + self.node_size) for a in new])
                for a, raw in zip(new, raws, strict=True):
                    self.nodes[a] = self._parse(a, raw)
                nxt: dict[int, list] = {}
                for a, wanted in frontier.items():
                    level, keys, children = self.nodes[a]
                    for c in wanted:
                        i = bisect.bisect_right(keys, c) - 1
                        if i < 0:
                            self.found[c] = None
                        elif level == 0:
                            child = children[i]
                            self.found[c] = (child[0], child[1], child[2]) if keys[i] == c else None
                        else:
                            nxt.setdefault(children[i][0], []).append(c)
                frontier = nxt
        return {c: self.found.get(c) for c in coords}

    def _lookup_all(self) -> None:  # pragma: no cover - files without a v1 B-tree
        if self._full:
            return

        def visit(info):
            self.found[tuple(int(x) for x in info.chunk_offset)] = (
                int(info.byte_offset),
                int(info.size),
                int(info.filter_mask),
            )

        self._dset.id.chunk_iter(visit)
        self._full = True


RETRIES = 4


def fetch_ranges(fs, path: str, ranges: list[tuple[int, int]], url: str) -> list[bytes]:
    """Fetch byte ranges ``[start, end)`` concurrently; failed ones are retried with backoff.

    Raises
    ------
    OSError
        If a range still fails (or comes back short) after the retries.
    """
    out: list = [None] * len(ranges)
    todo = list(range(len(ranges)))
    error: BaseException | None = None
    for attempt in range(RETRIES):
        if not todo:
            break
        if attempt:
            time.sleep(min(2.0, 0.1 * 2**attempt))
        got = fs.cat_ranges(
            [path] * len(todo), [ranges[i][0] for i in todo], [ranges[i][1] for i in todo]
        )
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
        raise OSError(f"{url}: reading bytes {a}-{b} failed after {RETRIES} tries: {error}")
    return out


def merge_ranges(ranges: list[tuple[int, int]], gap: int = MERGE_GAP) -> list[tuple[int, int]]:
    """Coalesce byte ranges ``[start, end)`` that overlap or are within ``gap`` bytes.

    Examples
    --------
    >>> merge_ranges([(10, 20), (0, 5), (20, 30), (9000, 9100)], gap=8)
    [(0, 30), (9000, 9100)]
    """
    out: list[list[int]] = []
    for a, b in sorted(ranges):
        if out and a <= out[-1][1] + gap:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return [(a, b) for a, b in out]


class RemoteChunkReader(ChunkReader):
    """:class:`~archs4x.chunks.ChunkReader` that fetches only the needed chunks' bytes.

    ``bytes_fetched`` and ``requests`` count what the chunk data and the B-tree walk
    transferred in this process.
    """

    def __init__(self, src: RemoteSource, dset: h5py.Dataset):
        super().__init__(dset)
        self.src = src
        self.name = f"{src.url}:{dset.name}"
        self.index = ChunkIndex(src, dset)
        self._stats_lock = threading.Lock()
        self.data_bytes = 0
        self.data_requests = 0

    @property
    def bytes_fetched(self) -> int:
        return self.data_bytes + self.index.bytes

    @property
    def requests(self) -> int:
        return self.data_requests + self.index.requests

    def _prefetch(self, row_chunks: np.ndarray, col_chunks: np.ndarray) -> dict:
        cr, cc = self.chunks
        coords = [(int(r) * cr, int(c) * cc) for c in col_chunks for r in row_chunks]
        where = self.index.lookup(coords)
        spans = [(v[0], v[0] + v[1]) for v in where.values() if v is not None and v[1] > 0]
        merged = merge_ranges(spans)
        blobs = fetch_ranges(self.index.fs, self.index.path, merged, self.src.url)
        with self._stats_lock:
            self.data_requests += len(merged)
            self.data_bytes += sum(len(b) for b in blobs)
        starts = [a for a, _ in merged]
        out: dict = {}
        for c, v in where.items():
            if v is None:
                out[c] = None
                continue
            j = bisect.bisect_right(starts, v[0]) - 1
            blob = blobs[j]
            lo = v[0] - starts[j]
            raw = bytes(blob[lo : lo + v[1]])
            if len(raw) != v[1]:
                raise OSError(f"{self.name}: short read of chunk at offset {c}")
            out[c] = (v[2], raw)
        return out


def remote_reader(src: RemoteSource, name: str) -> RemoteChunkReader:
    """The per-process :class:`RemoteChunkReader` of dataset ``name`` of ``src``."""
    key = (os.getpid(), src, name)
    with _lock:
        reader = _readers.get(key)
    if reader is None:
        reader = RemoteChunkReader(src, open_remote_h5(src)[name])
        with _lock:
            reader = _readers.setdefault(key, reader)
    return reader
