"""``ds.archs4.similar``: the samples of a file nearest to a query, with their metadata.

A query is projected into the embedding (:meth:`~archs4x.embedding.Embedding.transform`),
or, for a fitted GSM id, taken from it; its nearest fitted samples are found
(:class:`~archs4x.embedding.neighbours.NeighbourIndex`) and described by the file's
metadata, parsed characteristics included (:func:`archs4x.with_characteristics`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
import xarray as xr

from ..dims import SAMPLE
from ..query import charfields, select, tables
from .model import Embedding
from .neighbours import exact_search

__all__ = ["similar"]

_GSM = re.compile(r"^GSM\d+$")
#: Metadata fields of the neighbours, as (output column, file field).
FIELDS = (("title", "title"), ("series", "series_id"), ("source_name", "source_name_ch1"))


def _query_coordinates(
    ds: xr.Dataset, query: Any, emb: Embedding
) -> tuple[list[str], np.ndarray, list[str | None]]:
    """(query names, coordinates, fitted GSM of each query or None)."""
    if isinstance(query, str | bytes):
        query = [query.decode() if isinstance(query, bytes) else query]
    if isinstance(query, Sequence) and not isinstance(query, str):
        ids = [str(q) for q in query]
        if not ids:
            raise ValueError("no query samples given")
        fitted = pd.Index(emb.samples)
        loc = fitted.get_indexer(ids)
        coords = np.empty((len(ids), emb.coordinates.shape[1]))
        inside = loc >= 0
        if inside.any():
            coords[inside] = emb.coordinates.values[loc[inside]]
        if not inside.all():  # samples of the file that were not fitted: project them
            other = [i for i, ok in zip(ids, inside, strict=True) if not ok]
            here = pd.Index(np.asarray(ds[SAMPLE].values).astype(str))
            unknown = [i for i in other if i not in here]
            if unknown:
                raise KeyError(
                    f"{len(unknown)} query sample(s) are neither in the embedding nor in the "
                    f"Dataset: {', '.join(unknown[:10])}{', ...' if len(unknown) > 10 else ''}"
                )
            sub = select.samples(ds, other, missing="raise")
            coords[~inside] = emb.transform(sub).values
        return ids, coords, [i if ok else None for i, ok in zip(ids, inside, strict=True)]
    if isinstance(query, xr.Dataset | xr.DataArray | pd.DataFrame):
        projected = emb.transform(query)
        values = np.asarray(projected.values, dtype=np.float64)
        names = [str(s) for s in projected[SAMPLE].values]
        empty = ~np.isfinite(values).all(axis=1)
        if empty.any():
            raise ValueError(
                f"query sample {names[int(np.flatnonzero(empty)[0])]!r} has no reads on the "
                "embedding's genes (an empty library): nothing to compare"
            )
        return names, values, [None] * len(names)
    raise TypeError(
        "query must be GSM id(s), an xarray Dataset/DataArray of counts (e.g. from "
        f"archs4x.align.folder) or a pandas DataFrame (genes x samples), not {type(query).__name__}"
    )


def _metadata(ds: xr.Dataset, ids: list[str], characteristics: bool) -> pd.DataFrame:
    """Title, series, source name, tissue and parsed characteristics of ``ids``."""
    sub = select.samples(ds, ids, missing="ignore")
    have = [(col, f) for col, f in FIELDS if f in sub.coords]
    frame = tables.meta(sub, [f for _, f in have]) if have else pd.DataFrame(index=ids)
    frame = frame.rename(columns={f: col for col, f in have})
    if characteristics and "characteristics_ch1" in sub.coords:
        extra = charfields.with_characteristics(sub)
        keys = [str(k) for k in extra.coords if k not in sub.coords]
        if keys:
            frame = frame.join(tables.meta(extra, keys))
    if "tissue" not in frame.columns:
        frame["tissue"] = None
    return frame


def similar(
    ds: xr.Dataset,
    query: Any,
    k: int = 20,
    *,
    embedding: Embedding,
    metric: Literal["euclidean", "cosine"] = "euclidean",
    method: Literal["auto", "exact", "hnsw"] = "auto",
    characteristics: bool = True,
    as_dataset: bool = False,
) -> pd.DataFrame | tuple[pd.DataFrame, xr.Dataset]:
    """The ``k`` samples of ``ds`` nearest to each query sample in ``embedding``, with metadata.

    Parameters
    ----------
    ds : xarray.Dataset
        The file the embedding was fitted on (or a selection of it: only its samples are
        candidates).
    query : str, list of str, xarray.Dataset/DataArray or pandas.DataFrame
        GSM id(s) (fitted samples are looked up, other samples of ``ds`` projected), or
        counts of your own samples by Ensembl gene id: a result of
        :func:`archs4x.align.folder` / :func:`archs4x.align.fastq`, or a frame of genes
        (rows) x samples (columns).
    k : int, default 20
        Neighbours per query sample.  A fitted GSM query is not its own neighbour.
    embedding : Embedding
        From :func:`archs4x.embedding.fit` (computed if lazy) or :func:`archs4x.embedding.load`.
    metric : {"euclidean", "cosine"}, default "euclidean"
    method : {"auto", "exact", "hnsw"}, default "auto"
        Exact search below 50,000 candidates, faiss HNSW above (see
        :mod:`archs4x.embedding.neighbours`).
    characteristics : bool, default True
        Add the parsed ``characteristics_ch1`` keys as columns (``tissue``, ``cell_type``, ...).
    as_dataset : bool, default False
        Also return the neighbours as a lazy Dataset of ``ds`` (counts not read).

    Returns
    -------
    pandas.DataFrame, or (DataFrame, xarray.Dataset) with ``as_dataset=True``
        One row per query and neighbour: ``query``, ``rank`` (1 = nearest), ``gsm``,
        ``distance``, ``title``, ``series``, ``source_name``, ``tissue``, then the other
        parsed characteristics.

    Raises
    ------
    archs4x.embedding.EmbeddingMismatchError
        The embedding was fitted on another file or release.
    archs4x.embedding.GeneMismatchError
        Query counts lack genes of the embedding.
    ValueError
        ``k`` is larger than the candidate samples.
    KeyError
        A GSM id in neither the embedding nor ``ds``.

    Examples
    --------
    >>> import archs4x
    >>> ds = archs4x.open_dataset(archs4x.datasets.example_file())
    >>> emb = archs4x.embedding.fit(ds.archs4.remove_single_cell(), n_components=10,
    ...                             n_genes=500)
    >>> hits = ds.archs4.similar("GSM1482938", k=5, embedding=emb)
    >>> hits[["query", "rank", "source_name"]].head(2)
      query  rank source_name
    0  GSM1482938     1       liver
    1  GSM1482938     2       liver
    >>> ds.archs4.similar("GSM1482938", k=400, embedding=emb)
    Traceback (most recent call last):
    ...
    ValueError: k=400 is larger than the 337 samples that can be returned ...
    """
    if not isinstance(embedding, Embedding):
        raise TypeError("embedding must be an archs4x Embedding (archs4x.embedding.fit/load)")
    if not isinstance(k, int | np.integer) or k < 1:
        raise ValueError(f"k must be an integer >= 1, got {k!r}")
    emb = embedding.compute()
    emb.check_dataset(ds)
    names, coords, fitted = _query_coordinates(ds, query, emb)
    samples = emb.samples
    here = np.isin(samples, np.asarray(ds[SAMPLE].values).astype(str))
    candidates = np.flatnonzero(here)
    # a fitted query is left out of its own neighbours only when it is a candidate
    candidate_ids = set(samples[candidates].tolist())
    self_match = any(f is not None and f in candidate_ids for f in fitted)
    limit = candidates.size - (1 if self_match else 0)
    if k > limit:
        raise ValueError(
            f"k={k} is larger than the {limit} samples that can be returned (fitted samples "
            f"of this Dataset{', the query itself excluded' if self_match else ''})"
        )
    want = min(k + (1 if self_match else 0), candidates.size)
    if candidates.size == samples.size:
        dist, idx = emb.neighbours(metric, method=method).search(coords, want)
    else:  # a selection of the file: exact search among its samples
        dist, idx = exact_search(emb.coordinates.values[candidates], coords, want, metric)
        idx = candidates[idx]
    rows = []
    for qi, name in enumerate(names):
        got = [(samples[j], d) for j, d in zip(idx[qi], dist[qi], strict=True)
               if samples[j] != fitted[qi]][:k]  # fmt: skip
        rows += [(name, r + 1, gsm, float(d)) for r, (gsm, d) in enumerate(got)]
    frame = pd.DataFrame(rows, columns=["query", "rank", "gsm", "distance"])
    unique = list(dict.fromkeys(frame["gsm"]))
    meta = _metadata(ds, unique, characteristics)
    frame = frame.join(meta, on="gsm")
    if as_dataset:
        return frame, select.samples(ds, unique, missing="raise")
    return frame
