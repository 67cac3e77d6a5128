"""archs4py ``data`` module: counts as pandas DataFrames (genes x samples).

Same names, arguments, defaults and return shapes as ``archs4py.data``: a DataFrame of
uint32 counts with gene symbols (transcript ids for transcript files) as rows and GSM
ids as columns.  Differences (all deliberate, see the README): columns come in the
order requested, unknown ids are reported (:class:`archs4x.query.MissingIdsWarning`),
``series`` includes samples listed in several series, nothing matching gives an empty
DataFrame instead of ``None``, a failed read raises instead of returning zeros, an invalid
regular expression raises ValueError, and ``rand`` never touches the global RNG (it
still picks the same samples as archs4py for the same seed).  ``silent=False`` shows a
progress bar on stderr while counts are read.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

import pandas as pd

from ._frames import META_FIELDS, counts_frame, open_file

__all__ = ["index", "meta", "rand", "samples", "series"]


def rand(
    file: str | os.PathLike,
    number: int,
    seed: int = 1,
    remove_sc: bool = False,
    silent: bool = False,
) -> pd.DataFrame:
    """Counts of ``number`` random samples, in file order.

    Examples
    --------
    >>> from archs4x.compat import data
    >>> from archs4x.datasets import example_file
    >>> data.rand(example_file(), 3, seed=2, silent=True).shape
    (4500, 3)
    """
    ds = open_file(file)
    return counts_frame(ds.archs4.rand(number, seed=seed, remove_sc=remove_sc), silent=silent)


def index(
    file: str | os.PathLike,
    sample_idx: Sequence[int],
    gene_idx: Sequence[int] | None = (),
    silent: bool = False,
) -> pd.DataFrame:
    """Counts of samples (and genes) by position, in the order given.

    ``gene_idx`` empty or None means every gene.

    Examples
    --------
    >>> from archs4x.compat import data
    >>> from archs4x.datasets import example_file
    >>> df = data.index(example_file(), [5, 1], gene_idx=[0, 1], silent=True)
    >>> df.index.tolist(), df.columns.tolist(), str(df.dtypes.iloc[0])
    (['ACTB', 'GAPDH'], ['GSM1000017', 'GSM1000003'], 'uint32')
    """
    genes = None if gene_idx is None or len(gene_idx) == 0 else list(gene_idx)
    ds = open_file(file)
    return counts_frame(ds.archs4.index(list(sample_idx), genes), silent=silent)


def meta(
    file: str | os.PathLike,
    search_term: str,
    meta_fields: Iterable[str] = tuple(META_FIELDS),
    remove_sc: bool = False,
    silent: bool = False,
) -> pd.DataFrame:
    """Counts of the samples whose metadata matches ``search_term`` (case-insensitive regex).

    Examples
    --------
    >>> from archs4x.compat import data
    >>> from archs4x.datasets import example_file
    >>> data.meta(example_file(), "myoblast", silent=True).shape
    (4500, 23)
    """
    ds = open_file(file)
    hits = ds.archs4.search(search_term, list(meta_fields), remove_sc=remove_sc)
    return counts_frame(hits, silent=silent)


def samples(
    file: str | os.PathLike, sample_ids: Iterable[str], silent: bool = False
) -> pd.DataFrame:
    """Counts of samples by GSM id, in the order given; unknown ids are warned about.

    Examples
    --------
    >>> from archs4x.compat import data
    >>> from archs4x.datasets import example_file
    >>> data.samples(example_file(), ["GSM1000003", "GSM1000000"], silent=True).columns.tolist()
    ['GSM1000003', 'GSM1000000']
    """
    ds = open_file(file)
    return counts_frame(ds.archs4.samples(_ids(sample_ids)), silent=silent)


def series(file: str | os.PathLike, series_id: str, silent: bool = False) -> pd.DataFrame:
    """Counts of every sample of a GEO series (multi-series samples included).

    Examples
    --------
    >>> from archs4x.compat import data
    >>> from archs4x.datasets import example_file
    >>> data.series(example_file(), "GSE10000", silent=True).shape[1] > 0
    True
    """
    ds = open_file(file)
    return counts_frame(ds.archs4.series(series_id), silent=silent)


def _ids(ids: str | Iterable[str]) -> list[str]:
    """One GSM id or several: a single string is one id (archs4py would split it into
    characters and match nothing)."""
    return [ids] if isinstance(ids, str) else list(ids)
