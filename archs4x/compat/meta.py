"""archs4py ``meta`` module: sample metadata as pandas DataFrames (samples x fields).

Same names, arguments, defaults and return shapes as ``archs4py.meta``.  Differences
(see the README): rows of ``samples`` come in the order requested and unknown ids are
reported, ``series`` includes multi-series samples, an invalid regular expression or an
unknown field raises (ValueError / KeyError listing the fields) instead of crashing or
being skipped, and numeric fields keep their numeric dtype.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

import pandas as pd

from ._frames import META_FIELDS, SEARCH_FIELDS, meta_frame, open_file

__all__ = [
    "field",
    "get_meta",
    "get_meta_gene_field",
    "get_meta_sample_field",
    "meta",
    "samples",
    "series",
]


def meta(
    file: str | os.PathLike,
    search_term: str,
    meta_fields: Iterable[str] = tuple(SEARCH_FIELDS),
    remove_sc: bool = False,
    silent: bool = False,
) -> pd.DataFrame:
    """Metadata (``meta_fields``) of the samples matching ``search_term`` in those fields.

    Case-insensitive regular expression search, as archs4py; rows in file order.

    Examples
    --------
    >>> from archs4x.compat import meta
    >>> from archs4x.datasets import example_file
    >>> df = meta.meta(example_file(), "myoblast", meta_fields=["source_name_ch1"])
    >>> df.shape, df.iloc[0, 0]
    ((23, 1), 'skeletal muscle myoblast')
    """
    fields = list(meta_fields)
    ds = open_file(file)
    return meta_frame(ds.archs4.search(search_term, fields, remove_sc=remove_sc), fields)


def samples(
    file: str | os.PathLike,
    samples: Iterable[str],
    meta_fields: Iterable[str] = tuple(META_FIELDS),
    silent: bool = False,
) -> pd.DataFrame:
    """Metadata of samples by GSM id, in the order given; unknown ids are warned about.

    Examples
    --------
    >>> from archs4x.compat import meta
    >>> from archs4x.datasets import example_file
    >>> meta.samples(example_file(), ["GSM1000003", "GSM1000000"]).index.tolist()
    ['GSM1000003', 'GSM1000000']
    """
    ds = open_file(file)
    return meta_frame(ds.archs4.samples(_ids(samples)), list(meta_fields))


def series(
    file: str | os.PathLike,
    series: str,
    meta_fields: Iterable[str] = tuple(META_FIELDS),
    silent: bool = False,
) -> pd.DataFrame:
    """Metadata of every sample of a GEO series (multi-series samples included).

    Examples
    --------
    >>> from archs4x.compat import meta
    >>> from archs4x.datasets import example_file
    >>> meta.series(example_file(), "GSE10000").columns.tolist()[:2]
    ['geo_accession', 'series_id']
    """
    ds = open_file(file)
    return meta_frame(ds.archs4.series(series), list(meta_fields))


def field(file: str | os.PathLike, field: str) -> list:
    """Every value of one sample, gene or transcript field, as a list (file order).

    Raises
    ------
    KeyError
        Unknown field; the message lists the available ones.

    Examples
    --------
    >>> from archs4x.compat import meta
    >>> from archs4x.datasets import example_file
    >>> meta.field(example_file(), "symbol")[:3]
    ['ACTB', 'GAPDH', 'MYOD1']
    """
    ds = open_file(file)
    return ds.archs4.field(field).tolist()


def get_meta(file: str | os.PathLike) -> dict[str, list]:
    """Every sample field of the file: ``{field: [values in file order]}``, as archs4py.

    Text is decoded; numbers stay numbers.  The GSM ids are ``"geo_accession"``.

    Examples
    --------
    >>> from archs4x.compat import meta
    >>> from archs4x.datasets import example_file
    >>> m = meta.get_meta(example_file())
    >>> len(m["geo_accession"]), m["geo_accession"][0]
    (400, 'GSM1000000')
    """
    ds = open_file(file)
    return {name: ds.archs4.field(name).tolist() for name in _stored_sample_fields(file)}


def _stored_sample_fields(file: str | os.PathLike) -> tuple[str, ...]:
    """The names under ``meta/samples`` (``sample`` is the SRA field, as in archs4py)."""
    from ..storage.sources import open_source

    return open_source(file).layout().sample_fields


def get_meta_sample_field(file: str | os.PathLike, field: str) -> list:
    """One sample field (stored name) as a list, in file order.

    Examples
    --------
    >>> from archs4x.compat import meta
    >>> from archs4x.datasets import example_file
    >>> meta.get_meta_sample_field(example_file(), "geo_accession")[:2]
    ['GSM1000000', 'GSM1000003']
    """
    ds = open_file(file)
    known = _stored_sample_fields(file)
    if field not in known:
        raise KeyError(f"no sample field {field!r}; available: {', '.join(known)}")
    return ds.archs4.field(field).tolist()


def get_meta_gene_field(file: str | os.PathLike, field: str) -> list:
    """One gene field (stored name: ``symbol``, ``ensembl_gene``, ``biotype``...) as a list.

    Examples
    --------
    >>> from archs4x.compat import meta
    >>> from archs4x.datasets import example_file
    >>> meta.get_meta_gene_field(example_file(), "symbol")[:3]
    ['ACTB', 'GAPDH', 'MYOD1']
    """
    from ..storage.sources import open_source

    ds = open_file(file)
    layout = open_source(file).layout()
    if layout.feature_group != "meta/genes" or field not in layout.feature_fields:
        raise KeyError(
            f"no gene field {field!r}; available: {', '.join(layout.feature_fields) or 'none'}"
        )
    return ds.archs4.field(field).tolist()


def _ids(ids: str | Iterable[str]) -> list[str]:
    """One GSM id or several: a single string is one id (archs4py would split it into
    characters and match nothing)."""
    return [ids] if isinstance(ids, str) else list(ids)
