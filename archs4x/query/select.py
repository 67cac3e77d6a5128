"""Sample and gene selection on archs4x Datasets: search, ids, series, random, positions.

Every function takes a Dataset made by :func:`archs4x.open_dataset` (or any selection of
one) and returns a Dataset selected with ``ds.isel``, so ``counts`` stays lazy and a later
compute reads only the selected samples' chunks.  Nothing here asks Dask to compute:
metadata is matched on Arrow columns from :mod:`archs4x.query.metacache` (built once per
file, memory-mapped after) taken at the samples' positions, or on the coordinates' own
values for Datasets that are not file-backed (:func:`archs4x.query.columns.sample_column`).

No match gives an empty Dataset with the same variables and coordinates (0 samples),
never ``None``.  Unknown ids are reported (warning, error or silence: ``missing=``).
The same functions are available as ``ds.archs4.<name>`` (:mod:`archs4x.accessor`).
"""

from __future__ import annotations

import os
import random
import re
import sys
import warnings
from collections.abc import Iterable, Sequence
from types import FrameType
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow.compute as pc
import xarray as xr

from ..dims import SAMPLE, feature_dim
from ..errors import MissingIdsWarning
from .columns import resolve_sample_name, sample_column
from .matching import match

__all__ = [
    "DEFAULT_FIELDS",
    "SINGLE_CELL_FIELD",
    "Missing",
    "genes",
    "index",
    "rand",
    "remove_single_cell",
    "samples",
    "search",
    "series",
]

#: The fields :func:`search` looks in by default (those of archs4py ``meta.meta``).
DEFAULT_FIELDS = ("characteristics_ch1", "extract_protocol_ch1", "source_name_ch1", "title")
SINGLE_CELL_FIELD = "singlecellprobability"
Missing = Literal["warn", "raise", "ignore"]
_SHOW = 20


def _check_missing(missing: str) -> None:
    if missing not in ("warn", "raise", "ignore"):
        raise ValueError(f"missing must be 'warn', 'raise' or 'ignore', got {missing!r}")


def _report_missing(what: str, absent: Sequence[str], missing: str) -> None:
    if not len(absent) or missing == "ignore":
        return
    shown = ", ".join(map(str, absent[:_SHOW])) + (" ..." if len(absent) > _SHOW else "")
    msg = f"{len(absent)} {what} not found: {shown}"
    if missing == "raise":
        raise KeyError(msg)
    warnings.warn(msg, MissingIdsWarning, stacklevel=_caller_level())


def _caller_level() -> int:
    """``stacklevel`` pointing at the first frame outside archs4x (the user's call)."""
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    frame: FrameType | None = sys._getframe(1)
    level = 1
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(package):
        frame, level = frame.f_back, level + 1
    return level


def _as_list(ids: str | Iterable[str], what: str) -> list[str]:
    if isinstance(ids, str):
        return [ids]
    out = list(ids)
    bad = [i for i in out if not isinstance(i, str)]
    if bad:
        raise TypeError(f"{what} must be strings, got {bad[:3]!r}")
    return out


# --------------------------------------------------------------------------------------
# Selections
# --------------------------------------------------------------------------------------
def search(
    ds: xr.Dataset,
    term: str,
    fields: str | Sequence[str] = DEFAULT_FIELDS,
    *,
    regex: bool = True,
    case: bool = False,
    ignore_whitespace: bool = False,
    remove_sc: bool = False,
) -> xr.Dataset:
    """Samples whose metadata matches ``term`` in any of ``fields`` (lazy counts).

    Parameters
    ----------
    ds : xarray.Dataset
    term : str
        Regular expression (Python syntax), or literal text with ``regex=False``.
    fields : str or sequence of str
        Sample fields to look in; defaults to those of archs4py ``meta.meta``.  Fields the
        Dataset does not have raise KeyError.
    regex, case, ignore_whitespace
        See :func:`match`.  Matching is case-insensitive by default.
    remove_sc : bool, default False
        Keep only samples with ``singlecellprobability < 0.5``.

    Returns
    -------
    xarray.Dataset
        The matching samples in Dataset order (0 samples if none match).

    Raises
    ------
    ValueError
        Invalid regular expression.
    KeyError
        Unknown field (the message lists the available ones).

    Examples
    --------
    >>> import archs4x
    >>> ds = archs4x.open_dataset(archs4x.datasets.example_file())
    >>> hits = search(ds, "myoblast")
    >>> hits.sizes["sample"], hits.counts.chunks is not None
    (23, True)
    >>> search(ds, "no such tissue").sizes["sample"]
    0
    """
    matcher = match(term, regex=regex, case=case, ignore_whitespace=ignore_whitespace)
    names = [fields] if isinstance(fields, str) else list(fields)
    if not names:
        raise ValueError("fields must name at least one sample field")
    for name in names:
        resolve_sample_name(ds, name)  # KeyError before any work
    mask = np.zeros(ds.sizes[SAMPLE], dtype=bool)
    for name in names:
        mask |= matcher(sample_column(ds, name))
    if remove_sc:
        mask &= _bulk_mask(ds, 0.5)
    return ds.isel({SAMPLE: np.flatnonzero(mask)})


def samples(ds: xr.Dataset, ids: str | Iterable[str], *, missing: Missing = "warn") -> xr.Dataset:
    """Samples by GEO accession, in the order given.

    Parameters
    ----------
    ds : xarray.Dataset
    ids : str or iterable of str
        GSM ids; repeated ids are returned once, at their first position.
    missing : {"warn", "raise", "ignore"}
        What to do about ids not in ``ds``: warn (:class:`MissingIdsWarning`) listing
        them, raise KeyError listing them, or nothing.

    Examples
    --------
    >>> import archs4x
    >>> ds = archs4x.open_dataset(archs4x.datasets.example_file())
    >>> samples(ds, ["GSM1000008", "GSM1000000"]).sample.values.tolist()
    ['GSM1000008', 'GSM1000000']
    >>> samples(ds, ["GSM1000000", "GSM0"], missing="ignore").sizes["sample"]
    1
    """
    _check_missing(missing)
    wanted = pd.unique(np.asarray(_as_list(ids, "sample ids"), dtype=object))
    index_ = ds.indexes[SAMPLE]
    if index_.is_unique:
        pos = index_.get_indexer(wanted)
    else:  # duplicated ids in the file: take the first occurrence of each
        first = pd.Series(np.arange(len(index_)), index=index_)
        first = first[~first.index.duplicated()]
        pos = first.reindex(wanted).fillna(-1).to_numpy(dtype=np.int64)
    _report_missing("sample ids", [w for w, p in zip(wanted, pos, strict=True) if p < 0], missing)
    return ds.isel({SAMPLE: pos[pos >= 0]})


def series(ds: xr.Dataset, gse: str | Iterable[str], *, missing: Missing = "warn") -> xr.Dataset:
    """Samples of one or more GEO series, including samples listed in several series.

    ``series_id`` may hold several series joined by commas (``"GSE1,GSE2"``); a sample
    belongs to each of them.

    Parameters
    ----------
    ds : xarray.Dataset
    gse : str or iterable of str
        Series accession(s).
    missing : {"warn", "raise", "ignore"}
        What to do about series with no sample in ``ds``.

    Examples
    --------
    >>> import archs4x
    >>> ds = archs4x.open_dataset(archs4x.datasets.example_file())
    >>> multi = str(ds.series_id.values[[("," in s) for s in ds.series_id.values]][0])
    >>> second = multi.split(",")[1]
    >>> bool((series(ds, second).series_id == multi).any())
    True
    """
    _check_missing(missing)
    wanted = [g.strip() for g in _as_list(gse, "series ids")]
    col = sample_column(ds, "series_id")
    mask = np.zeros(len(col), dtype=bool)
    absent = []
    for g in dict.fromkeys(wanted):
        pattern = rf"(?:^|,)\s*{re.escape(g)}\s*(?:,|$)"
        hit = np.asarray(pc.match_substring_regex(col, pattern, ignore_case=True).to_numpy(
            zero_copy_only=False), dtype=bool)  # fmt: skip
        if not hit.any():
            absent.append(g)
        mask |= hit
    _report_missing("series", absent, missing)
    return ds.isel({SAMPLE: np.flatnonzero(mask)})


def _bulk_mask(ds: xr.Dataset, threshold: float) -> np.ndarray:
    try:
        prob = sample_column(ds, SINGLE_CELL_FIELD)
    except KeyError:
        raise KeyError(
            f"this Dataset has no {SINGLE_CELL_FIELD!r} field, so single-cell samples "
            "cannot be removed"
        ) from None
    values = np.asarray(prob.to_numpy(zero_copy_only=False), dtype=float)
    return values < threshold


def remove_single_cell(ds: xr.Dataset, threshold: float = 0.5) -> xr.Dataset:
    """Keep samples whose ``singlecellprobability`` is below ``threshold`` (as archs4py).

    Samples with an unknown (NaN) probability are removed.

    Examples
    --------
    >>> import archs4x
    >>> ds = archs4x.open_dataset(archs4x.datasets.example_file())
    >>> bulk = remove_single_cell(ds)
    >>> bool((bulk.singlecellprobability < 0.5).all()), bulk.sizes["sample"] < ds.sizes["sample"]
    (True, True)
    """
    if not 0.0 <= float(threshold) <= 1.0:
        raise ValueError(f"threshold must be between 0 and 1, got {threshold!r}")
    return ds.isel({SAMPLE: np.flatnonzero(_bulk_mask(ds, float(threshold)))})


def rand(ds: xr.Dataset, n: int, *, seed: int = 1, remove_sc: bool = False) -> xr.Dataset:
    """``n`` samples drawn at random without replacement, in Dataset order.

    The draw uses its own ``random.Random(seed)`` (the global RNG is neither used nor
    changed) with the same algorithm as archs4py, so ``rand(ds, n, seed=s)`` on a whole
    file picks the samples ``archs4py.data.rand(file, n, seed=s)`` picks.

    Parameters
    ----------
    ds : xarray.Dataset
    n : int
        Number of samples, ``0 <= n <=`` the number available.
    seed : int, default 1
    remove_sc : bool, default False
        Draw only from samples with ``singlecellprobability < 0.5``.

    Raises
    ------
    ValueError
        ``n`` is negative or larger than the number of samples available.

    Examples
    --------
    >>> import archs4x
    >>> ds = archs4x.open_dataset(archs4x.datasets.example_file())
    >>> a, b = rand(ds, 5, seed=7), rand(ds, 5, seed=7)
    >>> a.sizes["sample"], bool((a.sample == b.sample).all())
    (5, True)
    """
    if isinstance(n, bool) or not isinstance(n, int | np.integer):
        raise TypeError(f"n must be an int, got {type(n).__name__}")
    candidates = np.arange(ds.sizes[SAMPLE])
    if remove_sc:
        candidates = candidates[_bulk_mask(ds, 0.5)]
    if n < 0 or n > candidates.size:
        what = "non-single-cell samples" if remove_sc else "samples"
        raise ValueError(f"cannot draw {n} samples: the Dataset has {candidates.size} {what}")
    picked = random.Random(seed).sample(range(candidates.size), int(n))
    return ds.isel({SAMPLE: np.sort(candidates[np.asarray(picked, dtype=np.int64)])})


def _positions(idx: Any, size: int, what: str) -> np.ndarray:
    arr = np.asarray(idx)
    if arr.dtype == bool:
        if arr.shape != (size,):
            raise IndexError(f"boolean {what} mask has shape {arr.shape}, expected ({size},)")
        return np.flatnonzero(arr)
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.size == 0:
        return np.zeros(0, dtype=np.int64)
    if arr.ndim != 1 or arr.dtype.kind not in "iu":
        raise TypeError(f"{what} positions must be a 1-D sequence of ints, got {idx!r:.80}")
    bad = arr[(arr < 0) | (arr >= size)]
    if bad.size:
        raise IndexError(f"{what} positions out of range 0..{size - 1}: {bad[:_SHOW].tolist()}")
    return arr.astype(np.int64)


def index(ds: xr.Dataset, sample_idx: Any, gene_idx: Any = None) -> xr.Dataset:
    """Select samples (and optionally genes/transcripts) by position, in the order given.

    Parameters
    ----------
    ds : xarray.Dataset
    sample_idx : sequence of int or boolean mask
        Sample positions, ``0 <= i < n_samples``.
    gene_idx : sequence of int or boolean mask, optional
        Feature (gene or transcript) positions; all when omitted.

    Raises
    ------
    IndexError
        A position is out of range (the message lists them).

    Examples
    --------
    >>> import archs4x
    >>> ds = archs4x.open_dataset(archs4x.datasets.example_file())
    >>> index(ds, [3, 1], gene_idx=[0, 1, 2]).counts.shape
    (3, 2)
    """
    out = ds.isel({SAMPLE: _positions(sample_idx, ds.sizes[SAMPLE], "sample")})
    if gene_idx is not None:
        fdim = feature_dim(ds)
        out = out.isel({fdim: _positions(gene_idx, ds.sizes[fdim], fdim)})
    return out


def genes(ds: xr.Dataset, symbols: str | Iterable[str], *, missing: Missing = "warn") -> xr.Dataset:
    """Genes (or transcripts) by symbol: every row carrying each symbol.

    About 3% of symbols belong to several Ensembl genes; all of them are returned, in the
    order of ``symbols`` and, within one symbol, in Dataset order.  Matching is exact and
    case-sensitive (human symbols are upper case, mouse ones capitalised).  Select by
    Ensembl id with ``ds.sel(gene=[...])``.

    Parameters
    ----------
    ds : xarray.Dataset
    symbols : str or iterable of str
    missing : {"warn", "raise", "ignore"}
        What to do about symbols not in ``ds``.

    Examples
    --------
    >>> import archs4x
    >>> ds = archs4x.open_dataset(archs4x.datasets.example_file())
    >>> genes(ds, ["GAPDH", "ACTB"]).symbol.values.tolist()
    ['GAPDH', 'ACTB']
    """
    _check_missing(missing)
    fdim = feature_dim(ds)
    if "symbol" not in ds.coords:
        raise KeyError(f"this Dataset has no 'symbol' coordinate on {fdim!r}")
    wanted = pd.Index(pd.unique(np.asarray(_as_list(symbols, "symbols"), dtype=object)))
    code = wanted.get_indexer(np.asarray(ds.coords["symbol"].values, dtype=object))
    rows = np.flatnonzero(code >= 0)
    rows = rows[np.argsort(code[rows], kind="stable")]
    found = set(code[rows].tolist())
    _report_missing("symbols", [s for i, s in enumerate(wanted) if i not in found], missing)
    return ds.isel({fdim: rows})
