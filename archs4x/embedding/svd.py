"""The passes of an embedding's fit: highly variable genes, then a randomised truncated SVD.

:func:`archs4x.embedding.fit` returns a lazy :class:`~archs4x.embedding.Embedding`; computing
it (:func:`run_plan`) streams over the samples, in bounded memory, on any Dask scheduler:

1. library sizes (one read of the counts);
2. per-gene mean and variance of the log-CPM (one read; Dask's streaming, pairwise-merged
   moments); the ``n_genes`` genes of largest variance are the highly variable genes;
3. the randomised truncated SVD of the centred (sample x gene) log-CPM matrix of those
   genes with :func:`dask.array.linalg.svd_compressed` (Halko, Martinsson & Tropp 2011),
   ``compute=True`` so each of its passes re-reads the counts instead of keeping the
   matrix in memory (``2 * n_power_iter + 2`` reads), with QR-orthonormalised power
   iterations;
4. every sample's coordinates: the centred matrix projected on the loadings (one read), so
   that :meth:`Embedding.transform` of a fitted sample gives its coordinates exactly.

The transform is edgeR's log-CPM (:func:`archs4x.cpm` with ``log=True``): with library size
``L`` and the mean library size ``m`` of the fitted samples, the prior of a sample is
``p = prior_count * L / m`` and ``log2((x + p) / (L + 2 p) * 1e6)``.  ``m`` is kept, so new
samples are transformed exactly as the fitted ones were.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

import dask
import dask.array as da
import numpy as np
import xarray as xr
from dask.array.linalg import svd_compressed

from ..backends.positions import sample_positions
from ..dims import GENE, SAMPLE
from ..errors import EmptyLibraryError

__all__ = ["TRANSFORMS", "FitPlan", "digest", "log_cpm", "run_plan", "source_of"]

#: Transforms :func:`fit` accepts.
TRANSFORMS = ("log_cpm",)


def log_cpm(counts: Any, lib: Any, mean_lib: float, prior_count: float) -> Any:
    """edgeR's log-CPM of ``counts`` (features x samples) given library sizes and their mean.

    The formula of :func:`archs4x.cpm` with ``log=True``; works on NumPy and Dask arrays.

    Examples
    --------
    >>> x = np.array([[0.0, 10.0], [100.0, 90.0]])
    >>> lib = x.sum(axis=0)
    >>> log_cpm(x, lib, float(lib.mean()), 2.0).round(3).tolist()
    [[14.231, 16.816], [19.904, 19.755]]
    """
    scaled = prior_count * lib / mean_lib
    with np.errstate(invalid="ignore", divide="ignore"):
        return (np.log(counts + scaled) - np.log(lib + 2 * scaled) + np.log(1e6)) / np.log(2)


def _log_cpm_block(block: np.ndarray, lib: np.ndarray, mean_lib: float, prior: float) -> np.ndarray:
    return log_cpm(block.astype(np.float64), lib, mean_lib, prior)


def _centred_block(block, lib, mean_lib, prior, rows, means) -> np.ndarray:
    """The centred log-CPM of the highly variable ``rows`` of a (gene x sample) block."""
    y = log_cpm(block[rows].astype(np.float64), lib, mean_lib, prior)
    y -= means[:, None]
    return y


def digest(*parts: Any) -> str:
    h = hashlib.blake2b(digest_size=12)
    for part in parts:
        if isinstance(part, np.ndarray) and part.dtype.kind not in "OUS":
            h.update(str(part.dtype).encode() + str(part.shape).encode())
            h.update(np.ascontiguousarray(part).tobytes())
        elif isinstance(part, np.ndarray):
            h.update("\x00".join(map(str, part.tolist())).encode("utf-8", "surrogatepass"))
        else:
            h.update(json.dumps(part, sort_keys=True, default=str).encode())
        h.update(b"\x1f")
    return h.hexdigest()


@dataclass
class FitPlan:
    """What :func:`fit` was asked for: the lazy counts, the parameters, the provenance."""

    counts: xr.DataArray
    params: dict[str, Any]
    source: dict[str, Any]
    selection: dict[str, Any]
    positions: np.ndarray | None = None
    symbols: np.ndarray | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def source_of(ds: xr.Dataset | xr.DataArray) -> tuple[dict[str, Any], np.ndarray | None]:
    """The identity of the file the samples come from, and their columns in it."""
    attrs = ds.attrs
    info: dict[str, Any] = {
        "release": str(attrs.get("version", "")),
        "level": str(attrs.get("archs4_level", "")),
    }
    found = sample_positions(ds) if SAMPLE in ds.dims else None
    if found is None:
        return {"kind": "memory", **info}, None
    positions, source = found
    info.update(
        kind="file",
        name=str(getattr(source, "name", source)),
        cache_key=str(getattr(source, "cache_key", "")),
    )
    return info, np.asarray(positions, dtype=np.int64)


def run_plan(plan: FitPlan) -> dict[str, Any]:
    """Compute a :class:`FitPlan`: the passes of the module docstring, on the current scheduler.

    Returns the arrays and facts :class:`~archs4x.embedding.Embedding` holds.
    """
    p = plan.params
    counts = plan.counts
    if counts.chunks is None:  # fit() chunks in-memory counts before planning
        raise TypeError("run_plan needs Dask-backed counts (a FitPlan made by fit())")
    if len(counts.chunks[0]) > 1:  # every gene of a sample in one block
        counts = counts.chunk({GENE: -1})
    data = counts.data
    # 1. library sizes
    lib = np.asarray(data.sum(axis=0, dtype=np.float64).compute())
    sample_ids = np.asarray(counts[SAMPLE].values).astype(str)
    empty = ~(lib > 0)
    if empty.any() and p["empty"] == "raise":
        i = int(np.flatnonzero(empty)[0])
        raise EmptyLibraryError(
            f"sample {sample_ids[i]!r} (position {i}) has an empty library (no reads): its "
            f"log-CPM is undefined; {int(empty.sum())} such sample(s); pass empty='drop'"
        )
    keep = np.flatnonzero(~empty)
    positions = plan.positions
    if empty.any():
        counts = counts.isel({SAMPLE: keep})
        data = counts.data
        lib = lib[keep]
        positions = None if positions is None else positions[keep]
    n = data.shape[1]
    k = p["n_components"]
    if n < k + 1:
        raise ValueError(f"n_components={k} needs at least {k + 1} samples with reads, got {n}")
    mean_lib = float(lib.mean())
    prior = p["prior_count"]
    lib_da = da.from_array(lib, chunks=(data.chunks[1],))[None, :]
    # 2. gene statistics of the log-CPM, one streaming pass
    y = da.map_blocks(_log_cpm_block, data, lib_da, mean_lib, prior, dtype=np.float64)
    mean, var = dask.compute(y.mean(axis=1), y.var(axis=1, ddof=1))
    mean, var = np.asarray(mean), np.asarray(var)
    varying = np.flatnonzero(var > 0)
    if varying.size < k:
        raise ValueError(
            f"only {varying.size} genes vary across these samples: fewer than n_components={k}"
        )
    order = varying[np.lexsort((varying, -var[varying]))]
    rows = np.sort(order[: p["n_genes"]])
    means = mean[rows]
    # 3. randomised truncated SVD of the centred sample x gene matrix
    x = da.map_blocks(
        _centred_block, data, lib_da, mean_lib, prior, rows, means,
        dtype=np.float64, chunks=((rows.size,), data.chunks[1]),
    ).T  # fmt: skip
    _, s, v = svd_compressed(
        x, k, n_power_iter=p["n_power_iter"], n_oversamples=p["n_oversamples"],
        seed=p["seed"], compute=True, iterator="QR",
    )  # fmt: skip
    s, v = dask.compute(s, v)
    # 4. coordinates: the centred matrix on the loadings
    coords = np.asarray(x.dot(da.from_array(np.asarray(v).T)).compute())
    gene_ids = np.asarray(counts[GENE].values).astype(str)
    total = float(var[rows].sum())
    ev = np.asarray(s) ** 2 / max(n - 1, 1)
    return {
        "coordinates": coords,
        "loadings": np.asarray(v),
        "singular_values": np.asarray(s),
        "explained_variance_ratio": ev / total if total > 0 else np.full(k, np.nan),
        "gene_mean": means,
        "gene_variance": var[rows],
        "genes": gene_ids[rows],
        "symbols": None if plan.symbols is None else np.asarray(plan.symbols)[rows],
        "samples": sample_ids[keep],
        "positions": positions,
        "library_genes": gene_ids,
        "mean_library": mean_lib,
        "dropped": sample_ids[empty].tolist(),
        "passes": 5 + 2 * p["n_power_iter"],
        # library sizes of a few samples: a content check of the file the embedding is used with
        "probe": {
            str(sample_ids[keep][i]): float(lib[i])
            for i in np.unique(np.linspace(0, n - 1, 8).astype(int))
        },
    }
