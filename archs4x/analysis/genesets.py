"""Gene-set scores of every sample, streaming over sample blocks.

* ``method="mean_z"``: each gene of the set is standardised across the samples
  (``(x - mean) / sd``, sample standard deviation, ddof=1, on the transformed scale; a
  gene constant across the samples contributes 0) and the score is the mean over the set.
  Two reads: one for the genes' means and standard deviations (streaming moments), one
  for the scores.
* ``method="rank"``: singscore's unidirectional score (Foroutan M, Bhuva DD, Lyu R, Horan
  K, Cursons J, Davis MJ. *Single sample scoring of molecular phenotypes.* BMC
  Bioinformatics 19:404, 2018; the ``singscore`` Bioconductor package's
  ``simpleScore`` with ``rankGenes``' default ``ties.method="min"``): each sample's genes
  are ranked by expression (ascending, ties get the lowest rank), the score is the set's
  mean rank, scaled by its theoretical minimum ``(m + 1) / 2`` and maximum
  ``(2 N - m + 1) / 2`` (``m`` genes in the set, ``N`` genes ranked) and centred:
  ``(mean rank - min) / (max - min) - 0.5``, in [-0.5, 0.5].  Sample-local, so one
  read; log-CPM does not change ranks within a sample, so it is computed on the counts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import dask.array as da
import numpy as np
import xarray as xr

from ..compute.passes import reread
from ..dims import SAMPLE
from ._genes import resolve_genes
from ._stats import block_moments, reduce_states, without_noise
from ._transform import apply_transform, check_transform, labels_row, sample_blocks

__all__ = ["score_genesets"]

METHODS = ("mean_z", "rank")
GENESET = "geneset"


def _sets(counts: Any, genesets: Mapping[str, Sequence[str]], missing: str):
    if not isinstance(genesets, Mapping) or not genesets:
        raise TypeError("genesets must be a non-empty mapping: {name: [symbols or ids]}")
    names, rows = [], []
    for name, genes in genesets.items():
        if isinstance(genes, str):
            genes = [genes]
        found, _ = resolve_genes(counts, genes, what=f"gene of set {name!r}", missing=missing)
        if found.size == 0:
            raise ValueError(f"gene set {name!r} has no gene in the counts")
        names.append(str(name))
        rows.append(found)
    return names, rows


def _membership(rows: list[np.ndarray], union: np.ndarray) -> np.ndarray:
    """(sets, union genes) matrix of 1/size where a gene is in a set."""
    where = {int(g): i for i, g in enumerate(union)}
    w = np.zeros((len(rows), union.size))
    for s, r in enumerate(rows):
        w[s, [where[int(g)] for g in r]] = 1.0 / r.size
    return w


def _moments_state(block, labels, kind, union):
    x = apply_transform(block, kind, labels[0], rows=union)
    return block_moments(x, np.ones((1, x.shape[1]), dtype=bool))


def _z_scores(block, labels, state, weights, kind, union):
    x = apply_transform(block, kind, labels[0], rows=union)
    n, mean = state[:, 0], state[:, 1]
    m2 = without_noise(n, mean, state[:, 2])
    with np.errstate(invalid="ignore", divide="ignore"):
        sd = np.sqrt(m2 / (n - 1))
        z = (x - mean[:, None]) / sd[:, None]
    z[~(sd > 0)] = 0.0
    return weights @ z


def _set_gene_ranks(x: np.ndarray, union: np.ndarray) -> np.ndarray:
    """Within-sample ranks (ascending, ties get the lowest rank) of the ``union`` rows.

    The rank ``scipy.stats.rankdata(method="min")`` gives a value is 1 + the number of
    values below it: each sample is sorted once (a copy of the block, samples as rows) and
    the set genes are looked up by binary search, instead of ranking every gene.
    """
    ordered = np.sort(np.ascontiguousarray(x.T), axis=1)
    ranks = np.empty((union.size, x.shape[1]))
    for j in range(x.shape[1]):
        ranks[:, j] = np.searchsorted(ordered[j], x[union, j], side="left") + 1
    return ranks


def _rank_scores(block, labels, kind, rows):
    x = apply_transform(block, kind, labels[0])
    n_genes = x.shape[0]
    union, where = np.unique(np.concatenate(rows), return_inverse=True)
    ranks = _set_gene_ranks(x, union) if x.size else np.zeros((union.size, x.shape[1]))
    out = np.empty((len(rows), x.shape[1]))
    start = 0
    for s, r in enumerate(rows):
        m = r.size
        low, high = (m + 1) / 2, (2 * n_genes - m + 1) / 2
        mean_rank = ranks[where[start : start + m]].mean(axis=0)
        start += m
        out[s] = (mean_rank - low) / (high - low) - 0.5 if high > low else 0.0
    return out


def score_genesets(
    counts: xr.DataArray | xr.Dataset,
    genesets: Mapping[str, Sequence[str]],
    *,
    method: Literal["mean_z", "rank"] = "mean_z",
    transform: Literal["log_cpm", "log_quantile"] | None = "log_cpm",
    missing: Literal["raise", "warn"] = "warn",
) -> xr.DataArray:
    """Score every sample for every gene set, lazily.

    Parameters
    ----------
    counts : xarray.DataArray or xarray.Dataset
        (gene, sample) counts: a file or any selection of one.
    genesets : mapping
        ``{"name": [symbols or Ensembl ids], ...}``; a symbol shared by several Ensembl
        genes contributes each of them.
    method : {"mean_z", "rank"}, default "mean_z"
        ``"mean_z"``: mean over the set of the genes' z-scores across the samples (two
        reads).  ``"rank"``: singscore (Foroutan et al. 2018, BMC Bioinformatics
        19:404), the set's mean within-sample rank, scaled to [-0.5, 0.5] (one read).
        See :mod:`archs4x.analysis.genesets`.
    transform : {"log_cpm", "log_quantile", None}, default "log_cpm"
        The expression scale.
    missing : {"warn", "raise"}, default "warn"
        Genes of a set absent from the counts: left out with a
        :class:`archs4x.MissingIdsWarning`, or ``KeyError``.  A set with no gene left
        raises ``ValueError``.

    Returns
    -------
    xarray.DataArray
        float64 (geneset, sample), lazy; ``n_genes`` (genes used per set) on ``geneset``.

    Examples
    --------
    >>> import archs4x
    >>> ds = archs4x.open_dataset(archs4x.datasets.example_file()).archs4.remove_single_cell()
    >>> s = archs4x.score_genesets(ds, {"muscle": ["MYOD1", "MYOG", "DES"], "liver": ["ALB"]})
    >>> s.dims, s.geneset.values.tolist()
    (('geneset', 'sample'), ['muscle', 'liver'])
    >>> muscle = ds.source_name_ch1.values == "skeletal muscle myoblast"
    >>> v = s.values
    >>> bool(v[0, muscle].mean() > v[0, ~muscle].mean() + 1)
    True
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if missing not in ("warn", "raise"):
        raise ValueError(f"missing must be 'warn' or 'raise', got {missing!r}")
    check_transform(transform)
    names, rows = _sets(counts, genesets, missing)
    arr, data, kind = sample_blocks(
        counts, None if method == "rank" and transform == "log_cpm" else transform
    )
    labels = labels_row(arr, data)
    n_sets = len(names)
    if method == "rank":
        scores = da.map_blocks(
            _rank_scores,
            data,
            labels,
            kind,
            rows,
            dtype=np.float64,
            chunks=((n_sets,), data.chunks[1]),
        )
    else:
        union = np.unique(np.concatenate(rows))
        state = reduce_states(data, _moments_state, 3, labels, kind, union, n_rows=union.size)
        again = reread(data, state)
        weights = _membership(rows, union)
        # the state (genes x 3, one chunk) goes whole to every block: its own indices
        scores = da.blockwise(
            _z_scores,
            "sj",
            again,
            "gj",
            labels,
            "kj",
            state,
            "uc",
            weights,
            None,
            kind,
            None,
            union,
            None,
            new_axes={"s": n_sets},
            dtype=np.float64,
            concatenate=True,
            meta=np.empty((0, 0)),
        )
    coords: dict[str, Any] = {GENESET: names, "n_genes": (GENESET, [r.size for r in rows])}
    if SAMPLE in arr.coords:
        coords[SAMPLE] = arr[SAMPLE]
    return xr.DataArray(
        scores,
        dims=(GENESET, SAMPLE),
        coords=coords,
        name="score",
        attrs={"method": method, "transform": str(transform)},
    )
