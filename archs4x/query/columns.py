"""Sample metadata columns of a Dataset, aligned with the samples it holds.

:func:`sample_column` returns one field of ``ds`` as an Arrow array, in ``ds``'s sample
order, *without asking Dask to compute*.  When the ``sample`` index remembers where its
samples are in the source (:func:`archs4x.backends.sample_positions`) and the coordinate
is the source's stored field, the column comes from the metadata cache and is taken at
those positions.  Anything else (relabelled samples, coordinates replaced by the user,
in-memory Datasets) is read from the coordinate's own values.  Either way, the rows are
those of the samples the Dataset holds.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import xarray as xr

from ..backends.positions import sample_positions
from ..dims import SAMPLE
from ..storage.layout import SAMPLE_ID_FIELD
from .metacache import MetaCache

__all__ = ["FIELD_ENCODING", "resolve_sample_name", "sample_column", "sample_fields"]

#: Encoding keys marking a coordinate as a stored field of a source (set by the backends).
FIELD_ENCODING = ("archs4x_field", "archs4x_source", "archs4x_repair")


def sample_fields(ds: xr.Dataset) -> list[str]:
    """Names of the sample metadata coordinates of ``ds`` (the GSM index excluded).

    Examples
    --------
    >>> import archs4x
    >>> ds = archs4x.open_dataset(archs4x.datasets.example_file())
    >>> "series_id" in sample_fields(ds), "sample" in sample_fields(ds)
    (True, False)
    """
    return [str(k) for k, v in ds.coords.items() if v.dims == (SAMPLE,) and k != SAMPLE]


def resolve_sample_name(ds: xr.Dataset, name: str) -> str:
    """The coordinate holding sample field ``name`` (stored names accepted).

    ``geo_accession`` is the ``sample`` index; ``sample`` is the stored SRA field
    (coordinate ``sample_name``) when the Dataset has it.

    Raises
    ------
    KeyError
        ``name`` is not a sample field (the message lists them).
    """
    if name in (SAMPLE_ID_FIELD, SAMPLE) and name not in sample_fields(ds):
        if name == SAMPLE and "sample_name" in ds.coords:
            return "sample_name"
        return SAMPLE
    if name in ds.coords and ds.coords[name].dims == (SAMPLE,):
        return name
    raise KeyError(
        f"{name!r} is not a sample field of this Dataset; available: "
        f"{', '.join([SAMPLE_ID_FIELD, *sorted(sample_fields(ds))])}"
    )


def _stored_field(var: xr.DataArray, source: Any) -> tuple[str, bool] | None:
    """``(field name, repaired)`` when ``var`` is ``source``'s stored field, as opened."""
    enc = var.encoding
    field = enc.get("archs4x_field")
    if field is None or enc.get("archs4x_source") != source:
        return None
    return str(field), bool(enc.get("archs4x_repair", False))


def _values(var: xr.DataArray) -> pa.Array:
    values = np.asarray(var.values)
    if values.dtype.kind in "USOT":
        values = values.astype(object) if values.dtype.kind != "O" else values
        return pa.array([None if v is None else str(v) for v in values], type=pa.large_string())
    return pa.array(values)


def sample_column(ds: xr.Dataset, name: str) -> pa.Array | pa.ChunkedArray:
    """One sample field of ``ds`` as an Arrow array aligned with ``ds``'s samples.

    Parameters
    ----------
    ds : xarray.Dataset
    name : str
        A sample coordinate name, or a stored field name (``geo_accession`` is the
        ``sample`` index, ``sample`` the SRA id coordinate ``sample_name``).

    Examples
    --------
    >>> import archs4x
    >>> ds = archs4x.open_dataset(archs4x.datasets.example_file())
    >>> sample_column(ds.isel(sample=[2, 0]), "geo_accession").to_pylist()
    ['GSM1000008', 'GSM1000000']
    >>> sample_column(ds.isel(sample=[2, 0]), "title").to_pylist()
    ['neuron_bulk_rep3', 'hematopoietic stem cell_bulk_rep1']
    """
    coord = resolve_sample_name(ds, name)
    if coord == SAMPLE:
        return pa.array(np.asarray(ds.indexes[SAMPLE], dtype=object), type=pa.large_string())
    var = ds.coords[coord]
    located = sample_positions(ds)
    if located is not None:
        positions, source = located
        stored = _stored_field(var, source)
        if stored is not None:
            field, repair = stored
            col = MetaCache(source, repair=repair).column(field)
            n = len(col)
            if positions.size == n and np.array_equal(positions, np.arange(n)):
                return col
            return col.take(pa.array(positions, pa.int64()))
    return _values(var)
