"""Co-expression: the genes most correlated with query genes, and gene x gene matrices.

Pearson correlation streams over sample blocks: each block gives, per gene, its count,
mean and centred sum of squares, and the centred cross-products of every gene with the
query genes; the states merge exactly (Chan et al., see :mod:`._stats`), so the whole
selection is one read, memory bounded by a few blocks.  The correlation of genes ``g``
and ``q`` is ``M[g, q] / sqrt(m2[g] m2[q])``: what :func:`numpy.corrcoef` computes.

Spearman correlation is Pearson's on each gene's average ranks across the selected
samples, so it needs whole gene rows: it streams over *gene bands* (see
:mod:`._transform`), ranks each row, centres and scales it to unit length, and takes
dot products with the query rows: what :func:`scipy.stats.spearmanr` computes.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

import dask.array as da
import numpy as np
import xarray as xr

from ..dims import SAMPLE
from ._genes import resolve_genes, symbols_of
from ._stats import moment_state, rank_rows, reduce_states, without_noise
from ._transform import apply_transform, check_transform, gene_bands, labels_row, sample_blocks

__all__ = ["coexpression", "correlation"]

METHODS = ("pearson", "spearman")

#: The dimensions of the results.
QUERY, RANK = "query", "rank"


def _check_method(method: str) -> None:
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")


def _pearson_state(block, labels, kind, rows, query):
    x = apply_transform(block, kind, labels[0], rows=rows)
    return moment_state(x, query)


def _pearson(
    counts: Any, transform: Any, rows: np.ndarray | None, query: np.ndarray
) -> tuple[xr.DataArray, da.Array]:
    """(arr, corr): the lazy correlation of rows ``rows`` (all) with rows ``query`` of
    them, shape (len(rows), len(query))."""
    arr, data, kind = sample_blocks(counts, transform)
    labels = labels_row(arr, data)
    n_rows = data.shape[0] if rows is None else len(rows)
    state = reduce_states(
        data,
        _pearson_state,
        3 + len(query),
        labels,
        kind,
        rows,
        query,
        query=query,
        n_rows=n_rows,
    )
    corr = da.map_blocks(
        _corr_from_state, state, query, dtype=np.float64, chunks=(state.chunks[0], (len(query),))
    )
    return arr, corr


def _corr_from_state(state: np.ndarray, query: np.ndarray) -> np.ndarray:
    # a constant row (up to rounding) has no correlation: NaN
    m2 = without_noise(state[:, 0], state[:, 1], state[:, 2])
    denom = np.sqrt(m2[:, None] * m2[query][None, :])
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(denom > 0, state[:, 3:] / denom, np.nan)
    return np.clip(out, -1.0, 1.0)


def _unit_ranks(band: np.ndarray) -> np.ndarray:
    """Each row's average ranks, centred and scaled to unit length (NaN if constant)."""
    ranks, _ = rank_rows(band)
    centred = ranks - ranks.mean(axis=1, keepdims=True)
    norm = np.sqrt(np.einsum("ij,ij->i", centred, centred))
    with np.errstate(invalid="ignore", divide="ignore"):
        return centred / norm[:, None]


def _spearman(
    counts: Any, transform: Any, rows: np.ndarray | None, query: np.ndarray
) -> tuple[xr.DataArray, da.Array]:
    arr, bands = gene_bands(counts, transform, rows)
    unit = da.map_blocks(_unit_ranks, bands, dtype=np.float64)
    q = unit[query].rechunk((len(query), -1))
    corr = da.matmul(unit, q.T)
    return arr, corr.map_blocks(np.clip, -1.0, 1.0, dtype=np.float64)


def _correlate(counts, transform, method, rows, query):
    _check_method(method)
    check_transform(transform)
    if method == "pearson":
        return _pearson(counts, transform, rows, query)
    return _spearman(counts, transform, rows, query)


def correlation(
    counts: xr.DataArray | xr.Dataset,
    genes: str | Iterable[str],
    *,
    method: Literal["pearson", "spearman"] = "pearson",
    transform: Literal["log_cpm", "log_quantile"] | None = "log_cpm",
) -> xr.DataArray:
    """The gene x gene correlation matrix of ``genes`` across the samples, lazily.

    Parameters
    ----------
    counts : xarray.DataArray or xarray.Dataset
        (gene, sample) counts, any selection of a file; a Dataset's ``counts`` is used.
    genes : str or list of str
        Symbols or Ensembl ids (a symbol shared by several Ensembl genes gives them all);
        up to a few thousand (the result is genes x genes).
    method : {"pearson", "spearman"}
        Pearson: one streaming pass over sample blocks.  Spearman: Pearson on each gene's
        average ranks across the samples, over gene bands.
    transform : {"log_cpm", "log_quantile", None}
        The expression scale (see :mod:`archs4x.analysis`); log-CPM uses the library
        size of every gene of ``counts``, not only of ``genes``.

    Returns
    -------
    xarray.DataArray
        float64 (gene, gene2), lazy, labelled by Ensembl id with ``symbol`` coordinates;
        NaN for a gene constant across the samples (as :func:`numpy.corrcoef`).

    Examples
    --------
    >>> import archs4x
    >>> ds = archs4x.open_dataset(archs4x.datasets.example_file())
    >>> c = archs4x.correlation(ds.archs4.remove_single_cell(), ["MYOD1", "MYOG", "ALB"])
    >>> c.dims, c.shape
    (('gene', 'gene2'), (3, 3))
    >>> r = c.values
    >>> bool(r[0, 1] > 0.5 > abs(r[0, 2]))  # MYOD1 and MYOG mark the same tissue
    True
    """
    arr_ds = counts
    rows, _ = resolve_genes(arr_ds, genes)
    arr, corr = _correlate(counts, transform, method, rows, np.arange(rows.size))
    fdim = arr.dims[0]
    ids = np.asarray(arr[fdim].values, dtype=object)[rows]
    symbols = symbols_of(arr)
    coords: dict[str, Any] = {fdim: ids, f"{fdim}2": ids}
    if symbols is not None:
        coords["symbol"] = (fdim, symbols[rows])
        coords["symbol2"] = (f"{fdim}2", symbols[rows])
    attrs = {"method": method, "transform": str(transform), "n_samples": arr.sizes[SAMPLE]}
    return xr.DataArray(
        corr, dims=(fdim, f"{fdim}2"), coords=coords, name="correlation", attrs=attrs
    )


def _top_k(corr: np.ndarray, query: np.ndarray, k: int) -> np.ndarray:
    """Positions of the ``k`` largest correlations of each query column (itself and NaN
    excluded), best first; ties in file order.  Shape (q, k); -1 where fewer exist."""
    out = np.full((corr.shape[1], k), -1, dtype=np.int64)
    for j in range(corr.shape[1]):
        col = corr[:, j].copy()
        col[query[j]] = np.nan
        ok = np.flatnonzero(~np.isnan(col))
        order = ok[np.argsort(-col[ok], kind="stable")][:k]
        out[j, : order.size] = order
    return out


def _take(positions: np.ndarray, values: np.ndarray, fill: Any) -> np.ndarray:
    out = np.asarray(values)[np.maximum(positions, 0)]
    if out.dtype.kind == "f":
        out = out.copy()
        out[positions < 0] = fill
    else:
        out = out.astype(object)
        out[positions < 0] = fill
    return out


def _take_corr(corr: np.ndarray, top: np.ndarray) -> np.ndarray:
    cols = np.arange(top.shape[0])[:, None]
    out = corr[np.maximum(top, 0), cols]
    return np.where(top >= 0, out, np.nan)


def coexpression(
    counts: xr.DataArray | xr.Dataset,
    genes: str | Iterable[str],
    *,
    k: int = 50,
    method: Literal["pearson", "spearman"] = "pearson",
    transform: Literal["log_cpm", "log_quantile"] | None = "log_cpm",
) -> xr.Dataset:
    """The ``k`` genes most co-expressed with each query gene across the samples, lazily.

    Every gene of ``counts`` is correlated with every query gene; the query gene itself
    and genes constant across the samples (NaN correlation) are left out.

    Parameters
    ----------
    counts : xarray.DataArray or xarray.Dataset
        (gene, sample) counts: a file or any selection of one (e.g. a search).
    genes : str or list of str
        Query genes: symbols or Ensembl ids; a symbol shared by several Ensembl genes
        queries each of them.
    k : int, default 50
        Partners per query gene.
    method : {"pearson", "spearman"}, default "pearson"
        Pearson: one streaming pass over sample blocks (blocked cross-products of centred
        rows, merged exactly): time ~ genes x samples x queries, memory ~ a few blocks.
        Spearman: each gene's average ranks across the samples, over gene bands read
        straight from the file (or a gene-major Zarr copy): one more read for log-CPM's
        library sizes; time ~ genes x samples x log(samples).
    transform : {"log_cpm", "log_quantile", None}, default "log_cpm"
        The expression scale: ``log2(1 + CPM)``, archs4py's log-quantile normalization,
        or raw counts.

    Returns
    -------
    xarray.Dataset
        Dimensions ``query`` (the query genes' Ensembl ids, with ``query_symbol``) and
        ``rank`` (0 = most correlated): ``correlation`` (float64), ``gene`` (partner
        Ensembl id) and ``symbol``.  Lazy: ``.compute()`` runs the pass.

    Examples
    --------
    >>> import archs4x
    >>> ds = archs4x.open_dataset(archs4x.datasets.example_file())
    >>> top = archs4x.coexpression(ds.archs4.remove_single_cell(), "MYOD1", k=5)
    >>> top.sizes["rank"], top.query_symbol.values.tolist()
    (5, ['MYOD1'])
    >>> partners = top.compute().symbol.values[0].tolist()
    >>> "MYOG" in partners  # a marker of the same tissue
    True
    """
    if not isinstance(k, int | np.integer) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    query, _ = resolve_genes(counts, genes)
    arr, corr = _correlate(counts, transform, method, None, query)
    k = int(min(k, arr.shape[0] - 1)) or 1
    corr = corr.rechunk((-1, -1))
    top = da.map_blocks(_top_k, corr, query, k, dtype=np.int64, chunks=((len(query),), (k,)))
    fdim = arr.dims[0]
    ids = np.asarray(arr[fdim].values, dtype=object)
    symbols = symbols_of(arr)
    data_vars: dict[str, Any] = {
        "correlation": (
            (QUERY, RANK),
            da.map_blocks(_take_corr, corr, top, dtype=np.float64, chunks=top.chunks),
        ),
        fdim: ((QUERY, RANK), top.map_blocks(_take, ids, None, dtype=object)),
    }
    coords: dict[str, Any] = {QUERY: ids[query], RANK: np.arange(k)}
    if symbols is not None:
        data_vars["symbol"] = ((QUERY, RANK), top.map_blocks(_take, symbols, None, dtype=object))
        coords["query_symbol"] = (QUERY, symbols[query])
    attrs = {"method": method, "transform": str(transform), "n_samples": arr.sizes[SAMPLE]}
    return xr.Dataset(data_vars, coords=coords, attrs=attrs)
