"""A table of every chunk of a dataset: byte offset, stored size and filter mask.

:class:`~archs4x.storage.btree.ChunkBTree` finds the chunks a read needs by walking the
dataset's B-tree, which costs about one node per chunk for scattered (random) samples.
A :class:`ChunkTable` answers in one array lookup.  Where it comes from:

* small files (up to :data:`SMALL_FILE_CHUNKS` chunks) get one in memory at their first
  read: walking their whole tree takes milliseconds;
* large files get one only when asked, with :func:`build_chunk_table` (or
  ``archs4x index FILE``): the whole tree is walked once (under a minute for the 34
  million chunks of a real ARCHS4 file, with progress) and the table is kept on disk,
  keyed by the file's identity, memory-mapped by every later process;
* files whose chunk index is not a version-1 B-tree are listed with HDF5's
  ``chunk_iter`` instead, and that list is kept on disk the same way.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np

from .._options import cache_dir

__all__ = [
    "SMALL_FILE_CHUNKS",
    "ChunkTable",
    "load_table",
    "table_from_btree",
    "table_from_chunk_iter",
    "table_path",
]

TABLE_DTYPE = np.dtype([("offset", "<i8"), ("size", "<u4"), ("mask", "<u4")])
#: Files with at most this many chunks get their table in memory at the first read.
SMALL_FILE_CHUNKS = 4_000_000
_FORMAT = 3


class ChunkTable:
    """``table[row_chunk, col_chunk]`` = (byte offset, stored size, filter mask).

    An offset of -1 marks a chunk that was never written (it reads as the fill value).

    Examples
    --------
    >>> t = np.zeros((1, 2), TABLE_DTYPE); t["offset"] = [[-1, 800]]; t["size"] = [[0, 12]]
    >>> ChunkTable(t).locate([[0, 1], [0, 0]])[0].tolist()
    [800, -1]
    """

    def __init__(self, table: np.ndarray) -> None:
        self.table = table

    def locate(self, coords: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        coords = np.asarray(coords, dtype=np.int64).reshape(-1, 2)
        entries = self.table[coords[:, 0], coords[:, 1]]
        return entries["offset"], entries["size"], entries["mask"]


def _empty(grid: tuple[int, int], out: np.ndarray | None = None) -> np.ndarray:
    table = np.empty(grid, dtype=TABLE_DTYPE) if out is None else out
    table["offset"] = -1
    table["size"] = 0
    table["mask"] = 0
    return table


def table_from_btree(tree, *, out: np.ndarray | None = None,
                     progress: Callable[[int, int], None] | None = None) -> np.ndarray:  # fmt: skip
    """Walk the whole B-tree of ``tree`` (a :class:`ChunkBTree`) into a table."""
    table = _empty(tree.grid, out)
    flat = table.reshape(-1)

    def emit(keys, offsets, sizes, masks):
        flat["offset"][keys] = offsets
        flat["size"][keys] = sizes
        flat["mask"][keys] = masks

    tree.walk_all(emit, progress=progress)
    return table


def table_from_chunk_iter(dset: h5py.Dataset) -> np.ndarray:
    """List every chunk of ``dset`` with HDF5's ``chunk_iter`` (any chunk index)."""
    cr, cc = (int(c) for c in dset.chunks)
    table = _empty((-(-dset.shape[0] // cr), -(-dset.shape[1] // cc)))
    offsets, sizes, masks = table["offset"], table["size"], table["mask"]

    def visit(info) -> None:
        r, c = info.chunk_offset
        key = (r // cr, c // cc)
        offsets[key] = info.byte_offset
        sizes[key] = info.size
        masks[key] = info.filter_mask

    dset.id.chunk_iter(visit)
    return table


def table_path(cache_key: str, name: str) -> Path:
    """Where the table of dataset ``name`` of the file version ``cache_key`` is kept."""
    folder = cache_dir() / "chunktable"
    return folder / f"{cache_key}-{name.strip('/').replace('/', '%')}-v{_FORMAT}.npy"


def load_table(cache_key: str, name: str) -> ChunkTable | None:
    """The table kept on disk for this file version, memory-mapped, or None."""
    target = table_path(cache_key, name)
    if not target.exists():
        return None
    try:
        return ChunkTable(np.load(target, mmap_mode="r"))
    except (OSError, ValueError):  # damaged: make it again when asked
        target.unlink(missing_ok=True)
        return None


def _remove_orphans(folder: Path) -> None:
    """Delete temporary tables left by processes that died while building them."""
    for tmp in folder.glob(".*.tmp"):
        parts = tmp.name.split(".")  # ".<table>.<pid>.<random>.tmp" (see save_table)
        pid = int(parts[-3]) if len(parts) >= 4 and parts[-3].isdigit() else None
        if pid is None or pid == os.getpid():
            continue
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            tmp.unlink(missing_ok=True)
        except PermissionError:
            pass


def save_table(cache_key: str, name: str, make: Callable[[np.ndarray], np.ndarray],
               grid: tuple[int, int]) -> ChunkTable:  # fmt: skip
    """Build a table straight into a memory-mapped temporary file, then rename it."""
    target = table_path(cache_key, name)
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_orphans(target.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.{os.getpid()}.", suffix=".tmp",
                               dir=target.parent)  # fmt: skip
    os.close(fd)
    try:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=TABLE_DTYPE, shape=grid)
        make(out)
        out.flush()
        del out
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    loaded = load_table(cache_key, name)
    assert loaded is not None
    return loaded
