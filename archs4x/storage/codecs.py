"""Decoding the stored bytes of an HDF5 chunk: the filter pipeline, undone by archs4x.

HDF5 serialises every call, including its own decompression.  For the pipelines ARCHS4
files use (deflate, optionally after shuffle), archs4x undoes the filters itself with
libdeflate, which releases the GIL, so chunks decode in parallel threads.  The pipeline is
read from the file, never assumed (:func:`filter_plan`); anything else is decoded by h5py.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import h5py
import numpy as np

from ..errors import ChunkDecodeError

_Bytes = bytes | bytearray | memoryview  # what the filters take and give back

_libdeflate_inflate: Callable[[_Bytes, int], bytearray] | None
_DeflateError: type[Exception]
try:  # libdeflate: the fastest inflate on PyPI, releases the GIL
    from deflate import DeflateError as _DeflateError
    from deflate import zlib_decompress as _libdeflate_inflate
except ImportError:  # pragma: no cover - deflate is a core dependency
    _libdeflate_inflate = None
    _DeflateError = zlib.error

__all__ = ["H5Z_FILTER_DEFLATE", "H5Z_FILTER_SHUFFLE", "FilterPlan", "decode_chunk", "filter_plan"]

H5Z_FILTER_DEFLATE = 1
H5Z_FILTER_SHUFFLE = 2
_SUPPORTED = {H5Z_FILTER_DEFLATE, H5Z_FILTER_SHUFFLE}


@dataclass(frozen=True)
class FilterPlan:
    """The filter pipeline of a dataset, in the order HDF5 applies it when writing."""

    filters: tuple[int, ...]
    direct: bool  # True when archs4x decodes the raw chunks itself

    @property
    def description(self) -> str:
        names = {H5Z_FILTER_DEFLATE: "deflate", H5Z_FILTER_SHUFFLE: "shuffle"}
        return "+".join(names.get(f, f"filter{f}") for f in self.filters) or "none"


def filter_plan(dset: h5py.Dataset) -> FilterPlan:
    """Read the filter pipeline of ``dset`` from the file.

    Examples
    --------
    >>> import h5py
    >>> from archs4x.datasets import example_file
    >>> with h5py.File(example_file()) as f:
    ...     filter_plan(f["data/expression"])
    FilterPlan(filters=(1,), direct=True)
    """
    if dset.chunks is None:
        return FilterPlan(filters=(), direct=False)
    plist = dset.id.get_create_plist()
    filters = tuple(int(plist.get_filter(i)[0]) for i in range(plist.get_nfilters()))
    return FilterPlan(filters=filters, direct=set(filters) <= _SUPPORTED)


def _inflate(data: _Bytes, nbytes: int) -> _Bytes:
    if _libdeflate_inflate is not None:
        return _libdeflate_inflate(data, nbytes)
    return zlib.decompress(data)  # pragma: no cover


def _unshuffle(data: _Bytes, itemsize: int) -> _Bytes:
    if itemsize == 1:
        return data
    a = np.frombuffer(data, dtype=np.uint8)
    return a.reshape(itemsize, -1).T.tobytes()


def decode_chunk(
    raw: bytes | memoryview,
    mask: int,
    plan: FilterPlan,
    dtype: np.dtype,
    chunks: tuple[int, ...],
    *,
    where: str | Callable[[], str] = "chunk",
    nbytes: int | None = None,
) -> np.ndarray:
    """Decode the stored bytes of one chunk into an array of shape ``chunks``.

    The filter pipeline is undone in reverse; bit ``i`` of ``mask`` means filter ``i``
    was skipped for this chunk.  Anything that fails to decode, or decodes to the wrong
    size, raises :class:`~archs4x.errors.ChunkDecodeError` prefixed with ``where`` (a
    string, or a function making it only on error: this runs once per chunk).

    Examples
    --------
    >>> import zlib, numpy as np
    >>> a = np.arange(6, dtype="<u4").reshape(3, 2)
    >>> plan = FilterPlan(filters=(H5Z_FILTER_DEFLATE,), direct=True)
    >>> decode_chunk(zlib.compress(a.tobytes()), 0, plan, a.dtype, (3, 2)).tolist()
    [[0, 1], [2, 3], [4, 5]]
    >>> decode_chunk(b"not deflate", 0, plan, a.dtype, (3, 2), where="x")
    Traceback (most recent call last):
    ...
    archs4x.errors.ChunkDecodeError: x failed to decode (deflate): ...
    """
    if nbytes is None:
        nbytes = math.prod(chunks) * dtype.itemsize
    data: _Bytes = raw
    try:
        for i in reversed(range(len(plan.filters))):
            if mask & (1 << i):
                continue
            code = plan.filters[i]
            if code == H5Z_FILTER_DEFLATE:
                data = _inflate(data, nbytes)
            elif code == H5Z_FILTER_SHUFFLE:
                data = _unshuffle(data, dtype.itemsize)
    except (_DeflateError, zlib.error, ValueError) as exc:
        text = where() if callable(where) else where
        raise ChunkDecodeError(f"{text} failed to decode ({plan.description}): {exc}") from exc
    if len(data) != nbytes:
        text = where() if callable(where) else where
        raise ChunkDecodeError(f"{text} decoded to {len(data)} bytes, expected {nbytes}")
    return np.frombuffer(data, dtype=dtype).reshape(chunks)
