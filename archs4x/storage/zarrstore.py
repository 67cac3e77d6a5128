"""archs4x Zarr stores: their format, and reading them with every byte checked.

A store written by :func:`archs4x.to_zarr` is a Zarr v3 group holding ``counts``, every
coordinate as an array, a state record in the root attributes (:data:`STATE`: layout,
the conversion's fingerprint, a write id, completion) and, once complete, consolidated
metadata (so plain ``xarray.open_zarr`` opens it without a warning).  Every chunk ends in
the CRC-32C of its bytes (Zarr v3's ``crc32c`` codec; shard indexes carry one too), and
every chunk of every array is written, zeros included.

This module reads and writes those bytes itself (the Zarr v3 format is public; zarr-python
and TensorStore read the same stores):

* :class:`StoreIO` - the keys of a store: a local directory (``os.pread``, writes to a
  temporary file then ``os.replace``, so a key is always its old or its new value) or an
  fsspec URL (whole-object writes).
* :class:`ArrayMeta` - one array's ``zarr.json``: shape, data type, chunk and shard grid,
  and its codec chain, which :meth:`ArrayMeta.encode_chunk` and
  :meth:`ArrayMeta.decode_chunk` apply (bytes, vlen-utf8, Blosc, Zstd, gzip, crc32c).
* :class:`ArrayReader` - outer selections of an array, each needed chunk fetched once
  and decoded on the reader thread pool.  A chunk whose checksum fails, a missing shard,
  chunk or index entry, a truncated object: each raises
  :class:`~archs4x.errors.StoreIntegrityError` naming the array and the chunk.  Nothing
  reads as fill zeros.
* :class:`ZarrStore` - the source of a complete store, in the sense of
  :mod:`archs4x.storage.sources`: small, picklable, pinned to the write it was opened on
  (a store rewritten since raises :class:`~archs4x.errors.FileChangedError`); everything
  cached in a process is keyed by that write.
"""

from __future__ import annotations

import builtins
import json
import math
import os
import threading
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal

import google_crc32c
import numpy as np

from ..errors import FileChangedError, StoreIntegrityError
from .caches import LRUCache
from .pool import reader_pool
from .reader import ReadStats, normalize_selection

__all__ = [
    "COUNTS_ARRAY",
    "FORMAT",
    "PROGRESS",
    "STATE",
    "TMP",
    "ArrayMeta",
    "ArrayReader",
    "StoreIO",
    "ZarrCountsReader",
    "ZarrStore",
    "check_storage_options",
    "crc32c",
    "is_url",
    "store_name",
]

STATE = "archs4x_zarr"
PROGRESS = "archs4x_progress"
TMP = "archs4x_tmp"
COUNTS_ARRAY = "counts"
ROOT = "zarr.json"
#: Version of the archs4x store layout (1: no checksums; 2: crc32c on every chunk).
FORMAT = 2
#: Shard index entry of a chunk that was never written (Zarr v3 sharding spec).
EMPTY = 2**64 - 1
#: Bytes of gap between two chunks of one object still worth reading in one request.
MERGE_GAP = 1 << 16


def store_name(store: Any) -> str:
    """A store as a string: a path or an fsspec URL.

    Examples
    --------
    >>> from pathlib import Path
    >>> store_name(Path("/tmp/x.zarr")), store_name("s3://b/x.zarr")
    ('/tmp/x.zarr', 's3://b/x.zarr')
    """
    if isinstance(store, os.PathLike):
        return os.fspath(store)
    if isinstance(store, str):
        return store
    raise TypeError(f"store must be a path or an fsspec URL string, got {type(store).__name__}")


def is_url(store: str) -> bool:
    return "://" in store and not store.startswith("file://")


def check_storage_options(storage_options: dict | None, store: str) -> dict:
    if storage_options and not is_url(store):
        raise ValueError("storage_options are only for fsspec URLs (s3://, gs://, ...)")
    return {"storage_options": storage_options} if storage_options else {}


def crc32c(data: Any) -> int:
    """CRC-32C (Castagnoli) of a bytes-like object, as the Zarr v3 ``crc32c`` codec stores it.

    Examples
    --------
    >>> hex(crc32c(b"123456789"))  # the standard check value
    '0xe3069283'
    """
    return int(google_crc32c.value(np.frombuffer(data, dtype=np.uint8)))


# -- keys -----------------------------------------------------------------------------
class StoreIO:
    """The keys of a store: a local directory or an fsspec URL.

    Local writes go to a temporary file that is renamed over the key (``os.replace``), so
    a reader or a killed writer sees the old value or the new one, never a mix.  Object
    stores replace whole objects in one request.

    Examples
    --------
    >>> import tempfile
    >>> io = StoreIO(tempfile.mkdtemp())
    >>> io.write("a/b", b"hello"); io.read("a/b"), io.read_ranges("a/b", [(1, 3)])
    (b'hello', [b'el'])
    >>> io.list(""), io.exists("a/c")
    (['a/b'], False)
    """

    def __init__(self, store: str, storage_options: dict | None = None) -> None:
        self.store = store
        self.local = not is_url(store)
        if self.local:
            check_storage_options(storage_options, store)
            self.root = os.path.abspath(os.path.expanduser(store.removeprefix("file://")))
            self.fs = None
        else:
            import fsspec

            self.fs, self.root = fsspec.core.url_to_fs(store, **(storage_options or {}))
            self.root = self.root.rstrip("/")

    def path(self, key: str) -> str:
        return f"{self.root}/{key}" if key else self.root

    @property
    def _fs(self) -> Any:
        """The fsspec filesystem of a URL store (a local store has none)."""
        if self.fs is None:
            raise RuntimeError(f"{self.store}: a local store has no fsspec filesystem")
        return self.fs

    # reads ------------------------------------------------------------------------------
    def read(self, key: str) -> bytes:
        """The whole value of ``key`` (FileNotFoundError when absent)."""
        if self.local:
            with open(self.path(key), "rb") as f:
                return f.read()
        try:
            return self._fs.cat_file(self.path(key))
        except FileNotFoundError:
            raise
        except OSError as exc:  # some filesystems report a missing key otherwise
            if not self._fs.exists(self.path(key)):
                raise FileNotFoundError(self.path(key)) from exc
            raise

    def read_ranges(self, key: str, ranges: Sequence[tuple[int, int | None]]) -> list[bytes]:
        """Byte ranges ``[start, stop)`` of ``key`` (negative start: that many from the end;
        stop None: to the end)."""
        if self.local:
            with open(self.path(key), "rb") as f:
                size = None
                out = []
                for a, b in ranges:
                    if a < 0 or b is None:
                        size = os.fstat(f.fileno()).st_size if size is None else size
                        a, b = (max(0, size + a), size) if a < 0 else (a, size)
                    out.append(os.pread(f.fileno(), b - a, a))
                return out
        return self.read_many([(key, a, b) for a, b in ranges])

    def read_many(self, requests: Sequence[tuple[str, int, int | None]]) -> list[bytes]:
        """Ranges of several keys, in one batch of requests for URL stores."""
        if self.local:
            return [self.read_ranges(k, [(a, b)])[0] for k, a, b in requests]
        if not requests:
            return []
        paths = [self.path(k) for k, _, _ in requests]
        starts = [a for _, a, _ in requests]
        stops = [None if (a < 0 or b is None) else b for _, a, b in requests]
        out = self._fs.cat_ranges(paths, starts, stops, on_error="return")
        for (key, _, _), value in zip(requests, out, strict=True):
            if isinstance(value, BaseException):
                if isinstance(value, FileNotFoundError) or not self._fs.exists(self.path(key)):
                    raise FileNotFoundError(self.path(key)) from value
                raise value
        return out

    def size(self, key: str) -> int:
        if self.local:
            return os.stat(self.path(key)).st_size
        return int(self._fs.size(self.path(key)))

    def exists(self, key: str) -> bool:
        if self.local:
            return os.path.exists(self.path(key))
        return bool(self._fs.exists(self.path(key)))

    def list(self, prefix: str) -> list[str]:
        """Every key under ``prefix`` (recursively), sorted; temporary files excluded."""
        base = self.path(prefix)
        keys = []
        if self.local:
            for dirpath, _dirs, files in os.walk(base):
                rel = os.path.relpath(dirpath, self.root)
                for name in files:
                    if not name.endswith(".partial"):
                        keys.append(name if rel == "." else f"{rel}/{name}".replace(os.sep, "/"))
        else:
            try:
                found = self._fs.find(base)
            except FileNotFoundError:
                found = []
            n = len(self.root) + 1
            keys = [p[n:] if p.startswith(self.root + "/") else p for p in found]
            keys = [k for k in keys if not k.endswith(".partial")]
        return sorted(keys)

    def partial_files(self) -> builtins.list[str]:
        """Temporary files left by a killed local writer."""
        if not self.local:
            return []
        out = []
        for dirpath, _dirs, files in os.walk(self.root):
            out += [os.path.join(dirpath, f) for f in files if f.endswith(".partial")]
        return out

    # writes -----------------------------------------------------------------------------
    def write(self, key: str, data: Any) -> None:
        """Replace ``key`` with ``data`` atomically."""
        target = self.path(key)
        if not self.local:
            self._fs.pipe_file(target, bytes(data))
            return
        folder = os.path.dirname(target)
        os.makedirs(folder, exist_ok=True)
        tmp = f"{target}.{uuid.uuid4().hex}.partial"
        try:
            with open(tmp, "wb") as f:
                f.write(data)
            os.replace(tmp, target)
        except BaseException:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            raise

    def delete(self, key: str) -> None:
        """Delete ``key`` and everything under it (nothing when absent)."""
        target = self.path(key)
        if self.local:
            import shutil

            if os.path.isdir(target) and not os.path.islink(target):
                shutil.rmtree(target)
            elif os.path.lexists(target):
                os.unlink(target)
            return
        if self._fs.exists(target):
            self._fs.rm(target, recursive=True)

    def children(self) -> builtins.list[str]:
        """Names directly under the store root."""
        if self.local:
            return sorted(os.listdir(self.root)) if os.path.isdir(self.root) else []
        try:
            return sorted(
                p.rstrip("/").rsplit("/", 1)[-1] for p in self._fs.ls(self.root, detail=False)
            )
        except FileNotFoundError:
            return []

    def read_json(self, key: str) -> dict:
        raw = self.read(key)
        try:
            doc = json.loads(raw)
        except ValueError as exc:
            raise StoreIntegrityError(f"{self.store}: {key} is not valid JSON ({exc})") from None
        if not isinstance(doc, dict):
            raise StoreIntegrityError(f"{self.store}: {key} is not a JSON object")
        return doc

    def write_json(self, key: str, doc: dict) -> None:
        self.write(key, json.dumps(doc, indent=2, sort_keys=False, allow_nan=False).encode())


# -- codecs ---------------------------------------------------------------------------
_SHUFFLE = {"noshuffle": 0, "shuffle": 1, "bitshuffle": 2}


def _bytes_codec(conf: dict) -> Any:
    import numcodecs

    name, c = conf["name"], conf.get("configuration") or {}
    if name == "blosc":
        return numcodecs.Blosc(cname=c["cname"], clevel=int(c["clevel"]),
                               shuffle=_SHUFFLE[c.get("shuffle", "noshuffle")],
                               blocksize=int(c.get("blocksize", 0)),
                               typesize=int(c.get("typesize", 1)))  # fmt: skip
    if name == "zstd":
        return numcodecs.Zstd(level=int(c.get("level", 0)), checksum=bool(c.get("checksum")))
    if name == "gzip":
        return numcodecs.GZip(level=int(c.get("level", 5)))
    raise ValueError(f"codec {name!r} is not one archs4x reads (blosc, zstd, gzip, crc32c)")


@dataclass(frozen=True)
class Chain:
    """A Zarr v3 codec chain of one chunk: array->bytes, then bytes->bytes codecs."""

    array_codec: str  # "bytes" or "vlen-utf8"
    endian: Literal["<", ">"]
    compressors: tuple  # numcodecs objects, in encoding order
    checksum: bool  # ends in crc32c

    @classmethod
    def parse(cls, codecs: Sequence[dict]) -> Chain:
        codecs = [c if isinstance(c, dict) else {"name": c} for c in codecs]
        if not codecs or codecs[0]["name"] not in ("bytes", "vlen-utf8"):
            first = codecs[0]["name"] if codecs else None
            raise ValueError(f"archs4x reads chunks serialised by 'bytes' or 'vlen-utf8', "
                             f"not {first!r}")  # fmt: skip
        head = codecs[0]
        endian = (head.get("configuration") or {}).get("endian", "little")
        rest = list(codecs[1:])
        checksum = bool(rest) and rest[-1]["name"] == "crc32c"
        if checksum:
            rest = rest[:-1]
        if any(c["name"] == "crc32c" for c in rest):
            raise ValueError("crc32c must be the last codec of a chain archs4x reads")
        return cls(head["name"], "<" if endian == "little" else ">",
                   tuple(_bytes_codec(c) for c in rest), checksum)  # fmt: skip

    def encode(self, chunk: np.ndarray) -> bytes:
        if self.array_codec == "vlen-utf8":
            import numcodecs

            data: Any = numcodecs.VLenUTF8().encode(np.asarray(chunk, dtype=object).ravel())
        else:
            arr = np.ascontiguousarray(chunk)
            want = arr.dtype.newbyteorder(self.endian) if arr.dtype.itemsize > 1 else arr.dtype
            data = arr.astype(want, copy=False).reshape(-1).data.cast("B")
        for codec in self.compressors:
            data = codec.encode(data)
        data = bytes(data)
        if self.checksum:
            data += crc32c(data).to_bytes(4, "little")
        return data

    def decode(self, raw: Any, shape: tuple[int, ...], dtype: np.dtype, where: Any,
               out: np.ndarray | None = None) -> np.ndarray:  # fmt: skip
        """Decode one chunk; a checksum or codec failure raises StoreIntegrityError.

        ``where`` names the chunk in messages: a string, or a callable making one.
        """
        view = memoryview(raw)
        if view.format != "B" or view.ndim != 1:
            view = view.cast("B")
        if self.checksum:
            if callable(where) and (len(view) < 4 or int.from_bytes(view[-4:], "little")
                                    != crc32c(view[:-4])):  # fmt: skip
                where = where()
            if len(view) < 4:
                raise StoreIntegrityError(f"{where}: {len(view)} bytes, too short for its checksum")
            stored = int.from_bytes(view[-4:], "little")
            view = view[:-4]
            computed = crc32c(view)
            if stored != computed:
                raise StoreIntegrityError(
                    f"{where}: checksum mismatch (stored crc32c {stored:#010x}, computed "
                    f"{computed:#010x})"
                )
        try:
            data: Any = view
            for i, codec in enumerate(reversed(self.compressors)):
                last = i == len(self.compressors) - 1
                if last and out is not None and self.array_codec == "bytes":
                    codec.decode(data, out=out)
                    return out
                data = codec.decode(data)
            if self.array_codec == "vlen-utf8":
                import numcodecs

                values = numcodecs.VLenUTF8().decode(bytes(data))
                return np.asarray(values, dtype=object).reshape(shape)
            arr = np.frombuffer(data, dtype=dtype.newbyteorder(self.endian))
            arr = arr.reshape(shape)
            if arr.dtype != dtype:
                arr = arr.astype(dtype)
        except StoreIntegrityError:
            raise
        except Exception as exc:
            where = where() if callable(where) else where
            raise StoreIntegrityError(f"{where}: cannot be decoded ({exc})") from exc
        if out is not None:
            out[...] = arr
            return out
        return arr


# -- array metadata -------------------------------------------------------------------
def _dtype(data_type: Any) -> np.dtype:
    if data_type == "string":
        return np.dtype(object)
    if not isinstance(data_type, str):
        raise ValueError(f"data type {data_type!r} is not one archs4x reads")
    return np.dtype(data_type)


@dataclass(frozen=True)
class ArrayMeta:
    """One array of a store, from its ``zarr.json`` document.

    ``grid`` is the shape of a stored object (a shard, or the chunk when unsharded) and
    ``inner`` the shape of a chunk.

    Examples
    --------
    >>> doc = {"shape": [5, 3], "data_type": "uint32", "zarr_format": 3,
    ...        "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [5, 2]}},
    ...        "codecs": [{"name": "bytes"}, {"name": "crc32c"}], "fill_value": 0}
    >>> m = ArrayMeta.from_json("x", doc)
    >>> m.object_key((0, 1)), m.n_objects, m.chunk_in_bounds((0, 1))
    ('x/c/0/1', (1, 2), True)
    >>> m.decode_chunk(m.encode_chunk(np.arange(10).reshape(5, 2)), (0, 0))[4].tolist()
    [8, 9]
    """

    path: str
    shape: tuple[int, ...]
    dtype: np.dtype
    data_type: str
    grid: tuple[int, ...]
    inner: tuple[int, ...]
    chain: Chain
    index_chain: Chain | None
    index_at_end: bool
    fill_value: Any
    separator: str
    dimension_names: tuple[str, ...] | None
    attributes: dict = field(hash=False, compare=False)

    @classmethod
    def from_json(cls, path: str, doc: dict) -> ArrayMeta:
        if doc.get("zarr_format") != 3:
            raise ValueError(f"{path}: not a Zarr v3 array")
        grid = tuple(int(c) for c in doc["chunk_grid"]["configuration"]["chunk_shape"])
        enc = doc.get("chunk_key_encoding") or {"name": "default"}
        if enc.get("name", "default") != "default":
            raise ValueError(f"{path}: chunk key encoding {enc.get('name')!r} is not supported")
        sep = (enc.get("configuration") or {}).get("separator", "/")
        codecs = doc["codecs"]
        index_chain, at_end, inner = None, True, grid
        if len(codecs) == 1 and codecs[0]["name"] == "sharding_indexed":
            conf = codecs[0]["configuration"]
            inner = tuple(int(c) for c in conf["chunk_shape"])
            index_chain = Chain.parse(conf.get("index_codecs") or [{"name": "bytes"}])
            at_end = conf.get("index_location", "end") == "end"
            codecs = conf["codecs"]
        dims = doc.get("dimension_names")
        return cls(
            path=path,
            shape=tuple(int(s) for s in doc["shape"]),
            dtype=_dtype(doc["data_type"]),
            data_type=str(doc["data_type"]),
            grid=grid,
            inner=inner,
            chain=Chain.parse(codecs),
            index_chain=index_chain,
            index_at_end=at_end,
            fill_value=doc.get("fill_value"),
            separator=sep,
            dimension_names=tuple(dims) if dims is not None else None,
            attributes=dict(doc.get("attributes") or {}),
        )

    @property
    def sharded(self) -> bool:
        return self.index_chain is not None

    @cached_property
    def per_object(self) -> tuple[int, ...]:
        """Chunks per stored object along each axis."""
        return tuple(g // c for g, c in zip(self.grid, self.inner, strict=True))

    @cached_property
    def n_objects(self) -> tuple[int, ...]:
        return tuple(math.ceil(s / g) for s, g in zip(self.shape, self.grid, strict=True))

    @property
    def shard_index_chain(self) -> Chain:
        """The codec chain of the shard index (an unsharded array has none)."""
        if self.index_chain is None:
            raise ValueError(f"array {self.path!r} is not sharded: it has no shard index")
        return self.index_chain

    @cached_property
    def index_nbytes(self) -> int:
        return 16 * int(np.prod(self.per_object)) + (4 if self.shard_index_chain.checksum else 0)

    def slot(self, chunk: tuple[int, ...]) -> int:
        """Position of ``chunk`` in its shard's index."""
        k = 0
        for c, p in zip(chunk, self.per_object, strict=True):
            k = k * p + c % p
        return k

    def object_key(self, obj: tuple[int, ...]) -> str:
        tail = self.separator.join(str(int(i)) for i in obj)
        return f"{self.path}/c{self.separator}{tail}" if obj else f"{self.path}/c"

    def objects(self) -> Iterator[tuple[int, ...]]:
        yield from np.ndindex(*self.n_objects)

    def chunk_in_bounds(self, chunk: tuple[int, ...]) -> bool:
        return all(c * n < s for c, n, s in zip(chunk, self.inner, self.shape, strict=True))

    def chunks_of(self, obj: tuple[int, ...]) -> list[tuple[int, ...]]:
        """The in-bounds chunks of an object, in the order of its shard index."""
        base = [o * p for o, p in zip(obj, self.per_object, strict=True)]
        out = []
        for local in np.ndindex(*self.per_object):
            chunk = tuple(b + i for b, i in zip(base, local, strict=True))
            if self.chunk_in_bounds(chunk):
                out.append(chunk)
        return out

    def where(self, chunk: tuple[int, ...], store: str = "") -> str:
        obj = tuple(c // p for c, p in zip(chunk, self.per_object, strict=True))
        inside = f" in shard {self.object_key(obj)}" if self.sharded else ""
        head = f"{store}: " if store else ""
        return f"{head}array {self.path!r} chunk {tuple(int(c) for c in chunk)}{inside}"

    def encode_chunk(self, chunk: np.ndarray) -> bytes:
        """Encode a chunk (padded to the chunk shape with the fill value when short)."""
        if self.dtype != object and chunk.dtype != self.dtype:
            chunk = chunk.astype(self.dtype)
        if chunk.shape != self.inner:
            padded = np.full(self.inner, self._fill(), dtype=self.dtype)
            padded[tuple(slice(0, n) for n in chunk.shape)] = chunk
            chunk = padded
        return self.chain.encode(chunk)

    def decode_chunk(self, raw: Any, chunk: tuple[int, ...], store: str = "",
                     out: np.ndarray | None = None) -> np.ndarray:  # fmt: skip
        return self.chain.decode(raw, self.inner, self.dtype,
                                 lambda: self.where(chunk, store), out)  # fmt: skip

    def _fill(self) -> Any:
        if self.dtype == object:
            return self.fill_value or ""
        if isinstance(self.fill_value, str):  # "NaN", "Infinity"
            return float(self.fill_value)
        return self.fill_value if self.fill_value is not None else 0

    def parse_index(self, raw: Any, key: str, store: str = "") -> np.ndarray:
        """The shard index of object ``key`` as an (n_chunks, 2) array of (offset, nbytes)."""
        n = int(np.prod(self.per_object))
        if len(raw) != self.index_nbytes:
            raise StoreIntegrityError(
                f"{store}: shard {key} of array {self.path!r} is truncated "
                f"({len(raw)} bytes where its index of {self.index_nbytes} bytes should be)"
            )
        where = f"{store}: shard index of {key} (array {self.path!r}; damaged or truncated shard)"
        index = self.shard_index_chain.decode(raw, (n, 2), np.dtype("<u8"), where)
        return np.asarray(index, dtype=np.uint64)

    def encode_shard(self, chunks: dict[tuple[int, ...], bytes]) -> bytes:
        """Concatenate encoded chunks of one shard and append (or prepend) its index."""
        n = int(np.prod(self.per_object))
        index = np.full((n, 2), EMPTY, dtype=np.uint64)
        lengths = [len(chunks[c]) for c in chunks]
        start = self.index_nbytes if not self.index_at_end else 0
        pieces = []
        offset = start
        for (chunk, data), length in zip(chunks.items(), lengths, strict=True):
            index[self.slot(chunk)] = (offset, length)
            pieces.append(data)
            offset += length
        raw_index = self.shard_index_chain.encode(index)
        body = b"".join(pieces)
        return body + raw_index if self.index_at_end else raw_index + body


def read_meta(io: StoreIO, path: str) -> ArrayMeta:
    return ArrayMeta.from_json(path, io.read_json(f"{path}/zarr.json"))


# -- reading --------------------------------------------------------------------------
def _axis_plan(idx: np.ndarray, step: int) -> list[tuple[int, Any, Any]]:
    """For each chunk along an axis: (chunk, output positions, positions in the chunk).

    Positions are slices where they run contiguously, else int arrays.
    """
    n = idx.size
    if n and idx[-1] - idx[0] == n - 1 and (n == 1 or bool((np.diff(idx) == 1).all())):
        a, b = int(idx[0]), int(idx[-1]) + 1
        out = []
        for c in range(a // step, (b - 1) // step + 1):
            lo, hi = max(a, c * step), min(b, (c + 1) * step)
            out.append((c, slice(lo - a, hi - a), slice(lo - c * step, hi - c * step)))
        return out
    cid = idx // step
    order = np.argsort(cid, kind="stable")
    uniq, starts = np.unique(cid[order], return_index=True)
    out = []
    for c, pos in zip(uniq.tolist(), np.split(order, starts[1:]), strict=True):
        local = idx[pos] - c * step
        out.append((int(c), _as_slice(pos), _as_slice(local)))
    return out


def _as_slice(pos: np.ndarray) -> Any:
    if (
        pos.size
        and pos[-1] - pos[0] == pos.size - 1
        and (pos.size == 1 or bool((np.diff(pos) == 1).all()))
    ):
        return slice(int(pos[0]), int(pos[-1]) + 1)
    return pos


def _place(out: np.ndarray, outs: tuple, chunk: np.ndarray, locs: tuple) -> None:
    if all(isinstance(s, slice) for s in outs + locs):
        out[outs] = chunk[locs]
        return
    src = np.ix_(*[np.arange(sl.start, sl.stop) if isinstance(sl, slice) else sl
                   for sl in locs])  # fmt: skip
    dst = np.ix_(*[np.arange(sl.start, sl.stop) if isinstance(sl, slice) else sl
                   for sl in outs])  # fmt: skip
    out[dst] = chunk[src]


_indexes: LRUCache[np.ndarray] = LRUCache(
    "zarr-shard-indexes", capacity=lambda: 64 * 2**20, cost=lambda a: int(a.nbytes) + 64
)


class ArrayReader:
    """Outer selections of one array of a store; every chunk checked, none filled in.

    Parameters
    ----------
    io : StoreIO
    meta : ArrayMeta
    cache_key : str, optional
        Identifies the write the store holds; shard indexes are cached under it.  None
        (a store being written) caches nothing.

    Examples
    --------
    >>> import tempfile, archs4x
    >>> ds = archs4x.open_dataset(archs4x.datasets.example_file())
    >>> out = archs4x.to_zarr(ds.isel(sample=slice(0, 8)), tempfile.mkdtemp() + "/x.zarr")
    >>> io = StoreIO(out)
    >>> r = ArrayReader(io, read_meta(io, "counts"))
    >>> bool((r.read(slice(None), [5, 1]) == ds.counts.values[:, [5, 1]]).all())
    True
    """

    def __init__(self, io: StoreIO, meta: ArrayMeta, cache_key: str | None = None) -> None:
        self.io = io
        self.meta = meta
        self.cache_key = cache_key
        self.stats = ReadStats()
        self._lock = threading.Lock()

    @property
    def shape(self) -> tuple[int, ...]:
        return self.meta.shape

    @property
    def dtype(self) -> np.dtype:
        return self.meta.dtype

    @property
    def chunks(self) -> tuple[int, ...]:
        return self.meta.inner

    def read(self, *selection: Any) -> np.ndarray:
        """``array[selection]`` with outer (orthogonal) indexing; 2-D results are F-ordered."""
        meta = self.meta
        if len(selection) != len(meta.shape):
            raise IndexError(f"{len(selection)} selections for a {len(meta.shape)}-D array")
        idx = [normalize_selection(s, n) for s, n in zip(selection, meta.shape, strict=True)]
        order: Literal["C", "F"] = "F" if len(idx) == 2 else "C"
        out = np.empty(tuple(i.size for i in idx), dtype=meta.dtype, order=order)
        if any(i.size == 0 for i in idx):
            return out
        plans = [_axis_plan(i, c) for i, c in zip(idx, meta.inner, strict=True)]
        by_object: dict[tuple[int, ...], list] = {}
        n_chunks = 0
        for combo in _product(plans):
            chunk = tuple(c for c, _, _ in combo)
            obj = tuple(c // p for c, p in zip(chunk, meta.per_object, strict=True))
            by_object.setdefault(obj, []).append(combo)
            n_chunks += 1
        with self._lock:
            self.stats.chunks += n_chunks
        work = list(by_object.items())
        if self.io.local:
            self._run(work, out)
        else:
            self._run_remote(work, out)
        return out

    # -- steps --------------------------------------------------------------------------
    def _run(self, work: list, out: np.ndarray) -> None:
        pool, threads = reader_pool()
        if len(work) == 1 or threads == 1 or len(work) < 2:
            for obj, combos in work:
                self._fill_object(obj, combos, out, None)
            return
        n_batches = min(len(work), 4 * threads)
        size = -(-len(work) // n_batches)
        batches = [work[i : i + size] for i in range(0, len(work), size)]

        def run(batch: list) -> None:
            for obj, combos in batch:
                self._fill_object(obj, combos, out, None)

        for _ in pool.map(run, batches):
            pass

    def _run_remote(self, work: list, out: np.ndarray) -> None:
        """URL stores: indexes, then every chunk, each in one batch of range requests."""
        meta = self.meta
        indexes = self._indexes_for([obj for obj, _ in work]) if meta.sharded else {}
        requests, slots = [], []
        for w, (obj, combos) in enumerate(work):
            key = meta.object_key(obj)
            for j, combo in enumerate(combos):
                a, b = self._range(obj, tuple(c for c, _, _ in combo), indexes.get(obj))
                requests.append((key, a, b))
                slots.append((w, j))
        try:
            blobs = self.io.read_many(requests)
        except FileNotFoundError as exc:
            raise StoreIntegrityError(
                f"{self.io.store}: an object of array {meta.path!r} is missing ({exc})"
            ) from exc
        fetched: dict[int, dict[int, bytes]] = {}
        for (key, a, b), (w, j), blob in zip(requests, slots, blobs, strict=True):
            if b is not None and len(blob) < b - a:
                raise StoreIntegrityError(
                    f"{self.io.store}: object {key} of array {meta.path!r} is truncated "
                    f"(bytes {a}-{b} requested, {len(blob)} read)"
                )
            fetched.setdefault(w, {})[j] = blob
        pool, _threads = reader_pool()

        def run(w: int) -> None:
            obj, combos = work[w]
            self._fill_object(obj, combos, out, fetched.get(w, {}))

        for _ in pool.map(run, range(len(work))):
            pass

    def _cached_index(self, key: str) -> np.ndarray | None:
        return _indexes.get((self.cache_key, self.io.store, key)) if self.cache_key else None

    def _keep_index(self, key: str, index: np.ndarray) -> None:
        if self.cache_key:
            _indexes.put((self.cache_key, self.io.store, key), index)

    def _indexes_for(self, objs: list[tuple[int, ...]]) -> dict[tuple[int, ...], np.ndarray]:
        """The shard indexes of ``objs``, the uncached ones fetched in one batch (URLs)."""
        meta = self.meta
        found: dict[tuple[int, ...], np.ndarray] = {}
        todo = []
        for o in objs:
            hit = self._cached_index(meta.object_key(o))
            if hit is None:
                todo.append(o)
            else:
                found[o] = hit
        n = meta.index_nbytes
        reqs = [(meta.object_key(o), -n, None) if meta.index_at_end else (meta.object_key(o), 0, n)
                for o in todo]  # fmt: skip
        try:
            raws = self.io.read_many(reqs)
        except FileNotFoundError as exc:
            raise StoreIntegrityError(f"{self.io.store}: a shard of array {meta.path!r} is "
                                      f"missing ({exc})") from exc  # fmt: skip
        for o, raw in zip(todo, raws, strict=True):
            key = meta.object_key(o)
            found[o] = meta.parse_index(raw, key, self.io.store)
            self._keep_index(key, found[o])
        return found

    def _range(self, obj: tuple[int, ...], chunk: tuple[int, ...],
               index: np.ndarray | None) -> tuple[int, int | None]:  # fmt: skip
        """Byte range of ``chunk`` inside its object (the whole object when unsharded)."""
        if not self.meta.sharded:
            return 0, None
        if index is None:
            raise ValueError(f"{self.meta.where(chunk, self.io.store)}: no shard index given")
        return self._shard_range(chunk, index)

    def _shard_range(self, chunk: tuple[int, ...], index: np.ndarray) -> tuple[int, int]:
        """Byte range of ``chunk`` inside its shard, from the shard's ``index``."""
        meta = self.meta
        offset, nbytes = index[meta.slot(chunk)].tolist()
        if offset == EMPTY and nbytes == EMPTY:
            raise StoreIntegrityError(
                f"{meta.where(chunk, self.io.store)}: the chunk is missing from its shard "
                "(a complete archs4x store holds every chunk)"
            )
        return offset, offset + nbytes

    def missing_message(self, key: str) -> str:
        what = "shard" if self.meta.sharded else "chunk"
        return (f"{self.io.store}: {what} {key} of array {self.meta.path!r} is missing "
                "(a complete archs4x store holds every chunk; it was deleted?)")  # fmt: skip

    def _local_blobs(self, key: str, obj: tuple[int, ...], chunks: list) -> list[Any]:
        """The bytes of ``chunks`` of one local object: one open, coalesced preads."""
        meta = self.meta
        try:
            fd = os.open(self.io.path(key), os.O_RDONLY)
        except FileNotFoundError:
            raise StoreIntegrityError(self.missing_message(key)) from None
        try:
            if not meta.sharded:
                size = os.fstat(fd).st_size
                return [os.pread(fd, size, 0)] * len(chunks)
            index = self._cached_index(key)
            if index is None:
                n = meta.index_nbytes
                if meta.index_at_end:
                    size = os.fstat(fd).st_size
                    raw = os.pread(fd, n, max(0, size - n)) if size >= n else os.pread(fd, size, 0)
                else:
                    raw = os.pread(fd, n, 0)
                index = meta.parse_index(raw, key, self.io.store)
                self._keep_index(key, index)
            ranges = [self._shard_range(c, index) for c in chunks]
            return self._coalesced(fd, key, ranges)
        finally:
            os.close(fd)

    def _coalesced(self, fd: int, key: str, ranges: list[tuple[int, int]]) -> list[Any]:
        """Read byte ranges of one object, merging neighbours into single reads."""
        order = sorted(range(len(ranges)), key=lambda i: ranges[i][0])
        spans: list[list] = []
        for i in order:
            a, b = ranges[i]
            if spans and a <= spans[-1][1] + MERGE_GAP:
                spans[-1][1] = max(spans[-1][1], b)
                spans[-1][2].append(i)
            else:
                spans.append([a, b, [i]])
        out: list[Any] = [None] * len(ranges)
        for a, b, members in spans:
            blob = os.pread(fd, b - a, a)
            if len(blob) < b - a:
                raise StoreIntegrityError(
                    f"{self.io.store}: shard {key} of array {self.meta.path!r} is truncated "
                    f"(bytes {a}-{b} requested, {len(blob)} read)"
                )
            view = memoryview(blob)
            for i in members:
                s, e = ranges[i]
                out[i] = view[s - a : e - a]
        return out

    def _fill_object(self, obj, combos: list, out: np.ndarray, fetched) -> None:
        meta = self.meta
        key = meta.object_key(obj)
        chunks = [tuple(c for c, _, _ in combo) for combo in combos]
        if fetched is not None:  # URL stores: fetched already
            blobs = [fetched[j] for j in range(len(combos))]
        else:
            blobs = self._local_blobs(key, obj, chunks)
        for chunk, combo, blob in zip(chunks, combos, blobs, strict=True):
            outs = tuple(o for _, o, _ in combo)
            locs = tuple(loc for _, _, loc in combo)
            target = self._direct_target(out, outs, locs)
            if target is not None:
                meta.decode_chunk(blob, chunk, self.io.store, out=target)
                if not isinstance(outs[1], slice):  # the same column again
                    for p in outs[1][1:]:
                        out[:, p] = target
                continue
            _place(out, outs, meta.decode_chunk(blob, chunk, self.io.store), locs)

    def _direct_target(self, out: np.ndarray, outs: tuple, locs: tuple) -> np.ndarray | None:
        """The column of ``out`` a one-column chunk decodes straight into, if any."""
        meta = self.meta
        if out.ndim != 2 or meta.inner[1] != 1 or meta.dtype == object:
            return None
        rows, rlocal = outs[0], locs[0]
        if not (isinstance(rows, slice) and isinstance(rlocal, slice)):
            return None
        if rlocal.start != 0 or rlocal.stop != meta.inner[0] or not out.flags.f_contiguous:
            return None
        cols = outs[1]
        first = cols.start if isinstance(cols, slice) else int(cols[0])
        if isinstance(cols, slice) and cols.stop - cols.start != 1:
            return None
        return out[rows, first]

    # -- whole objects (verification) ---------------------------------------------------
    def check_object(self, obj: tuple[int, ...], raw: bytes | None = None) -> list[str]:
        """Problems with one stored object: missing, truncated, or a chunk that fails.

        Checks checksums only (no decompression).  Returns messages, empty when sound.
        """
        meta = self.meta
        key = meta.object_key(obj)
        if raw is None:
            try:
                raw = self.io.read(key)
            except FileNotFoundError:
                return [self.missing_message(key)]
        problems = []
        if not meta.sharded:
            chunk = obj
            if meta.chain.checksum:
                problems += _crc_problem(memoryview(raw), meta.where(chunk, self.io.store))
            return problems
        n = meta.index_nbytes
        raw_index = raw[-n:] if meta.index_at_end else raw[:n]
        try:
            index = meta.parse_index(raw_index, key, self.io.store)
        except StoreIntegrityError as exc:
            return [str(exc)]
        view = memoryview(raw)
        for chunk in meta.chunks_of(obj):
            offset, nbytes = index[meta.slot(chunk)].tolist()
            where = meta.where(chunk, self.io.store)
            if offset == EMPTY and nbytes == EMPTY:
                problems.append(f"{where}: missing from its shard")
            elif offset + nbytes > len(raw):
                problems.append(f"{where}: beyond the end of the shard (truncated)")
            elif meta.chain.checksum:
                problems += _crc_problem(view[offset : offset + nbytes], where)
        return problems


def _crc_problem(view: memoryview, where: str) -> list[str]:
    if len(view) < 4:
        return [f"{where}: {len(view)} bytes, too short for its checksum"]
    stored = int.from_bytes(view[-4:], "little")
    computed = crc32c(view[:-4])
    if stored != computed:
        return [f"{where}: checksum mismatch (stored {stored:#010x}, computed {computed:#010x})"]
    return []


def _product(plans: list[list]) -> Iterator[tuple]:
    if len(plans) == 1:
        for item in plans[0]:
            yield (item,)
        return
    if len(plans) == 2:
        for a in plans[0]:
            for b in plans[1]:
                yield (a, b)
        return
    if not plans:
        yield ()
        return
    for head in plans[0]:
        for tail in _product(plans[1:]):
            yield (head, *tail)


# -- complete stores as sources -------------------------------------------------------
def read_root(io: StoreIO) -> dict:
    """The root ``zarr.json`` of a store (FileNotFoundError when there is none)."""
    return io.read_json(ROOT)


def read_state(store: str, storage_options: dict | None = None) -> dict:
    """The archs4x state record of a store (empty when archs4x did not write it)."""
    root = read_root(StoreIO(store, storage_options))
    return dict((root.get("attributes") or {}).get(STATE) or {})


_seen: LRUCache[tuple] = LRUCache("zarr-root-stats", capacity=lambda: 1024)


class ZarrCountsReader(ArrayReader):
    """Outer selections of a complete store's ``counts``; checks the store first."""

    def __init__(self, store: ZarrStore) -> None:
        io = StoreIO(store.store, store.storage_options)
        super().__init__(io, store.meta(COUNTS_ARRAY), cache_key=store.cache_key)
        self.source = store

    def read(self, rows: Any, cols: Any) -> np.ndarray:  # type: ignore[override]
        """``counts[rows, cols]`` (outer indexing), F-ordered.

        Raises
        ------
        FileChangedError
            The store was rewritten since it was opened.
        StoreIntegrityError
            A chunk needed is missing or fails its checksum.
        """
        self.source.check()
        return super().read(rows, cols)


_readers: LRUCache[ZarrCountsReader] = LRUCache("zarr-readers", capacity=lambda: 64)
_metas: LRUCache[ArrayMeta] = LRUCache("zarr-array-meta", capacity=lambda: 4096)


@dataclass(frozen=True)
class ZarrStore:
    """A complete archs4x store, pinned to the write it was opened on.

    ``fingerprint`` identifies the conversion (the same data and options give the same
    fingerprint); ``write_id`` this write of it.  Caches are keyed by both.
    """

    store: str
    options: str  # JSON of the storage options
    fingerprint: str
    write_id: str = ""

    @property
    def name(self) -> str:
        return self.store

    @property
    def cache_key(self) -> str:
        return f"{self.fingerprint}-{self.write_id}"

    @property
    def storage_options(self) -> dict | None:
        return json.loads(self.options) or None

    def io(self) -> StoreIO:
        return StoreIO(self.store, self.storage_options)

    def check(self) -> None:
        """Raise FileChangedError if the store was rewritten (or lost) since it was opened."""
        io = self.io()
        stamp = None
        if io.local:
            try:
                st = os.stat(io.path(ROOT))
            except FileNotFoundError:
                raise FileChangedError(f"{self.store} was deleted after it was opened") from None
            stamp = (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
            if _seen.get(self) == stamp:
                return
        try:
            state = dict((read_root(io).get("attributes") or {}).get(STATE) or {})
        except (OSError, ValueError) as exc:
            raise FileChangedError(f"{self.store} cannot be read any more: {exc}") from exc
        same = (state.get("fingerprint"), state.get("write_id", "")) == (self.fingerprint,
                                                                         self.write_id)  # fmt: skip
        if not same or not state.get("complete"):
            raise FileChangedError(
                f"{self.store} was rewritten after it was opened (another conversion or a "
                "conversion in progress); open it again"
            )
        if stamp is not None:
            _seen.discard(lambda k: k == self)
            _seen.put(self, stamp)

    def meta(self, path: str) -> ArrayMeta:
        key = (self.cache_key, self.store, path)
        return _metas.get_or_make(key, lambda: read_meta(self.io(), path))

    def counts_reader(self) -> ZarrCountsReader:
        return _readers.get_or_make((os.getpid(), self), lambda: ZarrCountsReader(self))

    def reader(self, path: str) -> ArrayReader:
        return ArrayReader(self.io(), self.meta(path), cache_key=self.cache_key)

    def __str__(self) -> str:
        return self.store
