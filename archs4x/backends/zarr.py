"""Opening archs4x Zarr stores: the same Dataset as :func:`archs4x.open_dataset`."""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import xarray as xr
import zarr
from xarray.core import indexing

from ..dims import COUNTS, SAMPLE
from ..errors import IncompleteZarrError
from ..storage.zarrstore import (
    PROGRESS,
    STATE,
    ZarrStore,
    check_storage_options,
    is_url,
    open_array,
    open_group,
    store_name,
)
from .arrays import OuterIndexedBackendArray
from .counts import TARGET_CHUNK_BYTES, Archs4Array
from .positions import SamplePositionIndex

__all__ = ["open_zarr"]


def _plain(var: xr.Variable) -> xr.Variable:
    values = var.values
    if values.dtype.kind == "T":
        values = values.astype(object)
    return xr.Variable(var.dims, values, attrs=dict(var.attrs))


class ZarrFieldArray(OuterIndexedBackendArray):
    """One metadata field of an archs4x store, read by position (text as ``str`` objects)."""

    def __init__(self, source: ZarrStore, name: str, shape: tuple[int, ...], dtype) -> None:
        self.source = source
        self.name = name
        self.shape = tuple(shape)
        self.dtype = np.dtype(object) if np.dtype(dtype).kind in "OSUT" else np.dtype(dtype)

    def _raw_indexing_method(self, key: tuple) -> np.ndarray:
        self.source.check()
        arr = open_array(self.source.store, self.name, self.source.storage_options, "r")
        (k,) = key
        if isinstance(k, np.ndarray):
            values = np.asarray(arr.oindex[(k,)]) if k.size else np.asarray(arr[0:0])
        else:
            values = np.asarray(arr[k])
        return values.astype(object) if values.dtype.kind in "SUT" else values


def _dask_chunks(state: dict, shape: tuple[int, int], itemsize: int, user: dict, fdim: str):
    n_f, n_s = shape
    inner = tuple(state["chunks"])
    if state["layout"] == "sample":
        step = (state.get("shards") or inner)[1]
        k = max(1, TARGET_CHUNK_BYTES // (n_f * itemsize * step)) * step
        default = {fdim: n_f, SAMPLE: min(k, n_s)}
    else:
        step = inner[0]
        k = max(1, TARGET_CHUNK_BYTES // (n_s * itemsize * step)) * step
        default = {fdim: min(k, n_f), SAMPLE: n_s}
    return {d: user.get(d, default[d]) for d in (fdim, SAMPLE)}


def open_zarr(
    store: str | os.PathLike,
    *,
    chunks: dict[str, int] | None = None,
    storage_options: dict | None = None,
) -> xr.Dataset:
    """Open a store written by :func:`to_zarr`: the schema of :func:`archs4x.open_dataset`.

    Parameters
    ----------
    store : path or fsspec URL
    chunks : dict, optional
        Dask chunks of ``counts`` by dimension.  Default ~128 MiB blocks along the
        store's layout: all features x whole shards of samples (sample layout), or
        whole chunk rows of genes x all samples (gene layout).
    storage_options : dict, optional
        fsspec options for URL stores.

    Returns
    -------
    xarray.Dataset
        ``counts`` (Dask-backed; ``ds.isel(sample=...)`` reads only the chunks needed),
        ``sample`` indexed by GEO accession with every sample field as a (lazy)
        coordinate, feature coordinates in memory, ``meta/info`` as attrs.  The layout
        is in ``ds.counts.encoding["archs4x_layout"]``.

    Raises
    ------
    FileNotFoundError
        Nothing at ``store``.
    IncompleteZarrError
        The conversion into ``store`` did not finish (rerun :func:`to_zarr` to resume).
    ValueError
        ``store`` is not an archs4x Zarr store.

    Examples
    --------
    >>> import tempfile, archs4x
    >>> ds = archs4x.open_dataset(archs4x.datasets.example_file())
    >>> out = archs4x.to_zarr(ds, tempfile.mkdtemp() + "/s.zarr")
    >>> z = archs4x.open_zarr(out)
    >>> z.counts.dims, z.counts.encoding["archs4x_layout"], z.sample.values[0]
    (('gene', 'sample'), 'sample', 'GSM1000000')
    """
    store = store_name(store)
    check_storage_options(storage_options, store)
    if not is_url(store) and not os.path.exists(store.removeprefix("file://")):
        raise FileNotFoundError(f"no Zarr store at {store}")
    try:
        root = open_group(store, "r", storage_options)
    except (FileNotFoundError, zarr.errors.GroupNotFoundError) as exc:
        raise FileNotFoundError(f"no Zarr store at {store}") from exc
    state = root.attrs.get(STATE)
    if not state:
        raise ValueError(f"{store} is a Zarr store but was not written by archs4x.to_zarr")
    if not state.get("complete"):
        detail = _progress_summary(root, state)
        raise IncompleteZarrError(
            f"{store}: the conversion did not finish ({detail}); run the same "
            "archs4x.to_zarr call again to resume it, or pass overwrite=True to restart"
        )
    fdim = state["feature_dim"]
    kw = {"storage_options": storage_options} if storage_options else {}
    raw = xr.open_zarr(
        store, consolidated=False, chunks=None, zarr_format=3, mask_and_scale=False,
        decode_times=False, decode_timedelta=False, drop_variables=[COUNTS], **kw,
    )  # fmt: skip
    source = ZarrStore(store, json.dumps(storage_options or {}, sort_keys=True, default=str),
                       state["fingerprint"])  # fmt: skip
    ids = _plain(raw[SAMPLE].variable).values
    index = SamplePositionIndex(pd.Index(ids, dtype=object, name=SAMPLE), SAMPLE,
                                positions=np.arange(ids.size), source=source)  # fmt: skip
    coords = xr.Coordinates.from_xindex(index)
    coords[SAMPLE].attrs.update(raw[SAMPLE].attrs)
    extra = {}
    for name, var in raw.variables.items():
        if name == SAMPLE:
            continue
        if name == fdim or var.dims == (fdim,):
            extra[name] = _plain(var)
        else:  # sample fields stay lazily indexed (read by position when used)
            extra[name] = xr.Variable(
                var.dims,
                indexing.LazilyIndexedArray(
                    ZarrFieldArray(source, str(name), var.shape, var.dtype)
                ),
                attrs=dict(var.attrs),
            )
    reader = source.counts_reader()
    shape = reader.shape
    spec = _dask_chunks(state, shape, reader.dtype.itemsize, dict(chunks or {}), fdim)
    cks = tuple(tuple(min(spec[d], n - s) for s in range(0, n, spec[d]))
                for d, n in zip((fdim, SAMPLE), shape, strict=True))  # fmt: skip
    data = Archs4Array(source, np.arange(shape[0]), np.arange(shape[1]), reader.dtype, cks)
    arr_attrs = dict(open_group(store, "r", storage_options)[COUNTS].attrs)
    attrs = {k: v for k, v in arr_attrs.items() if k != "coordinates"}
    encoding = {
        "archs4x_layout": state["layout"],
        "chunks": tuple(state["chunks"]),
        "shards": tuple(state["shards"]) if state.get("shards") else None,
        "preferred_chunks": spec,
        "dtype": reader.dtype,
    }
    counts = xr.Variable((fdim, SAMPLE), data, attrs=attrs, encoding=encoding)
    ds_attrs = {k: v for k, v in root.attrs.items() if k != STATE}
    out = xr.Dataset({COUNTS: counts}, coords=coords, attrs=ds_attrs)
    return out.assign_coords(extra)


def _progress_summary(root, state: dict) -> str:
    if not state.get("skeleton"):
        return "coordinates not all written"
    parts = []
    for p in state.get("passes", []):
        try:
            digests = np.asarray(root[f"{PROGRESS}/{p['name']}"][:])
            parts.append(f"pass {p['name']}: {int((digests != 0).sum())}/{digests.size} units")
        except KeyError:
            parts.append(f"pass {p['name']}: no progress record")
    return ", ".join(parts)
