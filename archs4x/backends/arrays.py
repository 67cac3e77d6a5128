"""Lazily indexed backend arrays of an ARCHS4 file, in xarray's backend API.

Both are :class:`xarray.backends.BackendArray` objects read through
``explicit_indexing_adapter`` with OUTER indexing, so xarray's lazy indexing composes
any chain of selections into one key and a read fetches only the selected positions.
They hold a source (:mod:`archs4x.storage.sources`), never an open file.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from xarray.backends import BackendArray
from xarray.core import indexing

from ..storage.reader import normalize_selection
from ..storage.text import decode_strings

__all__ = ["CountsBackendArray", "FieldArray", "OuterIndexedBackendArray", "field_dtype"]


def field_dtype(dset: Any) -> np.dtype:
    """The dtype a metadata field is exposed with: text as ``object``, numbers native."""
    kind = dset.dtype.kind
    return np.dtype(object) if kind in "OSU" else np.dtype(dset.dtype).newbyteorder("=")


def _plain_slice(k: Any, n: int) -> Any:
    """An empty slice with a negative step as ``slice(0, 0)``.

    xarray's key decomposition fails on empty negative-step slices (``range(...)[-1]``);
    every other key is passed through unchanged.
    """
    if isinstance(k, slice) and (k.step or 1) < 0 and len(range(*k.indices(n))) == 0:
        return slice(0, 0)
    return k


class OuterIndexedBackendArray(BackendArray):
    """A backend array read with OUTER indexing through ``_raw_indexing_method``."""

    shape: tuple[int, ...]  # set by each subclass

    def __getitem__(self, key: indexing.ExplicitIndexer) -> np.ndarray:
        safe = tuple(_plain_slice(k, n) for k, n in zip(key.tuple, self.shape, strict=True))
        if safe != key.tuple:
            key = type(key)(safe)
        return indexing.explicit_indexing_adapter(
            key, self.shape, indexing.IndexingSupport.OUTER, self._raw_indexing_method
        )

    def _raw_indexing_method(self, key: tuple) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError


class CountsBackendArray(OuterIndexedBackendArray):
    """``data/expression`` of a source, read by its chunk reader.

    Examples
    --------
    >>> from archs4x.datasets import example_file
    >>> from archs4x.storage import open_source
    >>> arr = CountsBackendArray(open_source(example_file()))
    >>> arr.shape, arr.dtype
    ((4500, 400), dtype('uint32'))
    """

    def __init__(self, source: Any) -> None:
        reader = source.counts_reader()
        self.source = source
        self.shape = reader.shape
        self.dtype = reader.dtype

    def _raw_indexing_method(self, key: tuple) -> np.ndarray:
        squeeze = tuple(i for i, k in enumerate(key) if isinstance(k, int | np.integer))
        rows, cols = (np.array([k]) if isinstance(k, int | np.integer) else k for k in key)
        out = self.source.counts_reader().read(rows, cols)
        return out.squeeze(axis=squeeze) if squeeze else out


class FieldArray(OuterIndexedBackendArray):
    """One 1-D metadata field: text decoded to ``str`` (optionally repaired), numbers as stored.

    Examples
    --------
    >>> from archs4x.datasets import example_file
    >>> from archs4x.storage import open_source
    >>> arr = FieldArray(open_source(example_file()), "meta/samples/geo_accession", (400,),
    ...                  object)
    >>> arr._raw_indexing_method((np.array([2, 0]),)).tolist()
    ['GSM1000008', 'GSM1000000']
    """

    def __init__(self, source: Any, path: str, shape: tuple[int], dtype: Any,
                 repair: bool = False) -> None:  # fmt: skip
        self.source = source
        self.path = path
        self.shape = tuple(shape)
        self.dtype = np.dtype(dtype)
        self.repair = repair

    def _raw_indexing_method(self, key: tuple) -> np.ndarray:
        (k,) = key
        dset = self.source.field(self.path)
        if isinstance(k, int | np.integer):
            values = np.asarray(dset[int(k)])
        elif isinstance(k, slice):
            values = np.asarray(dset[k])
        else:
            idx = normalize_selection(k, self.shape[0])
            uniq, inverse = np.unique(idx, return_inverse=True)
            # h5py wants increasing indices; a dense range is faster as a slice
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
