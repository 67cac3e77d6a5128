"""Where the chunks of an HDF5 dataset are: its version-1 chunk B-tree, read by archs4x.

HDF5 finds a chunk through the dataset's B-tree, one serialised call per chunk; on a
file with the real ARCHS4 structure (34 million chunks) that costs ~100 µs a chunk.
:class:`ChunkBTree` reads the tree's nodes itself, through any byte fetcher (``os.pread``
for local files, HTTP/S3 range requests for remote ones), and walks it *only along the
paths to the chunks a read needs*: one batch of node fetches per tree level, each level
searched with one vectorised ``searchsorted``.  Parsed nodes are kept in a bounded cache
(the ``btree_cache_bytes`` option), so repeated reads cost nothing to locate.  No
one-time index is built: the first read of any selection is as fast as later ones.

Chunks that were never written are absent from the tree and read as the fill value.
Files whose chunk index is not a version-1 B-tree raise :class:`UnsupportedLayout`;
callers then list the chunks with HDF5's ``chunk_iter`` (:mod:`archs4x.storage.chunklist`).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from .._options import OPTIONS
from ..errors import ChunkReadError
from .caches import LRUCache

__all__ = ["ChunkBTree", "Fetch", "UnsupportedLayout", "btree_root"]

#: ``fetch([(start, stop), ...]) -> [bytes, ...]``: read byte ranges of the file.
Fetch = Callable[[Sequence[tuple[int, int]]], list[bytes]]

_HEADER = 24  # "TREE", type, level, entries used, left and right sibling addresses


class UnsupportedLayout(Exception):
    """The dataset's chunk index is not a version-1 B-tree (or cannot be parsed)."""


# -- finding the root ---------------------------------------------------------------
def _v1_messages(body: bytes):
    pos = 0
    while pos + 8 <= len(body):
        mtype, size = struct.unpack_from("<HH", body, pos)
        yield mtype, body[pos + 8 : pos + 8 + size]
        pos += 8 + size


def _v2_messages(body: bytes, flags: int):
    pos = 0
    extra = 2 if flags & 0x04 else 0  # creation order
    while pos + 4 + extra <= len(body):
        mtype = body[pos]
        size = struct.unpack_from("<H", body, pos + 1)[0]
        pos += 4 + extra
        yield mtype, body[pos : pos + size]
        pos += size


def _layout_message(fetch: Fetch, addr: int, file_size: int) -> bytes:
    """The body of the data layout message (type 8) of the object header at ``addr``."""

    def read(start: int, length: int) -> bytes:
        stop = min(start + length, file_size)
        return fetch([(start, stop)])[0] if stop > start else b""

    blocks: list[tuple[int, int | None]] = [(addr, None)]
    flags = 0
    seen = 0
    while blocks:
        seen += 1
        if seen > 64:
            raise UnsupportedLayout("object header continuation chain too long")
        start, length = blocks.pop(0)
        head = read(start, length or 4096)
        if length is None and head[:4] == b"OHDR":  # version 2 object header
            flags = head[5]
            pos = 6 + (16 if flags & 0x20 else 0) + (4 if flags & 0x10 else 0)
            width = 1 << (flags & 3)
            size = int.from_bytes(head[pos : pos + width], "little")
            pos += width
            body = read(start + pos, size)
            messages = _v2_messages(body, flags)
        elif length is None:  # version 1 object header
            if not head or head[0] != 1:
                raise UnsupportedLayout(f"object header version {head[:1]!r} at byte {addr}")
            size = struct.unpack_from("<I", head, 8)[0]
            messages = _v1_messages(read(start + 16, size))
        elif head[:4] == b"OCHK":
            messages = _v2_messages(head[4 : length - 4], flags)
        else:
            messages = _v1_messages(head[:length])
        for mtype, data in messages:
            if mtype == 8:
                return data
            if mtype == 0x10:  # continuation block
                blocks.append(struct.unpack_from("<QQ", data, 0))
    raise UnsupportedLayout("no data layout message")


def btree_root(fetch: Fetch, header_address: int, file_size: int) -> int:
    """The address of the chunk B-tree's root, from the dataset's layout message.

    Raises
    ------
    UnsupportedLayout
        The dataset is not chunked, or indexes its chunks another way (layout message
        version 4: extensible or fixed arrays, version-2 B-trees).
    """
    try:
        msg = _layout_message(fetch, header_address, file_size)
    except (struct.error, IndexError) as exc:
        raise UnsupportedLayout(f"cannot parse the object header: {exc}") from exc
    version = msg[0]
    if version == 3:
        if msg[1] != 2:
            raise UnsupportedLayout("the dataset is not chunked")
        return struct.unpack_from("<Q", msg, 3)[0]
    if version in (1, 2):
        if msg[2] != 2:
            raise UnsupportedLayout("the dataset is not chunked")
        return struct.unpack_from("<Q", msg, 8)[0]
    raise UnsupportedLayout(f"layout message version {version} (chunks not in a v1 B-tree)")


# -- the tree -----------------------------------------------------------------------
@dataclass(frozen=True)
class _Node:
    level: int
    keys: np.ndarray  # int64 linear chunk index of each child's first chunk
    child: np.ndarray  # int64: child node address, or (leaves) the chunk's byte offset
    size: np.ndarray  # uint32: stored size of the chunk (leaves)
    mask: np.ndarray  # uint32: filter mask of the chunk (leaves)

    @property
    def nbytes(self) -> int:
        return 200 + self.keys.nbytes + self.child.nbytes + self.size.nbytes + self.mask.nbytes


_nodes: LRUCache[_Node] = LRUCache(
    "btree-nodes", capacity=lambda: OPTIONS["btree_cache_bytes"], cost=lambda n: n.nbytes
)


class ChunkBTree:
    """Locate the chunks of a chunked 2-D dataset through its version-1 B-tree.

    Parameters
    ----------
    fetch : callable
        ``fetch([(start, stop), ...])`` returns those byte ranges of the file.
    root : int
        Address of the root node (:func:`btree_root`).
    shape, chunks : (int, int)
        The dataset's shape and chunk shape.
    istore_k : int, default 32
        The file's "istore K" (nodes hold up to ``2 K`` children).  HDF5's default;
        a file made with a larger one raises :class:`UnsupportedLayout` at the first
        larger node (callers then list the chunks instead).
    cache_key : str
        Identifies this file version in the shared node cache.
    name : str
        For error messages.

    Examples
    --------
    >>> import os, h5py, numpy as np
    >>> from archs4x.datasets import example_file
    >>> path = str(example_file())
    >>> with h5py.File(path) as f:
    ...     dset = f["data/expression"]
    ...     address = f.id.links.get_info(b"data/expression").u
    ...     info = dset.id.get_chunk_info_by_coord((2000, 7))
    ...     shape, chunks = dset.shape, dset.chunks
    >>> fd = os.open(path, os.O_RDONLY)
    >>> fetch = lambda ranges: [os.pread(fd, b - a, a) for a, b in ranges]
    >>> root = btree_root(fetch, address, os.path.getsize(path))
    >>> tree = ChunkBTree(fetch, root, shape, chunks, "doc", "example")
    >>> offset, size, mask = tree.locate(np.array([[1, 7]]))
    >>> (int(offset[0]), int(size[0])) == (info.byte_offset, info.size)
    True
    >>> os.close(fd)
    """

    def __init__(
        self,
        fetch: Fetch,
        root: int,
        shape: tuple[int, int],
        chunks: tuple[int, int],
        cache_key: str,
        name: str,
        istore_k: int = 32,
    ) -> None:
        self.fetch = fetch
        self.root = int(root)
        self.shape = tuple(int(s) for s in shape)
        self.chunks = tuple(int(c) for c in chunks)
        self.grid = tuple(-(-s // c) for s, c in zip(self.shape, self.chunks, strict=True))
        self.cache_key = cache_key
        self.name = name
        self.max_entries = 2 * int(istore_k)
        ndims = len(self.shape) + 1  # chunk offsets carry one extra (element) dimension
        self._entry = np.dtype(
            [("size", "<u4"), ("mask", "<u4")]
            + [(f"o{i}", "<u8") for i in range(ndims)]
            + [("child", "<u8")]
        )
        self._key_size = 8 + 8 * ndims
        self.node_bytes = _HEADER + self.max_entries * self._entry.itemsize + self._key_size
        self.nodes_fetched = 0

    # -- nodes ------------------------------------------------------------------------
    def _parse_flat(self, addrs: Sequence[int], raws: Sequence[bytes]):
        """Parse fetched nodes with one vectorised view over all of them.

        Returns ``(levels, bounds, keys, child, size, mask)``: node ``n``'s entries are
        ``[bounds[n], bounds[n + 1])`` of the flat entry arrays.
        """
        size = self.node_bytes
        buf = b"".join(raw[:size].ljust(size, b"\0") for raw in raws)
        node_dtype = np.dtype([("sig", "S4"), ("type", "u1"), ("level", "u1"), ("used", "<u2"),
                               ("left", "<u8"), ("right", "<u8"),
                               ("e", self._entry, (self.max_entries,)),
                               ("last", "V", self._key_size)])  # fmt: skip
        nodes = np.frombuffer(buf, dtype=node_dtype, count=len(raws))
        used = nodes["used"].astype(np.int64)
        bad = (nodes["sig"] != b"TREE") | (nodes["type"] != 1) | (used > self.max_entries)
        if bad.any():
            n = int(np.flatnonzero(bad)[0])
            if nodes["sig"][n] == b"TREE" and used[n] > self.max_entries:
                raise UnsupportedLayout(f"B-tree nodes hold more than {self.max_entries} entries")
            raise ChunkReadError(
                f"{self.name}: no chunk B-tree node at byte {addrs[n]} (the file is damaged, "
                "or changed while it was read)"
            )
        e = nodes["e"]
        valid = np.arange(self.max_entries)[None, :] < used[:, None]
        e = e[valid]
        cr, cc = self.chunks
        keys = (e["o0"].astype(np.int64) // cr) * self.grid[1] + e["o1"].astype(np.int64) // cc
        bounds = np.concatenate([[0], np.cumsum(used)])
        return (nodes["level"].astype(np.int64), bounds, keys, e["child"].astype(np.int64),
                e["size"], e["mask"])  # fmt: skip

    def _parse_many(self, addrs: Sequence[int], raws: Sequence[bytes]) -> list[_Node]:
        levels, bounds, keys, child, size, mask = self._parse_flat(addrs, raws)
        b = bounds.tolist()
        lv = levels.tolist()
        return [
            _Node(
                lv[n],
                keys[b[n] : b[n + 1]],
                child[b[n] : b[n + 1]],
                size[b[n] : b[n + 1]],
                mask[b[n] : b[n + 1]],
            )
            for n in range(len(lv))
        ]

    def walk_all(self, emit: Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], None],
                 progress: Callable[[int, int], None] | None = None,
                 batch: int = 32_768) -> None:  # fmt: skip
        """Visit every chunk: ``emit(linear keys, offsets, sizes, masks)`` per batch of leaves.

        Reads the whole tree level by level (no node is cached); memory is bounded by
        ``batch`` nodes.  ``progress(leaves done, leaves)`` is called at the leaf level.
        """
        level_addrs = np.array([self.root], dtype=np.int64)
        while level_addrs.size:
            next_addrs = []
            leaf_level = None
            for start in range(0, level_addrs.size, batch):
                part = level_addrs[start : start + batch].tolist()
                raws = self.fetch([(a, a + self.node_bytes) for a in part])
                self.nodes_fetched += len(part)
                levels, _, keys, child, size, mask = self._parse_flat(part, raws)
                if leaf_level is None:
                    leaf_level = bool((levels == 0).all())
                if leaf_level:
                    emit(keys, child, size, mask)
                    if progress is not None:
                        progress(min(start + batch, level_addrs.size), level_addrs.size)
                else:
                    next_addrs.append(child)
            if leaf_level:
                return
            level_addrs = np.concatenate(next_addrs) if next_addrs else np.zeros(0, np.int64)

    def _nodes(self, addrs: np.ndarray) -> list[_Node]:
        wanted = addrs.tolist()
        out: list[_Node | None] = [_nodes.get((self.cache_key, a)) for a in wanted]
        missing = [a for a, n in zip(wanted, out, strict=True) if n is None]
        if not missing:
            return out  # type: ignore[return-value]
        raws = self.fetch([(a, a + self.node_bytes) for a in missing])
        self.nodes_fetched += len(missing)
        parsed = dict(zip(missing, self._parse_many(missing, raws), strict=True))
        _nodes.put_many(((self.cache_key, a), node) for a, node in parsed.items())
        return [parsed[a] if n is None else n for a, n in zip(wanted, out, strict=True)]

    # -- lookups ----------------------------------------------------------------------
    def locate(self, coords: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Byte offset, stored size and filter mask of chunks given by grid coordinates.

        Parameters
        ----------
        coords : (n, 2) int array
            ``(row chunk, column chunk)`` of each wanted chunk, any order.

        Returns
        -------
        offsets, sizes, masks : arrays of length n
            ``offsets`` is -1 for a chunk that was never written (it reads as the fill
            value).
        """
        coords = np.asarray(coords, dtype=np.int64).reshape(-1, 2)
        wanted = coords[:, 0] * self.grid[1] + coords[:, 1]
        uniq, inverse = np.unique(wanted, return_inverse=True)
        offsets = np.full(uniq.size, -1, dtype=np.int64)
        sizes = np.zeros(uniq.size, dtype=np.uint32)
        masks = np.zeros(uniq.size, dtype=np.uint32)
        todo = np.arange(uniq.size)
        node_of = np.full(uniq.size, self.root, dtype=np.int64)
        depth = 0
        while todo.size:
            depth += 1
            if depth > 64:
                raise ChunkReadError(f"{self.name}: the chunk B-tree is too deep (damaged?)")
            addrs = node_of[todo]
            # ``uniq`` is sorted and children partition the key space in order, so the
            # wanted chunks of one node are a contiguous run of ``todo``
            starts = np.flatnonzero(np.r_[True, addrs[1:] != addrs[:-1]])
            nodes = self._nodes(addrs[starts])
            levels = {n.level for n in nodes}
            if len(levels) != 1:
                raise ChunkReadError(f"{self.name}: the chunk B-tree is unbalanced (damaged?)")
            keys = np.concatenate([n.keys for n in nodes])
            child = np.concatenate([n.child for n in nodes])
            # the first key of each node is <= every chunk routed to it, so one search
            # over the concatenated (sorted) keys stays inside the right node
            first = np.cumsum([0] + [n.keys.size for n in nodes])[:-1]
            node_index = np.repeat(np.arange(len(nodes)), np.diff(np.r_[starts, todo.size]))
            pos = np.searchsorted(keys, uniq[todo], side="right") - 1
            inside = pos >= first[node_index]
            if levels == {0}:
                size = np.concatenate([n.size for n in nodes])
                mask = np.concatenate([n.mask for n in nodes])
                safe = np.maximum(pos, 0)
                hit = inside & (keys[safe] == uniq[todo])
                found = todo[hit]
                offsets[found] = child[pos[hit]]
                sizes[found] = size[pos[hit]]
                masks[found] = mask[pos[hit]]
                break
            todo = todo[inside]
            node_of[todo] = child[pos[inside]]
        return offsets[inverse], sizes[inverse], masks[inverse]
