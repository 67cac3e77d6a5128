"""Opening archs4x Zarr stores: the same Dataset as :func:`archs4x.open_dataset`.

Everything is read through :mod:`archs4x.storage.zarrstore`, which checks every chunk's
CRC-32C and never serves a missing chunk as fill values; the Dataset is pinned to the
write it was opened on (a rewritten store raises
:class:`~archs4x.errors.FileChangedError` on the next read).
"""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import xarray as xr
from xarray.core import indexing

from ..dims import COUNTS, SAMPLE
from ..errors import IncompleteZarrError, StoreIntegrityError
from ..storage.zarrstore import (
    FORMAT,
    PROGRESS,
    STATE,
    TMP,
    ArrayMeta,
    StoreIO,
    ZarrStore,
    check_storage_options,
    read_root,
    store_name,
)
from .arrays import OuterIndexedBackendArray
from .counts import TARGET_CHUNK_BYTES, Archs4Array
from .positions import SamplePositionIndex

__all__ = ["open_zarr"]


class ZarrFieldArray(OuterIndexedBackendArray):
    """One coordinate of an archs4x store, read by position (text as ``str`` objects)."""

    def __init__(self, source: ZarrStore, name: str, shape: tuple[int, ...], dtype) -> None:
        self.source = source
        self.name = name
        self.shape = tuple(shape)
        self.dtype = np.dtype(dtype)

    def _raw_indexing_method(self, key: tuple) -> np.ndarray:
        self.source.check()
        values = self.source.reader(self.name).read(*key)
        drop = tuple(0 if isinstance(k, int | np.integer) else slice(None) for k in key)
        return np.ascontiguousarray(values[drop])


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


def _arrays(io: StoreIO, root: dict) -> dict[str, ArrayMeta]:
    """Every top-level array of the store, from the consolidated metadata."""
    docs = (root.get("consolidated_metadata") or {}).get("metadata")
    if docs is None:
        docs = {}
        for key in io.list(""):
            if key.endswith("/zarr.json") and key.count("/") == 1:
                docs[key.split("/")[0]] = io.read_json(key)
    out = {}
    for path, doc in docs.items():
        if "/" in path or path in (PROGRESS, TMP) or doc.get("node_type") != "array":
            continue
        out[path] = ArrayMeta.from_json(path, doc)
    return out


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
        ``sample`` indexed by its ids with every sample field as a (lazy) coordinate,
        feature coordinates in memory, the store's attributes as attrs.  The layout is
        in ``ds.counts.encoding["archs4x_layout"]``.  Every read checks the chunks it
        decodes against their CRC-32C.

    Raises
    ------
    FileNotFoundError
        Nothing at ``store``.
    IncompleteZarrError
        The conversion into ``store`` did not finish (rerun :func:`to_zarr` to resume).
    StoreIntegrityError
        A chunk read is damaged or missing (see :func:`archs4x.verify_zarr`).
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
    io = StoreIO(store, storage_options)
    if io.local and not os.path.exists(io.root):
        raise FileNotFoundError(f"no Zarr store at {store}")
    try:
        root = read_root(io)
    except FileNotFoundError as exc:
        raise FileNotFoundError(f"no Zarr store at {store}") from exc
    state = (root.get("attributes") or {}).get(STATE)
    if not state:
        raise ValueError(f"{store} is a Zarr store but was not written by archs4x.to_zarr")
    if not state.get("complete"):
        raise IncompleteZarrError(
            f"{store}: the conversion did not finish ({_progress_summary(io, state)}); run "
            "the same archs4x.to_zarr call again to resume it, or pass overwrite=True to "
            "restart"
        )
    if state.get("format") != FORMAT:
        raise ValueError(
            f"{store} was written by an older archs4x (format {state.get('format')}, without "
            "per-chunk checksums): convert it again with archs4x.to_zarr(..., overwrite=True)"
        )
    fdim = state["feature_dim"]
    source = ZarrStore(store, json.dumps(storage_options or {}, sort_keys=True, default=str),
                       state["fingerprint"], state.get("write_id", ""))  # fmt: skip
    arrays = _arrays(io, root)
    for name in (COUNTS, SAMPLE, fdim):
        if name not in arrays:
            raise StoreIntegrityError(f"{store}: the array {name!r} is missing")
    ids = source.reader(SAMPLE).read(slice(None))
    index = SamplePositionIndex(pd.Index(ids, dtype=object, name=SAMPLE), SAMPLE,
                                positions=np.arange(ids.size), source=source)  # fmt: skip
    coords = xr.Coordinates.from_xindex(index)
    coords[SAMPLE].attrs.update(arrays[SAMPLE].attributes)
    extra = {}
    for name, meta in arrays.items():
        if name in (SAMPLE, COUNTS):
            continue
        dims = meta.dimension_names or tuple(f"dim_{i}" for i in range(len(meta.shape)))
        data: indexing.LazilyIndexedArray | np.ndarray
        if SAMPLE in dims:  # sample fields stay lazily indexed (read by position when used)
            data = indexing.LazilyIndexedArray(ZarrFieldArray(source, name, meta.shape,
                                                              meta.dtype))  # fmt: skip
        else:
            data = source.reader(name).read(*(slice(None) for _ in meta.shape))
        extra[name] = xr.Variable(dims, data, attrs=dict(meta.attributes))
    reader = source.counts_reader()
    n_features, n_samples = reader.shape
    shape = (n_features, n_samples)
    spec = _dask_chunks(state, shape, reader.dtype.itemsize, dict(chunks or {}), fdim)
    feature_cks, sample_cks = (tuple(min(spec[d], n - s) for s in range(0, n, spec[d]))
                               for d, n in zip((fdim, SAMPLE), shape, strict=True))  # fmt: skip
    counts_data = Archs4Array(source, np.arange(shape[0]), np.arange(shape[1]), reader.dtype,
                              (feature_cks, sample_cks))  # fmt: skip
    attrs = {k: v for k, v in arrays[COUNTS].attributes.items() if k != "coordinates"}
    encoding = {
        "archs4x_layout": state["layout"],
        "chunks": tuple(state["chunks"]),
        "shards": tuple(state["shards"]) if state.get("shards") else None,
        "preferred_chunks": spec,
        "dtype": reader.dtype,
    }
    counts = xr.Variable((fdim, SAMPLE), counts_data, attrs=attrs, encoding=encoding)
    ds_attrs = {k: v for k, v in (root.get("attributes") or {}).items() if k != STATE}
    out = xr.Dataset({COUNTS: counts}, coords=coords, attrs=ds_attrs)
    return out.assign_coords(extra)


def _progress_summary(io: StoreIO, state: dict) -> str:
    if not state.get("skeleton"):
        return "coordinates not all written"
    parts = []
    for p in state.get("passes", []):
        prefix = f"{PROGRESS}/{p['name']}/c/"
        n_units = int(np.prod([-(-s // u) for s, u in zip(p["shape"], p["unit"], strict=True)]))
        done = sum(1 for k in io.list(prefix.rstrip("/")) if k[len(prefix) :].isdigit())
        parts.append(f"pass {p['name']}: {done}/{n_units} units")
    return ", ".join(parts)
