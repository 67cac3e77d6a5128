"""The metadata and coordinates of a store: everything but the counts' chunks.

Writing order, so that a kill at any point leaves a store that resumes or refuses
cleanly (every key is replaced atomically, see :class:`~archs4x.storage.zarrstore.StoreIO`):

1. the root ``zarr.json`` with the state record (``skeleton: false``): from here on the
   store is recognisably this job's;
2. every coordinate array (metadata and all chunks; strings as the Zarr v3 ``string``
   type), the empty ``counts`` array, the progress arrays, an intermediate array if the
   plan has one;
3. the root again with ``skeleton: true``.

A rerun finding ``skeleton: false`` clears everything but the root and writes 2-3 again.
:func:`write_final_root` ends a conversion: the state with ``complete: true`` and the
consolidated metadata of every array, in one write.

Array documents are made by zarr-python (in memory) so they are exactly what zarr-python,
xarray and TensorStore expect; every chunk codec chain ends in ``crc32c``.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np
import xarray as xr
import zarr
from zarr.codecs import Crc32cCodec, ZstdCodec

from ..dims import COUNTS
from ..storage.zarrstore import PROGRESS, ROOT, STATE, TMP, ArrayMeta, StoreIO

__all__ = [
    "COORD_CHUNK",
    "array_doc",
    "consolidated",
    "counts_doc",
    "group_doc",
    "json_attrs",
    "progress_doc",
    "write_coordinate",
    "write_final_root",
    "write_root",
]

#: Values per chunk of a coordinate array.
COORD_CHUNK = 65_536
RESERVED = {COUNTS, PROGRESS, TMP, "zarr.json"}


def json_attrs(attrs: dict, what: str) -> dict:
    """Attributes as plain JSON values (NumPy scalars and arrays converted).

    Examples
    --------
    >>> json_attrs({"n": np.int64(3), "v": np.array([1.5])}, "x")
    {'n': 3, 'v': [1.5]}
    """
    out = {}
    for key, value in attrs.items():
        out[str(key)] = _json_value(value, f"{what} attribute {key!r}")
    return out


def _json_value(value: Any, where: str) -> Any:
    if isinstance(value, np.ndarray):
        return [_json_value(v, where) for v in value.tolist()]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # JSON has no NaN: as zarr does ("NaN", "Infinity")
    if value is None or isinstance(value, str | bool | numbers.Integral | float):
        return int(value) if isinstance(value, numbers.Integral) and not isinstance(
            value, bool) else value  # fmt: skip
    if isinstance(value, list | tuple):
        return [_json_value(v, where) for v in value]
    if isinstance(value, dict):
        return {str(k): _json_value(v, where) for k, v in value.items()}
    raise TypeError(f"{where} is a {type(value).__name__}, which a Zarr store cannot hold")


def array_doc(
    shape: tuple[int, ...],
    dtype: Any,
    chunks: tuple[int, ...],
    *,
    shards: tuple[int, ...] | None = None,
    compressors: tuple = (),
    dims: tuple[str, ...] | None = None,
    attributes: dict | None = None,
    fill_value: Any = None,
) -> dict:
    """The Zarr v3 ``zarr.json`` of an array, its chunk codecs ending in ``crc32c``.

    Examples
    --------
    >>> doc = array_doc((10,), "uint32", (4,), compressors=(ZstdCodec(level=3),))
    >>> [c["name"] for c in doc["codecs"]]
    ['bytes', 'zstd', 'crc32c']
    """
    shape = tuple(int(s) for s in shape)
    arr = zarr.create_array(
        zarr.storage.MemoryStore(), shape=shape, dtype=dtype,
        chunks=tuple(max(1, int(c)) for c in chunks),
        shards=tuple(int(s) for s in shards) if shards else None,
        compressors=[*compressors, Crc32cCodec()], fill_value=fill_value,
        dimension_names=dims, attributes=attributes or {}, zarr_format=3,
    )  # fmt: skip
    return arr.metadata.to_dict()


def write_root(io: StoreIO, attrs: dict, state: dict) -> None:
    """The root group document: the Dataset's attributes and the archs4x state."""
    io.write_json(ROOT, {"zarr_format": 3, "node_type": "group",
                         "attributes": {**attrs, STATE: state}})  # fmt: skip


def _coordinate_values(var: xr.Variable, name: str) -> tuple[np.ndarray, Any]:
    values = np.asarray(var.values)
    if values.dtype.kind in "OUST":
        flat = values.ravel().tolist()
        bad = next((v for v in flat if not isinstance(v, str)), None)
        if bad is not None or any(v is None for v in flat):
            raise TypeError(
                f"coordinate {name!r} holds {type(bad).__name__} values among its text: "
                "a Zarr string array holds text only (convert them with .astype(str))"
            )
        return np.asarray(flat, dtype=object).reshape(values.shape), str
    if values.dtype.kind not in "biuf":
        raise TypeError(
            f"coordinate {name!r} has dtype {values.dtype}: archs4x stores numbers, booleans "
            "and text (convert it, e.g. to text with .astype(str))"
        )
    return values, values.dtype


def write_coordinate(io: StoreIO, name: str, var: xr.Variable) -> None:
    """Write one coordinate array: its document, then every chunk (empty ones too)."""
    if name in RESERVED or "/" in name or name.startswith("."):
        raise ValueError(f"a coordinate cannot be named {name!r} in an archs4x store")
    values, dtype = _coordinate_values(var, name)
    chunks = tuple(min(max(1, n), COORD_CHUNK) for n in values.shape)
    fill = "" if dtype is str else (False if values.dtype == bool else 0)
    doc = array_doc(values.shape, dtype, chunks, compressors=(ZstdCodec(level=3),),
                    dims=tuple(str(d) for d in var.dims),
                    attributes=json_attrs(var.attrs, f"coordinate {name!r}"),
                    fill_value=fill)  # fmt: skip
    meta = ArrayMeta.from_json(name, doc)
    for obj in meta.objects():
        region = tuple(slice(o * g, min(n, (o + 1) * g))
                       for o, g, n in zip(obj, meta.grid, values.shape, strict=True))  # fmt: skip
        io.write(meta.object_key(obj), meta.encode_chunk(values[region]))
    io.write_json(f"{name}/zarr.json", doc)


def consolidated(io: StoreIO) -> dict:
    """The consolidated metadata of every array and group under the root."""
    docs: dict[str, dict] = {}
    for key in io.list(""):
        if key.endswith("/zarr.json"):
            docs[key[: -len("/zarr.json")]] = io.read_json(key)
    for doc in docs.values():
        if doc.get("node_type") == "group":
            doc["consolidated_metadata"] = {"kind": "inline", "must_understand": False,
                                            "metadata": {}}  # fmt: skip
    return {"kind": "inline", "must_understand": False, "metadata": dict(sorted(docs.items()))}


def write_final_root(io: StoreIO, attrs: dict, state: dict) -> None:
    """Mark the store complete, with consolidated metadata, in one atomic write."""
    io.write_json(ROOT, {"zarr_format": 3, "node_type": "group",
                         "attributes": {**attrs, STATE: state},
                         "consolidated_metadata": consolidated(io)})  # fmt: skip


def counts_doc(shape, dtype, chunks, shards, codec, dims, attrs) -> dict:
    """The ``counts`` array document."""
    return array_doc(shape, dtype, chunks, shards=shards, compressors=(codec,), dims=dims,
                     attributes=attrs, fill_value=0)  # fmt: skip


def progress_doc(n_units: int) -> dict:
    """A progress array: one uint64 digest per unit, one object per unit."""
    return array_doc((n_units,), "uint64", (1,), fill_value=0)


def group_doc() -> dict:
    return {"zarr_format": 3, "node_type": "group", "attributes": {}}
