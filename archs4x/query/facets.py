"""``facets``: what a selection contains, as value counts, before any counts are read.

Counts run over the distinct values of each field (see :mod:`archs4x.query.coded`): one
``bincount`` over the samples, whatever their number.  Any typed field works
(:mod:`archs4x.query.fields`): stored fields, dates, ``series_id`` (each series of a
sample counted, so counts may add up to more than the samples) and every key parsed from
``characteristics_ch1``.  Missing values (null, NaN, empty text, a key the sample does
not give) are counted apart, in a last row whose value is ``None``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import xarray as xr

from ..dims import SAMPLE
from .fields import DATE, MULTI, TypedColumn, typed_column

__all__ = ["facet", "facets"]

_COLUMNS = ["value", "count", "fraction"]


def _value_counts(col: TypedColumn) -> tuple[pa.Array, np.ndarray, int]:
    """``(values, counts, missing)`` of a typed column (values as an Arrow array)."""
    if col.numbers is not None:
        present = col.numbers[~np.isnan(col.numbers)]
        values, counts = np.unique(present, return_counts=True)
        if col.kind == DATE:
            shown = pa.array(values.astype(np.int32), pa.int32()).cast(pa.date32())
        elif values.size and np.all(values == np.round(values)) and np.abs(values).max() < 2**53:
            shown = pa.array(values.astype(np.int64))
        else:
            shown = pa.array(values)
        return shown, counts.astype(np.int64), int(col.numbers.size - present.size)
    coded, blank = col.require_coded(), col.require_blank()
    per_value = coded.counts()
    missing = int(np.count_nonzero(coded.codes < 0)) + int(per_value[blank].sum())
    if col.kind == MULTI:
        m = col.require_members()
        counts = np.bincount(m.codes, weights=per_value[m.of], minlength=len(m.values))
        return m.values, counts.astype(np.int64), missing
    keep = np.flatnonzero(~blank)
    return coded.values.take(pa.array(keep)), per_value[keep], missing


def facet(ds: xr.Dataset, field: str, top: int | None = None) -> pd.DataFrame:
    """Value counts of one field over the samples of ``ds`` (see :func:`facets`).

    Examples
    --------
    >>> import archs4x
    >>> ds = archs4x.open_dataset(archs4x.datasets.example_file())
    >>> facet(ds.archs4.series("GSE64016"), "cell_cycle_phase")
                  value  count  fraction
    0                G1      3      0.25
    1              G2/M      3      0.25
    2                 S      3      0.25
    3    unsynchronized      3      0.25
    """
    if top is not None and (isinstance(top, bool) or not isinstance(top, int) or top < 0):
        raise ValueError(f"top must be a non-negative int or None, got {top!r}")
    col = typed_column(ds, field)
    values, counts, missing = _value_counts(col)
    n = ds.sizes[SAMPLE]
    # by count, ties by value (code points, numbers, dates): independent of the file order
    seen = pa.table({"value": values, "count": pa.array(counts, pa.int64())})
    seen = seen.filter(pc.greater(seen["count"], 0))
    seen = seen.sort_by([("count", "descending"), ("value", "ascending")])
    distinct, total = seen.num_rows, int(pc.sum(seen["count"]).as_py() or 0)
    if top is not None:
        seen = seen.slice(0, top)
    table = pd.DataFrame({"value": pd.Series(seen["value"].to_pylist(), dtype=object),
                          "count": seen["count"].to_numpy()})  # fmt: skip
    other = total - int(table["count"].sum())
    if missing:
        table = pd.concat([table, pd.DataFrame({"value": [None], "count": [missing]})])
    table = table.reset_index(drop=True)
    table["count"] = table["count"].astype(np.int64)
    table["fraction"] = table["count"] / n if n else np.nan
    table.attrs.update(field=field, kind=col.kind, samples=n, distinct=distinct,
                       missing=missing, other=other)  # fmt: skip
    return table[_COLUMNS]


def facets(
    ds: xr.Dataset,
    fields: str | Sequence[str],
    top: int | None = None,
    *,
    tidy: bool = False,
) -> pd.DataFrame | dict[str, pd.DataFrame]:
    """Value counts of metadata fields over the samples of ``ds`` (any selection).

    Parameters
    ----------
    ds : xarray.Dataset
    fields : str or sequence of str
        Sample fields or characteristic keys (:func:`archs4x.query.fields.typed_column`).
    top : int, optional
        Keep the ``top`` most common values of each field (the missing row is kept).
    tidy : bool, default False
        One DataFrame with a ``field`` column instead of one DataFrame per field.

    Returns
    -------
    pandas.DataFrame or dict of DataFrame
        For one field (a str), its table; for several, ``{field: table}`` (or one tidy
        table).  A table has columns ``value``, ``count`` (samples with the value; for
        ``series_id``, each series of a sample counts), ``fraction`` (of the samples),
        sorted by count then value; missing values are counted in a last row whose value
        is ``None``.  ``attrs`` hold ``distinct`` (values), ``missing``, ``samples`` and
        ``other`` (count of the values left out by ``top``).

    Raises
    ------
    KeyError
        Unknown field (the message lists close matches).

    Examples
    --------
    >>> import archs4x
    >>> ds = archs4x.open_dataset(archs4x.datasets.example_file())
    >>> t = facets(ds, ["tissue", "series_id"], top=3)
    >>> list(t), t["tissue"].columns.tolist()
    (['tissue', 'series_id'], ['value', 'count', 'fraction'])
    >>> facets(ds.archs4.search("hepatocyte"), "tissue")
       value  count  fraction
    0  liver     17  0.629630
    1   None     10  0.370370
    """
    if isinstance(fields, str):
        names, single = [fields], True
    else:
        names, single = list(dict.fromkeys(fields)), False
    if not names:
        raise ValueError("facets needs at least one field")
    tables = {name: facet(ds, name, top) for name in names}
    if tidy:
        parts = [t.assign(field=name)[["field", *_COLUMNS]] for name, t in tables.items()]
        return pd.concat(parts, ignore_index=True)
    return tables[names[0]] if single else tables
