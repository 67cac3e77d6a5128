"""Sample and feature metadata out of a Dataset, as pandas objects."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import xarray as xr

from ..dims import SAMPLE, feature_dim
from ..storage.layout import SAMPLE_ID_FIELD
from .columns import sample_column, sample_fields

__all__ = ["field", "meta"]


def _column_values(col: pa.Array | pa.ChunkedArray) -> np.ndarray:
    if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
        # pandas conversion shares one str object per distinct value: faster, smaller
        return np.asarray(col.to_pandas(), dtype=object)
    return col.to_numpy(zero_copy_only=False)


def meta(ds: xr.Dataset, fields: str | Sequence[str] | None = None) -> pd.DataFrame:
    """Sample metadata of ``ds`` as a DataFrame (samples x fields, indexed by GSM id).

    Parameters
    ----------
    ds : xarray.Dataset
    fields : str or sequence of str, optional
        Fields to return (coordinate or stored names); every sample field when omitted.

    Examples
    --------
    >>> import archs4x
    >>> ds = archs4x.open_dataset(archs4x.datasets.example_file())
    >>> df = meta(ds.isel(sample=[1, 0]), ["series_id", "title"])
    >>> df.shape, df.index.tolist()
    ((2, 2), ['GSM1000003', 'GSM1000000'])
    """
    if fields is None:
        names = [SAMPLE_ID_FIELD, *sample_fields(ds)]
    else:
        names = [fields] if isinstance(fields, str) else list(fields)
    data = {name: _column_values(sample_column(ds, name)) for name in names}
    return pd.DataFrame(data, index=pd.Index(np.asarray(ds.indexes[SAMPLE]), name=SAMPLE))


_FEATURE_ALIASES = {
    "gene_symbol": "symbol",
    "ensembl_gene": "index",
    "ensembl_gene_id": "index",
    "ensembl_id": "index",
}


def field(ds: xr.Dataset, name: str) -> pd.Series:
    """All values of one sample, gene or transcript field, as a Series.

    Stored names work (``geo_accession``, ``gene_symbol``, ``ensembl_gene``...) as well as
    coordinate names.  ``"sample"`` is the stored SRA field (coordinate ``sample_name``),
    as in archs4py; the GSM ids are ``"geo_accession"``.

    Returns
    -------
    pandas.Series
        Indexed by sample ids for sample fields, by feature ids for gene or transcript
        fields.

    Raises
    ------
    KeyError
        Unknown field; the message lists the available sample and feature fields.

    Examples
    --------
    >>> import archs4x
    >>> ds = archs4x.open_dataset(archs4x.datasets.example_file())
    >>> field(ds, "symbol").iloc[:2].tolist()
    ['ACTB', 'GAPDH']
    >>> field(ds, "title").index[0]
    'GSM1000000'
    """
    fdim = feature_dim(ds)
    feature_coords: list[Any] = [k for k, v in ds.coords.items() if v.dims == (fdim,)]
    sample_names = [SAMPLE_ID_FIELD, *sample_fields(ds)]
    if name in sample_names or name == SAMPLE:
        col = _column_values(sample_column(ds, name))
        return pd.Series(col, index=pd.Index(np.asarray(ds.indexes[SAMPLE]), name=SAMPLE),
                         name=name)  # fmt: skip
    target = name if name in feature_coords else _FEATURE_ALIASES.get(name)
    if target == "index" and name not in feature_coords:
        target = fdim
    if target is not None and target in feature_coords:
        values = np.asarray(ds.coords[target].values)
        return pd.Series(values, index=pd.Index(np.asarray(ds.indexes[fdim]), name=fdim),
                         name=name)  # fmt: skip
    raise KeyError(
        f"{name!r} is not a field of this Dataset; available sample fields: "
        f"{', '.join(sample_names)}; available {fdim} fields: {', '.join(feature_coords)}"
    )
