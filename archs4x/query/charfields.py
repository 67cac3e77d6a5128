"""The keys of ``characteristics_ch1``: listed with counts, or added as sample coordinates.

:func:`characteristics` tells what the characteristics of a selection hold (keys,
spellings, counts, example values); :func:`with_characteristics` adds chosen keys as
coordinates on ``sample``, loaded lazily (a file's parse is read when the values are
first used), so ``filter``, ``facets``, ``groupby``, ``meta`` and plain xarray see them.
Parsing is :mod:`archs4x.query.characteristics`; a file's parse is cached on disk by
:mod:`archs4x.query.charcache`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
from xarray.core import indexing

from ..backends.arrays import OuterIndexedBackendArray
from ..dims import SAMPLE
from .characteristics import NUMERIC_KEYS, canonical_key
from .charcache import characteristics_source, file_characteristic, parsed_characteristics
from .coded import Coded
from .columns import FIELD_ENCODING
from .fields import CHARACTERISTIC_ENCODING

__all__ = ["CharacteristicArray", "characteristics", "with_characteristics"]


def characteristics(ds: xr.Dataset, top: int | None = None, *, examples: int = 3) -> pd.DataFrame:
    """The keys found in ``characteristics_ch1`` of the samples of ``ds``, with counts.

    Parameters
    ----------
    ds : xarray.Dataset
        A file's Dataset or any selection of it.
    top : int, optional
        Only the ``top`` keys given by the most samples.
    examples : int, default 3
        Most common values to show per key.

    Returns
    -------
    pandas.DataFrame
        Indexed by canonical key (usable as a field by ``filter`` and ``facets``), sorted
        by ``samples``: ``samples`` (samples giving the key), ``missing`` (of those, with
        a missing value such as "NA"), ``distinct`` (distinct values), ``spellings`` (how
        the key is written, most used first) and ``examples`` (most common values).

    Raises
    ------
    KeyError
        ``ds`` has no ``characteristics_ch1`` field.

    Examples
    --------
    >>> import archs4x
    >>> ds = archs4x.open_dataset(archs4x.datasets.example_file())
    >>> keys = characteristics(ds, top=3)
    >>> keys.index.tolist()
    ['tissue', 'treatment', 'cell_type']
    >>> keys.columns.tolist()
    ['samples', 'missing', 'distinct', 'spellings', 'examples']
    >>> characteristics(ds.archs4.series("GSE64016"))["examples"]["cell_cycle_phase"]
    ['G1', 'G2/M', 'S']
    """
    if top is not None and (isinstance(top, bool) or not isinstance(top, int) or top < 0):
        raise ValueError(f"top must be a non-negative int or None, got {top!r}")
    parsed, positions = parsed_characteristics(ds)
    table = parsed.summary(positions, examples=examples)
    return table if top is None else table.iloc[:top]


class CharacteristicArray(OuterIndexedBackendArray):
    """One parsed characteristic of every sample of a file, read on first use.

    Text keys are ``object`` arrays (``None`` where missing), numeric keys float64 (NaN).
    """

    def __init__(self, source: Any, repair: bool, key: str, n: int) -> None:
        self.source = source
        self.repair = repair
        self.key = key
        self.shape = (int(n),)
        self.dtype = np.dtype(np.float64 if key in NUMERIC_KEYS else object)

    def _raw_indexing_method(self, key: tuple) -> np.ndarray:
        (k,) = key
        column = file_characteristic(self.source, self.repair, self.key)
        if isinstance(column, Coded):
            values = np.asarray([*column.values.to_pylist(), None], dtype=object)
            return values[column.codes[k]]
        return np.asarray(column[k], dtype=np.float64)


def _name_for(key: str, ds: xr.Dataset) -> str:
    taken = key in ds.coords and ds.coords[key].encoding.get(CHARACTERISTIC_ENCODING) != key
    return f"characteristics.{key}" if taken or key == SAMPLE else key


def with_characteristics(
    ds: xr.Dataset,
    keys: str | Sequence[str] | None = None,
    *,
    min_fraction: float = 0.01,
) -> xr.Dataset:
    """``ds`` with characteristic keys as coordinates on ``sample`` (loaded lazily).

    Parameters
    ----------
    ds : xarray.Dataset
    keys : str or sequence of str, optional
        Keys to add, by canonical name or any spelling (``"Cell types"``); by default
        every key given by at least ``min_fraction`` of the samples.
    min_fraction : float, default 0.01
        See ``keys``.

    Returns
    -------
    xarray.Dataset
        A Dataset with one coordinate per key (text: ``object`` with ``None`` where
        missing; ages: float64 years, NaN where missing).  A key whose name is already
        a coordinate (say ``type``) is added as ``characteristics.<key>``.  For a file,
        values are read when first used, and stay right through later selections.

    Raises
    ------
    KeyError
        A key no sample of ``ds`` gives (the message lists the keys found), or no
        ``characteristics_ch1`` field.

    Examples
    --------
    >>> import archs4x
    >>> ds = archs4x.open_dataset(archs4x.datasets.example_file())
    >>> ds2 = with_characteristics(ds, ["tissue", "age"])
    >>> ds2.tissue.dtype, ds2.age.dtype
    (dtype('O'), dtype('float64'))
    >>> one = ds2.sel(sample="GSM1482938")
    >>> str(one.tissue.values), float(one.age)
    ('liver', 54.0)
    >>> ds2.archs4.meta(["tissue", "age"]).loc["GSM1482938"].to_dict()
    {'tissue': 'liver', 'age': 54.0}
    """
    parsed, positions = parsed_characteristics(ds)
    found = list(parsed.keys)
    if keys is None:
        table = parsed.summary(positions, examples=0)
        n = max(ds.sizes[SAMPLE], 1)
        wanted = [k for k, s in table["samples"].items() if s / n >= min_fraction]
    else:
        wanted = []
        for key in [keys] if isinstance(keys, str) else list(keys):
            name = key if key in found else canonical_key(key)[0]
            if name not in found:
                raise KeyError(f"no sample of this Dataset gives the characteristic {key!r}; "
                               f"keys found: {', '.join(found)}")  # fmt: skip
            wanted.append(name)
    located = characteristics_source(ds)
    coords: dict[str, xr.Variable] = {}
    for key in dict.fromkeys(wanted):
        if located is not None:
            source, repair, _ = located
            array = CharacteristicArray(source, repair, key, len(parsed))
            encoding = {CHARACTERISTIC_ENCODING: key, FIELD_ENCODING[1]: source,
                        FIELD_ENCODING[2]: repair}  # fmt: skip
            var = xr.Variable((SAMPLE,), indexing.LazilyIndexedArray(array), encoding=encoding)
            var = var[positions]
        else:
            column = parsed.field(key)
            if isinstance(column, Coded):
                values = np.asarray([*column.values.to_pylist(), None], dtype=object)
                column = values[column.codes]
            var = xr.Variable((SAMPLE,), column, encoding={CHARACTERISTIC_ENCODING: key})
        var.attrs["long_name"] = f"{key} (parsed from characteristics_ch1)"
        coords[_name_for(key, ds)] = var
    return ds.assign_coords(coords)
