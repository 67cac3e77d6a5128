"""Nearest neighbours of embedded samples: exact where the embedding is small, faiss HNSW above.

:class:`NeighbourIndex` answers ``search(queries, k)`` with Euclidean or cosine distances.
Up to ``exact_below`` vectors (default 50,000) it searches exactly (NumPy, in blocks of the
database, distances recomputed from the differences); above, it builds a faiss
``IndexHNSWFlat`` (hierarchical navigable small-world graph; M=32, efConstruction=200,
efSearch=512 by default: recall@20 of 0.95 at 2.6 ms a query on 1,000,000 random 50-d
vectors, the hardest case, where efSearch=256 gave only 0.88;
``benchmarks/bench_embedding.py``).  faiss was chosen over hnswlib and pynndescent by that
benchmark (README, *Find similar samples*).  Cosine search is inner-product search of
unit vectors.  An HNSW graph is saved in the Zarr store of the embedding it was built for
(``faiss.serialize_index``, a uint8 array named by metric and the embedding's fingerprint,
its options as attributes).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np

__all__ = ["EXACT_BELOW", "INDEX_GROUP", "METRICS", "NeighbourIndex", "exact_search"]

Metric = Literal["euclidean", "cosine"]
METRICS: tuple[Metric, ...] = ("euclidean", "cosine")
#: Below this many vectors, search is exact.
EXACT_BELOW = 50_000
_BLOCK = 65_536
#: The Zarr group of an embedding's store that holds its HNSW graphs.
INDEX_GROUP = "neighbours"


def _check_metric(metric: str) -> Metric:
    """``metric``, checked to be one of :data:`METRICS` (ValueError otherwise)."""
    for known in METRICS:
        if metric == known:
            return known
    raise ValueError(f"unsupported metric {metric!r}: choose one of {METRICS}")


def _unit(x: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norm > 0, norm, 1.0)


def exact_search(
    vectors: np.ndarray, queries: np.ndarray, k: int, metric: str = "euclidean"
) -> tuple[np.ndarray, np.ndarray]:
    """The exact ``k`` nearest ``vectors`` of each query: (distances, indices), nearest first.

    Euclidean distance, or cosine distance ``1 - cos``.  Ties are broken by index.

    Examples
    --------
    >>> v = np.array([[0.0, 0.0], [1.0, 0.0], [3.0, 4.0]])
    >>> d, i = exact_search(v, np.array([[0.9, 0.0]]), 2)
    >>> i.tolist(), d.round(3).tolist()
    ([[1, 0]], [[0.1, 0.9]])
    """
    _check_metric(metric)
    vectors = np.asarray(vectors, dtype=np.float64)
    queries = np.atleast_2d(np.asarray(queries, dtype=np.float64))
    n = vectors.shape[0]
    if not 1 <= k <= n:
        raise ValueError(f"k={k} must be between 1 and the number of vectors ({n})")
    if metric == "cosine":
        vectors, queries = _unit(vectors), _unit(queries)
    best_d = np.full((queries.shape[0], 0), np.inf)
    best_i = np.zeros((queries.shape[0], 0), dtype=np.int64)
    for start in range(0, n, _BLOCK):
        part = vectors[start : start + _BLOCK]
        if metric == "cosine":
            d = 1.0 - queries @ part.T
        else:
            d = (part * part).sum(1)[None, :] - 2 * queries @ part.T + (queries**2).sum(1)[:, None]
        take = min(k, part.shape[0])
        idx = np.argpartition(d, take - 1, axis=1)[:, :take] if take < part.shape[0] else (
            np.broadcast_to(np.arange(part.shape[0]), d.shape))  # fmt: skip
        cand_i = np.concatenate([best_i, idx + start], axis=1)
        cand_d = np.concatenate([best_d, np.take_along_axis(d, idx, 1)], axis=1)
        order = np.lexsort((cand_i, cand_d), axis=1)[:, :k]
        best_i = np.take_along_axis(cand_i, order, 1)
        best_d = np.take_along_axis(cand_d, order, 1)
    # exact distances of the winners, from the differences (no cancellation)
    if metric == "cosine":
        dist = 1.0 - np.einsum("qd,qkd->qk", queries, vectors[best_i])
    else:
        dist = np.linalg.norm(vectors[best_i] - queries[:, None, :], axis=2)
    order = np.lexsort((best_i, dist), axis=1)
    return np.take_along_axis(dist, order, 1), np.take_along_axis(best_i, order, 1)


class NeighbourIndex:
    """Nearest-neighbour search over fixed vectors (the coordinates of an embedding).

    Parameters
    ----------
    vectors : (n, d) array
    metric : {"euclidean", "cosine"}
    method : {"auto", "exact", "hnsw"}, default "auto"
        ``"auto"``: exact below ``exact_below`` vectors, faiss HNSW above.
    exact_below : int, default 50,000
    m, ef_construction, ef_search : int, default 32, 200, 512
        faiss HNSW's graph degree, build breadth and search breadth (``ef_search`` is
        raised to ``k`` when smaller).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(500, 8))
    >>> ann = NeighbourIndex(x, method="hnsw")
    >>> exact = NeighbourIndex(x)
    >>> exact.method, ann.method
    ('exact', 'hnsw')
    >>> _, a = ann.search(x[:5], 10)
    >>> _, e = exact.search(x[:5], 10)
    >>> float(np.mean([len(set(p) & set(q)) / 10 for p, q in zip(a, e)]))
    1.0
    """

    def __init__(
        self,
        vectors: np.ndarray,
        metric: Metric = "euclidean",
        *,
        method: Literal["auto", "exact", "hnsw"] = "auto",
        exact_below: int = EXACT_BELOW,
        m: int = 32,
        ef_construction: int = 200,
        ef_search: int = 512,
        _index: Any = None,
    ) -> None:
        _check_metric(metric)
        if method not in ("auto", "exact", "hnsw"):
            raise ValueError(f"method must be 'auto', 'exact' or 'hnsw', got {method!r}")
        self.vectors = np.asarray(vectors, dtype=np.float64)
        self.metric = metric
        n = self.vectors.shape[0]
        self.method = method if method != "auto" else ("exact" if n < exact_below else "hnsw")
        self.options = {"m": int(m), "ef_construction": int(ef_construction),
                        "ef_search": int(ef_search)}  # fmt: skip
        self._index = _index
        if self.method == "hnsw" and self._index is None:
            self._index = self._build()

    def __len__(self) -> int:
        return int(self.vectors.shape[0])

    @property
    def persistent(self) -> bool:
        """Whether there is an index worth saving (an HNSW graph)."""
        return self.method == "hnsw"

    def _prepared(self, x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(np.atleast_2d(x), dtype=np.float32)
        return np.ascontiguousarray(_unit(x), dtype=np.float32) if self.metric == "cosine" else x

    def _build(self) -> Any:
        import faiss

        d = self.vectors.shape[1]
        kind = faiss.METRIC_INNER_PRODUCT if self.metric == "cosine" else faiss.METRIC_L2
        index = faiss.IndexHNSWFlat(d, self.options["m"], kind)
        index.hnsw.efConstruction = self.options["ef_construction"]
        index.add(self._prepared(self.vectors))
        return index

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(distances, indices) of the ``k`` nearest vectors of each query, nearest first."""
        n = len(self)
        if not 1 <= k <= n:
            raise ValueError(f"k={k} must be between 1 and the number of vectors ({n})")
        queries = np.atleast_2d(np.asarray(queries, dtype=np.float64))
        if self.method == "exact":
            return exact_search(self.vectors, queries, k, self.metric)
        self._index.hnsw.efSearch = max(self.options["ef_search"], k)
        dist, idx = self._index.search(self._prepared(queries), k)
        dist = dist.astype(np.float64)
        if self.metric == "cosine":
            dist = 1.0 - dist
        else:
            dist = np.sqrt(np.maximum(dist, 0.0))
        if (idx < 0).any():  # the graph gave fewer than k: complete exactly
            bad = np.flatnonzero((idx < 0).any(axis=1))
            dist[bad], idx[bad] = exact_search(self.vectors, queries[bad], k, self.metric)
        return dist, idx.astype(np.int64)

    # -- persistence --------------------------------------------------------------------
    def _note(self, fingerprint: str) -> dict[str, Any]:
        import faiss

        return {"library": "faiss", "version": faiss.__version__, "kind": "IndexHNSWFlat",
                "metric": self.metric, "n": len(self), "fingerprint": fingerprint,
                **self.options}  # fmt: skip

    def save(self, store: str | Path, fingerprint: str) -> None:
        """Write the HNSW graph into the Zarr store of its embedding.

        The graph (``faiss.serialize_index``) is a uint8 array
        ``neighbours/<metric>-<fingerprint>`` with a note of its options as attributes;
        graphs of this metric built for other fingerprints are removed.
        """
        if not self.persistent:
            return
        import faiss
        import zarr

        data = np.asarray(faiss.serialize_index(self._index), dtype=np.uint8)
        group = zarr.open_group(str(store), mode="a").require_group(INDEX_GROUP)
        name = f"{self.metric}-{fingerprint}"
        for old in list(group.array_keys()):
            if old.startswith(f"{self.metric}-") and old != name:
                del group[old]
        chunk = (min(max(data.size, 1), 1 << 26),)
        arr = group.create_array(
            name, shape=data.shape, dtype="uint8", chunks=chunk, overwrite=True
        )
        arr[:] = data
        arr.attrs.update(self._note(fingerprint))

    @classmethod
    def open(
        cls, store: str | Path | None, fingerprint: str, vectors: np.ndarray,
        metric: str = "euclidean", **options: Any,
    ) -> NeighbourIndex | None:  # fmt: skip
        """The graph saved in ``store`` for this fingerprint, metric and options; None if
        there is none (build a new one) or it was built for something else."""
        if store is None:
            return None
        n = len(vectors)
        method = options.get("method", "auto")
        if method == "exact" or (method == "auto" and n < options.get("exact_below", EXACT_BELOW)):
            return None
        import zarr

        try:
            group = zarr.open_group(str(store), mode="r")
            arr = group[f"{INDEX_GROUP}/{metric}-{fingerprint}"]
        except (KeyError, FileNotFoundError, ValueError):
            return None
        if not isinstance(arr, zarr.Array):  # a group of that name: not a saved graph
            return None
        checked = _check_metric(metric)
        opts = {k: v for k, v in options.items() if k not in ("method", "exact_below")}
        probe = cls(vectors[:0], checked, method="exact", **opts)
        note = dict(arr.attrs)
        wanted = {**probe.options, "metric": metric, "n": n, "fingerprint": fingerprint}
        if any(note.get(key) != value for key, value in wanted.items()):
            return None
        import faiss

        index = faiss.deserialize_index(np.asarray(arr[:], dtype=np.uint8))
        if index.ntotal != n:
            return None
        return cls(vectors, checked, method="hnsw", _index=index, **opts)
