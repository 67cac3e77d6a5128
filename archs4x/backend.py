"""The xarray backend (``engine="archs4"``) and its lazily indexed arrays.

``counts`` is a :class:`CountsArray`: its ``__getitem__`` goes through
``explicit_indexing_adapter`` with OUTER indexing, so a sample selection made with
xarray's lazy indexing (or fused into a Dask getter) reaches :class:`~archs4x.chunks.ChunkReader`
as an index array and only those samples' chunks are read.  Sample metadata fields
are :class:`FieldArray` coordinates, loaded on first use, so opening a 1,000,000-sample
file reads only the sample and feature ids.  Arrays hold a path, never an open file:
they pickle, and every process opens the file itself (:func:`archs4x.files.open_h5`).
"""

from __future__ import annotations

import os
import threading
import warnings
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
from xarray.backends import BackendArray, BackendEntrypoint
from xarray.core import indexing

from .chunks import ChunkReader, normalize_selection
from .dims import COUNTS, SAMPLE
from .files import as_source, is_url, open_field, open_h5
from .layout import EXPRESSION, SAMPLE_ID_FIELD, Layout, detect_layout
from .text import decode_strings

__all__ = [
    "Archs4BackendEntrypoint",
    "CountsArray",
    "FieldArray",
    "OuterIndexedArray",
    "build_dataset",
    "default_sample_chunk",
    "get_reader",
    "unwrap",
]

TARGET_CHUNK_BYTES = 128 * 2**20

_readers: dict[tuple, ChunkReader] = {}
_readers_lock = threading.Lock()


def get_reader(source, name: str = EXPRESSION) -> ChunkReader:
    """The per-process :class:`ChunkReader` of dataset ``name`` in file ``source``.

    Examples
    --------
    >>> from archs4x.datasets import example_file
    >>> get_reader(str(example_file())) is get_reader(str(example_file()))
    True

    ``source`` is a local path or a :class:`~archs4x.remote.RemoteSource` (then the
    reader fetches only the byte ranges of the chunks a read needs).
    """
    if not isinstance(source, str | os.PathLike):
        from .remote import remote_reader

        return remote_reader(source, name)
    f = open_h5(source)
    key = (os.getpid(), id(f), f.id.id, name)
    with _readers_lock:
        reader = _readers.get(key)
        if reader is None:
            reader = _readers[key] = ChunkReader(f[name])
        return reader


def default_sample_chunk(n_features: int, itemsize: int = 4, n_samples: int | None = None) -> int:
    """Samples per Dask chunk: ~128 MiB of counts with all features in the chunk.

    A 67,186-gene file gets 499 samples per chunk, so its 1,000,000 samples make about
    2,000 tasks; every chunk holds whole sample columns (normalisations need them).

    Examples
    --------
    >>> default_sample_chunk(67_186)
    499
    """
    k = max(1, TARGET_CHUNK_BYTES // max(1, n_features * itemsize))
    return int(min(k, n_samples)) if n_samples else int(k)


def unwrap(obj: Any, cls: type) -> Any:
    """The ``cls`` backend array inside xarray's lazy wrappers around ``obj``, or None.

    xarray wraps backend arrays (lazy indexing, copy-on-write, implicit-to-explicit
    adapters), each holding the next in ``.array``.

    Examples
    --------
    >>> import archs4x
    >>> ds = archs4x.open_dataset(archs4x.datasets.example_file())
    >>> type(unwrap(ds.isel(sample=[1]).series_id.variable._data, FieldArray)).__name__
    'FieldArray'
    """
    for _ in range(8):
        if isinstance(obj, cls):
            return obj
        obj = getattr(obj, "array", None)
        if obj is None:
            return None
    return None


class OuterIndexedArray(BackendArray):
    """A lazily indexed array whose reader fetches exactly an outer selection.

    Subclasses implement ``_raw_indexing_method(key)`` for a tuple of ints, slices and
    integer arrays (one per axis).  :mod:`archs4x.pushdown` pushes Dask selections into
    instances of this class (and only those): they read what is selected and nothing more.
    """

    def __getitem__(self, key: indexing.ExplicitIndexer) -> np.ndarray:
        return indexing.explicit_indexing_adapter(
            key, self.shape, indexing.IndexingSupport.OUTER, self._raw_indexing_method
        )

    def _raw_indexing_method(self, key: tuple) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError


class CountsArray(OuterIndexedArray):
    """Lazily indexed ``data/expression`` of one file, read by :class:`ChunkReader`."""

    def __init__(self, source: str, shape: tuple[int, int], dtype: np.dtype):
        self.source = source
        self.shape = shape
        self.dtype = np.dtype(dtype)

    def _raw_indexing_method(self, key: tuple) -> np.ndarray:
        squeeze = tuple(i for i, k in enumerate(key) if isinstance(k, int | np.integer))
        rows, cols = (np.array([k]) if isinstance(k, int | np.integer) else k for k in key)
        out = get_reader(self.source).read(rows, cols)
        return out.squeeze(axis=squeeze) if squeeze else out


class FieldArray(BackendArray):
    """Lazily indexed 1-D metadata field (strings decoded to ``str``, numbers as stored)."""

    def __init__(self, source: str, path: str, shape: tuple[int], dtype, repair: bool = False):
        self.source = source
        self.path = path
        self.shape = shape
        self.dtype = np.dtype(dtype)
        self.repair = repair

    def __getitem__(self, key: indexing.ExplicitIndexer) -> np.ndarray:
        return indexing.explicit_indexing_adapter(
            key, self.shape, indexing.IndexingSupport.OUTER, self._raw_indexing_method
        )

    def _raw_indexing_method(self, key: tuple) -> np.ndarray:
        (k,) = key
        dset = open_field(self.source, self.path)
        if isinstance(k, int | np.integer):
            values = np.asarray(dset[int(k)])
        elif isinstance(k, slice):
            values = dset[k]
        else:
            idx = normalize_selection(k, self.shape[0])
            uniq, inverse = np.unique(idx, return_inverse=True)
            # h5py wants increasing indices; a dense range is faster as a slice.
            if uniq.size and uniq[-1] - uniq[0] + 1 == uniq.size:
                values = dset[int(uniq[0]) : int(uniq[-1]) + 1]
            elif uniq.size:
                values = dset[uniq]
            else:
                values = dset[0:0]
            values = np.asarray(values)[inverse]
        if self.dtype.kind == "O":
            return decode_strings(values, repair=self.repair)
        return np.asarray(values, dtype=self.dtype)


def _field_dtype(dset) -> np.dtype:
    kind = dset.dtype.kind
    return np.dtype(object) if kind in "OSU" else np.dtype(dset.dtype).newbyteorder("=")


def _read_field(source, path: str, repair: bool) -> np.ndarray:
    dset = open_field(source, path)
    values = dset[()]
    if _field_dtype(dset).kind == "O":
        return decode_strings(values, repair=repair)
    return np.asarray(values)


def _lazy_field(source: str, path: str, dims: tuple[str], repair: bool) -> xr.Variable:
    dset = open_h5(source)[path]
    arr = FieldArray(source, path, (int(dset.shape[0]),), _field_dtype(dset), repair)
    return xr.Variable(dims, indexing.LazilyIndexedArray(arr))


def _info_attrs(f, layout: Layout) -> dict[str, Any]:
    attrs: dict[str, Any] = {}
    for name in layout.info_fields:
        val = f[layout.info_path(name)][()]
        if isinstance(val, bytes):
            val = val.decode("utf-8", errors="replace")
        elif isinstance(val, np.ndarray):
            val = val.tolist()
        elif isinstance(val, np.generic):
            val = val.item()
        attrs[name] = val
    return attrs


def build_dataset(
    source: str | os.PathLike,
    *,
    repair_text: bool = False,
    drop_variables: Iterable[str] | None = None,
    sample_chunk: int | None = None,
    storage_options: dict | None = None,
) -> xr.Dataset:
    """Build the lazy (not yet Dask-chunked) :class:`xarray.Dataset` of an ARCHS4 file.

    Reads only the sample ids, the feature ids and the small feature fields; every
    sample metadata field stays on disk until used.  Most users call
    :func:`archs4x.open_dataset` instead, which also chunks ``counts`` with Dask.

    ``source`` may be an ``https://`` or ``s3://`` URL (see :mod:`archs4x.remote`).

    Examples
    --------
    >>> from archs4x.datasets import example_file
    >>> ds = build_dataset(example_file())
    >>> ds.counts.chunks is None, ds.sizes["sample"]
    (True, 400)
    """
    source = as_source(source, storage_options)
    f = open_h5(source)
    layout = detect_layout(f)
    drop = set(drop_variables or ())
    fdim = layout.level
    n_features, n_samples = layout.shape

    coords: dict[str, Any] = {}
    gsm = _read_field(source, layout.sample_path(SAMPLE_ID_FIELD), repair=False)
    if pd.Index(gsm).has_duplicates:
        warnings.warn(
            f"{source}: {SAMPLE_ID_FIELD} has duplicate ids; label selection of those "
            "samples is ambiguous (use positional .isel)",
            stacklevel=3,
        )
    coords[SAMPLE] = xr.Variable((SAMPLE,), gsm, attrs={"long_name": "GEO sample accession"})
    for name in layout.sample_fields:
        if name == SAMPLE_ID_FIELD or name in drop:
            continue
        coord = name if name != SAMPLE else "sample_name"
        coords[coord] = _lazy_field(source, layout.sample_path(name), (SAMPLE,), repair_text)

    remote = not isinstance(source, str)
    for name in layout.feature_fields:
        if name in drop:
            continue
        if name == layout.feature_index:
            values = _read_field(source, layout.feature_path(name), repair=False)
            coords[fdim] = xr.Variable((fdim,), values, attrs={"long_name": f"{name} (Ensembl)"})
        else:
            out = "symbol" if name == layout.symbol_field else name
            if out == fdim:
                out = f"{fdim}_{name}"
            if remote:  # fetched (once, then cached locally) when first used
                coords[out] = _lazy_field(source, layout.feature_path(name), (fdim,), False)
            else:
                values = _read_field(source, layout.feature_path(name), repair=False)
                coords[out] = xr.Variable((fdim,), values)

    expr = f[EXPRESSION]
    k = sample_chunk or default_sample_chunk(n_features, expr.dtype.itemsize, n_samples)
    counts = xr.Variable(
        (fdim, SAMPLE),
        indexing.LazilyIndexedArray(CountsArray(source, layout.shape, expr.dtype)),
        attrs={"long_name": f"{fdim} read counts", "units": "reads"},
        encoding={
            "preferred_chunks": {fdim: n_features, SAMPLE: min(k, max(1, n_samples))},
            "chunksizes": tuple(expr.chunks) if expr.chunks else None,
            "dtype": expr.dtype,
        },
    )
    data_vars = {} if COUNTS in drop else {COUNTS: counts}
    attrs = _info_attrs(f, layout)
    attrs.update(
        archs4_source=str(source),
        archs4_level=layout.level,
        archs4_h5_chunks=str(tuple(expr.chunks)) if expr.chunks else "contiguous",
    )
    return xr.Dataset(data_vars, coords=coords, attrs=attrs)


class Archs4BackendEntrypoint(BackendEntrypoint):
    """Open ARCHS4 HDF5 files with ``xr.open_dataset(path, engine="archs4")``.

    Examples
    --------
    >>> import xarray as xr
    >>> from archs4x.datasets import example_file
    >>> ds = xr.open_dataset(example_file(), engine="archs4", chunks={})
    >>> ds.counts.dims, ds.counts.dtype
    (('gene', 'sample'), dtype('uint32'))
    """

    description = "Lazy, labelled access to ARCHS4 gene/transcript count files (HDF5)"
    url = "https://github.com/archs4x/archs4x"
    open_dataset_parameters = (
        "filename_or_obj",
        "drop_variables",
        "repair_text",
        "sample_chunk",
        "storage_options",
    )

    def open_dataset(  # type: ignore[override]
        self,
        filename_or_obj,
        *,
        drop_variables=None,
        repair_text: bool = False,
        sample_chunk: int | None = None,
        storage_options: dict | None = None,
    ) -> xr.Dataset:
        return build_dataset(
            filename_or_obj,
            repair_text=repair_text,
            drop_variables=drop_variables,
            sample_chunk=sample_chunk,
            storage_options=storage_options,
        )

    def guess_can_open(self, filename_or_obj) -> bool:
        try:
            path = os.fspath(filename_or_obj)
        except TypeError:
            return False
        if not str(path).lower().endswith((".h5", ".hdf5")):
            return False
        if is_url(path):
            return True
        try:
            f = open_h5(path)
            return EXPRESSION in f and "meta/samples" in f
        except (OSError, ValueError):
            return False
