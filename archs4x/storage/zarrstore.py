"""archs4x Zarr stores: where things are, and reading their counts by position.

A store written by :func:`archs4x.to_zarr` is a Zarr v3 group holding ``counts``, every
coordinate, and a state record in the root attributes (:data:`STATE`: layout, chunks,
the conversion's fingerprint, completion).  :class:`ZarrStore` is the source of a
complete store, in the sense of :mod:`archs4x.storage.sources`: small, picklable, pinned
to the fingerprint it was opened with (a store rewritten since raises
:class:`~archs4x.errors.FileChangedError`), with a per-process counts reader.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np
import zarr

from ..errors import FileChangedError
from .caches import LRUCache
from .reader import ReadStats, normalize_selection

__all__ = [
    "COUNTS_ARRAY",
    "PROGRESS",
    "STATE",
    "TMP",
    "ZarrStore",
    "check_storage_options",
    "is_url",
    "open_array",
    "open_group",
    "read_state",
    "store_name",
]

STATE = "archs4x_zarr"
PROGRESS = "archs4x_progress"
TMP = "archs4x_tmp"
COUNTS_ARRAY = "counts"


def store_name(store: Any) -> str:
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


def open_group(store: str, mode: str, storage_options: dict | None):
    return zarr.open_group(
        store=store, mode=mode, zarr_format=3, **check_storage_options(storage_options, store)
    )


def open_array(store: str, path: str, storage_options: dict | None, mode: str = "r+"):
    return zarr.open_array(
        store=store, path=path, mode=mode, **check_storage_options(storage_options, store)
    )


def read_state(store: str, storage_options: dict | None) -> dict:
    """The archs4x state record of a store (empty when archs4x did not write it)."""
    root = open_group(store, "r", storage_options)
    return dict(root.attrs.get(STATE) or {})


def _read_by_chunk_runs(arr, key: tuple, axis: int, max_run: int = 64) -> np.ndarray:
    """``arr.oindex[key]`` for an index array on ``axis``, read as runs of whole chunks.

    zarr's own integer-array indexing copies element by element; slicing runs of the
    touched chunks and picking the columns with NumPy is many times faster.
    """
    idx = key[axis].astype(np.int64)
    n = arr.shape[axis]
    idx = np.where(idx < 0, idx + n, idx)
    step = arr.chunks[axis]
    chunk_ids = np.unique(idx // step)
    runs = np.split(chunk_ids, np.flatnonzero(np.diff(chunk_ids) != 1) + 1)
    pieces, starts = [], []
    for run in runs:
        for part in np.array_split(run, -(-run.size // max_run)):
            lo, hi = int(part[0]) * step, min(n, (int(part[-1]) + 1) * step)
            sub = list(key)
            sub[axis] = slice(lo, hi)
            pieces.append(np.asarray(arr.oindex[tuple(sub)]))
            starts.append(lo)
    # map each wanted position to (piece, offset)
    starts_arr = np.asarray(starts)
    which = np.searchsorted(starts_arr, idx, side="right") - 1
    out_axis = axis - sum(isinstance(k, int) for k in key[:axis])
    shape = list(pieces[0].shape)
    shape[out_axis] = idx.size
    out = np.empty(shape, dtype=pieces[0].dtype)
    for j, piece in enumerate(pieces):
        sel = np.flatnonzero(which == j)
        if sel.size:
            src = [slice(None)] * piece.ndim
            dst = [slice(None)] * piece.ndim
            src[out_axis] = idx[sel] - starts[j]
            dst[out_axis] = sel
            out[tuple(dst)] = piece[tuple(src)]
    return out


class ZarrCountsReader:
    """Read outer selections of a store's ``counts``, a run of whole chunks at a time."""

    def __init__(self, store: ZarrStore) -> None:
        self.store = store
        self.array = open_array(store.store, COUNTS_ARRAY, store.storage_options, "r")
        self.shape = tuple(int(s) for s in self.array.shape)
        dtype = self.array.dtype
        self.dtype = np.dtype(dtype.to_native_dtype() if hasattr(dtype, "to_native_dtype")
                              else dtype)  # fmt: skip
        self.chunks = tuple(int(c) for c in self.array.chunks)
        self.stats = ReadStats()
        self._lock = threading.Lock()

    def read(self, rows: Any, cols: Any) -> np.ndarray:
        self.store.check()
        r = normalize_selection(rows, self.shape[0])
        c = normalize_selection(cols, self.shape[1])
        key = (_compact(r), _compact(c))
        n = len(np.unique(r // self.chunks[0])) * len(np.unique(c // self.chunks[1]))
        with self._lock:
            self.stats.chunks += n
        for axis in (1, 0):
            if isinstance(key[axis], np.ndarray):
                return _read_by_chunk_runs(self.array, key, axis)
        return np.asarray(self.array.oindex[key])


def _compact(idx: np.ndarray) -> slice | np.ndarray:
    if (
        idx.size
        and idx[-1] - idx[0] == idx.size - 1
        and (idx.size == 1 or (np.diff(idx) == 1).all())
    ):
        return slice(int(idx[0]), int(idx[-1]) + 1)
    return idx


_readers: LRUCache[ZarrCountsReader] = LRUCache("zarr-readers", capacity=lambda: 64)


@dataclass(frozen=True)
class ZarrStore:
    """A complete archs4x Zarr store, pinned to the fingerprint it was opened with."""

    store: str
    options: str  # JSON of the storage options
    fingerprint: str

    @property
    def name(self) -> str:
        return self.store

    @property
    def cache_key(self) -> str:
        return self.fingerprint

    @property
    def storage_options(self) -> dict | None:
        return json.loads(self.options) or None

    def check(self) -> None:
        try:
            state = read_state(self.store, self.storage_options)
        except Exception as exc:
            raise FileChangedError(f"{self.store} cannot be read any more: {exc}") from exc
        if state.get("fingerprint") != self.fingerprint or not state.get("complete"):
            raise FileChangedError(
                f"{self.store} was rewritten after it was opened (another conversion); "
                "open it again"
            )

    def counts_reader(self) -> ZarrCountsReader:
        key = (os.getpid(), self)
        return _readers.get_or_make(key, lambda: ZarrCountsReader(self))

    def __str__(self) -> str:
        return self.store
