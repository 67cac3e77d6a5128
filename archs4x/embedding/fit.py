"""Fit an embedding of samples (see :mod:`archs4x.embedding.svd` for the passes)."""

from __future__ import annotations

from typing import Literal

import dask.array as da
import numpy as np
import pandas as pd
import xarray as xr

from ..dims import COUNTS, GENE, SAMPLE
from .model import Embedding
from .svd import TRANSFORMS, FitPlan, digest, source_of

__all__ = ["fit"]


def fit(
    ds: xr.Dataset | xr.DataArray,
    n_components: int = 50,
    n_genes: int = 5000,
    transform: Literal["log_cpm"] = "log_cpm",
    seed: int = 0,
    *,
    prior_count: float = 2.0,
    n_power_iter: int = 2,
    n_oversamples: int = 20,
    empty: Literal["drop", "raise"] = "drop",
    description: str = "",
) -> Embedding:
    """A lazy embedding of the samples of ``ds``: highly variable genes, then a truncated SVD.

    Nothing is read until the result is computed (``emb.compute()``, ``emb.save(...)``, or
    any of its arrays).  See :mod:`archs4x.embedding.fit` for the passes.

    Parameters
    ----------
    ds : xarray.Dataset or xarray.DataArray
        A file's Dataset or any selection of it (its ``counts``), or (gene, sample) counts
        in memory.  Genes must be labelled by Ensembl id (the ``gene`` index), samples by
        id (GSM for ARCHS4).
    n_components : int, default 50
        Dimensions of the embedding.
    n_genes : int, default 5000
        Highly variable genes kept: those of largest log-CPM variance (genes of zero
        variance never; fewer if fewer vary).
    transform : {"log_cpm"}
        edgeR's log-CPM (see the module docstring).
    seed : int, default 0
        Seed of the SVD's random test matrix: the same seed gives the same embedding.
    prior_count : float, default 2
        edgeR's prior count of the log-CPM.
    n_power_iter, n_oversamples : int, default 2, 20
        :func:`dask.array.linalg.svd_compressed`'s power iterations (each costs two reads
        of the counts) and oversampling.  The error in the subspace shrinks like
        ``(s[k + p] / s[k]) ** (2 q + 1)``; raise ``n_power_iter`` when the spectrum decays
        slowly.
    empty : {"drop", "raise"}, default "drop"
        Samples with no reads have no log-CPM: ``"drop"`` leaves them out (listed in
        ``emb.dropped``), ``"raise"`` raises :class:`archs4x.EmptyLibraryError` when
        computed.
    description : str, optional
        Recorded with the embedding (the CLI records its ``--samples`` query).

    Returns
    -------
    Embedding
        Lazy: ``.compute()`` runs the passes (and returns it).

    Examples
    --------
    >>> import archs4x
    >>> ds = archs4x.open_dataset(archs4x.datasets.example_file()).archs4.remove_single_cell()
    >>> emb = fit(ds, n_components=10, n_genes=500)   # nothing read yet
    >>> emb.lazy
    True
    >>> emb = emb.compute()
    >>> emb.coordinates.shape, emb.loadings.shape, emb.passes
    ((338, 10), (10, 500), 9)
    """
    counts = ds[COUNTS] if isinstance(ds, xr.Dataset) else ds
    if counts.ndim != 2 or SAMPLE not in counts.dims:
        raise ValueError(f"fit needs (gene, sample) counts, got dimensions {counts.dims}")
    feat = next(d for d in counts.dims if d != SAMPLE)
    if feat != GENE:
        raise ValueError(f"fit needs gene counts (a gene file); these counts are by {feat!r}")
    counts = counts.transpose(GENE, SAMPLE)
    if transform not in TRANSFORMS:
        raise ValueError(f"unsupported transform {transform!r}: choose one of {TRANSFORMS}")
    if empty not in ("drop", "raise"):
        raise ValueError(f"empty must be 'drop' or 'raise', got {empty!r}")
    for name, value, low in (("n_components", n_components, 1), ("n_genes", n_genes, 1),
                             ("n_power_iter", n_power_iter, 0),
                             ("n_oversamples", n_oversamples, 0)):  # fmt: skip
        if not isinstance(value, int | np.integer) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    if not np.isfinite(prior_count) or prior_count <= 0:
        raise ValueError(f"prior_count must be a finite number > 0, got {prior_count!r}")
    n_genes_avail, n_samples = counts.shape
    if n_components > min(n_samples, n_genes, n_genes_avail):
        raise ValueError(
            f"n_components={n_components} is larger than the data allows: "
            f"{n_samples} samples, {min(n_genes, n_genes_avail)} genes"
        )
    if not isinstance(counts.data, da.Array):
        counts = counts.chunk({SAMPLE: max(1, min(n_samples, 2048))})
    source, positions = source_of(ds)
    gene_ids = np.asarray(counts[GENE].values).astype(str)
    sample_ids = np.asarray(counts[SAMPLE].values).astype(str)
    repeated = pd.Index(sample_ids)
    if repeated.has_duplicates:
        twice = repeated[repeated.duplicated()].unique()[:5].tolist()
        raise ValueError(
            f"fit needs each sample once; {twice} are selected more than once "
            "(drop the repeats, e.g. ds.drop_duplicates('sample'))"
        )
    symbols = np.asarray(counts["symbol"].values) if "symbol" in counts.coords else None
    params = {
        "n_components": int(n_components),
        "n_genes": int(n_genes),
        "transform": transform,
        "prior_count": float(prior_count),
        "seed": int(seed),
        "n_power_iter": int(n_power_iter),
        "n_oversamples": int(n_oversamples),
        "empty": empty,
        "svd": "dask.array.linalg.svd_compressed(iterator='QR', compute=True)",
    }
    selection = {
        "description": description,
        "n_samples": int(n_samples),
        "n_genes": int(n_genes_avail),
        "samples_digest": digest(positions if positions is not None else sample_ids),
        "genes_digest": digest(gene_ids),
    }
    plan = FitPlan(counts, params, source, selection, positions, symbols)
    return Embedding(plan=plan)
