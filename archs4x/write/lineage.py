"""What a conversion writes, and what it reads: the identity of a ``to_zarr`` job.

A conversion can resume only the job that started it.  :func:`job_identity` describes a
job by parts, each a short digest:

* ``source`` - the file or store the counts come from (its identity as pinned at open:
  path, size, times and inode of an H5 file; a store's own fingerprint);
* ``selection`` - the positions of the genes and samples in that source;
* ``transformation`` - what is computed from them (a plain read, or the deterministic
  token of the Dask graph, which changes with every operation and parameter);
* ``operations`` - the kinds of operations in that graph (its layer names without their
  tokens): graphs built with random keys (``dask.graph_manipulation.clone`` without a
  seed, as multi-pass normalizations do) get a new token in every process, so when only
  the token differs ``to_zarr`` compares recomputed units with the recorded ones;
* ``attributes`` - the Dataset's and the counts' attributes;
* ``coordinates`` - every coordinate's name, dimensions, type, attributes and values;
* ``layout`` - layout, shape, data type, chunks, shards and codecs.

:func:`describe_differences` names the parts that differ between two jobs, for the
message that refuses to mix them.  :func:`reads_from` lists the files and stores a
Dataset reads, so that ``to_zarr`` refuses to overwrite its own input.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable
from typing import Any

import dask.array as da
import numpy as np
import xarray as xr
from dask.base import tokenize
from dask.highlevelgraph import HighLevelGraph, MaterializedLayer

from ..backends.counts import Archs4Array
from ..backends.positions import SamplePositionIndex
from ..dims import COUNTS, SAMPLE
from ..storage.zarrstore import ZarrStore, is_url

__all__ = ["PARTS", "describe_differences", "job_identity", "reads_from", "same_location"]

#: The parts of a job's identity, in the order they are reported.
PARTS = (
    "source",
    "selection",
    "transformation",
    "operations",
    "attributes",
    "coordinates",
    "layout",
)

_WHAT = {
    "source": "the source differs (another file or store, or the file changed)",
    "selection": "the selection differs (other samples or genes)",
    "transformation": "the transformation differs (other operations or parameters applied "
    "to the counts, e.g. another normalization)",
    "operations": "the operations differ (other functions applied to the counts)",
    "attributes": "the attributes differ",
    "coordinates": "the coordinates differ (names, types or values)",
    "layout": "the layout differs (layout, chunks, shards, compressor or data type)",
}


def _digest(*parts: Any) -> str:
    h = hashlib.blake2b(digest_size=8)
    for part in parts:
        if isinstance(part, np.ndarray):
            h.update(str(part.dtype).encode() + str(part.shape).encode())
            h.update(np.ascontiguousarray(part).tobytes())
        elif isinstance(part, bytes):
            h.update(part)
        else:
            h.update(json.dumps(part, sort_keys=True, default=repr).encode())
        h.update(b"\x1f")
    return h.hexdigest()


def source_identity(source: Any) -> tuple[str, str]:
    """``(identity, name)`` of a counts source (a store's identity is its fingerprint)."""
    if isinstance(source, ZarrStore):
        return f"zarr:{source.fingerprint}", source.store
    return f"{type(source).__name__}:{source.cache_key}", str(getattr(source, "name", source))


def _values_digest(var: xr.Variable) -> str:
    if var.chunks is not None:  # Dask-backed: its graph's token, no compute
        return "dask:" + tokenize(var.data)
    values = np.asarray(var.values)
    if values.dtype.kind in "OUST":
        text = "\x00".join(str(v) for v in values.ravel().tolist())
        return _digest(values.shape, text.encode("utf-8", "surrogatepass"))
    return _digest(values)


_TOKEN = re.compile(
    r"-([0-9a-f]{32}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$"
)


def operations(arr: Any) -> str:
    """The kinds of operations in a Dask array's graph: layer names without tokens.

    Examples
    --------
    >>> import dask.array as da
    >>> a, b = da.ones(4, chunks=2) + 1, da.ones(4, chunks=2) + 2
    >>> operations(a) == operations(b), operations(a) == operations(a * 2)
    (True, False)
    """
    if isinstance(arr, Archs4Array):
        return _digest("read", arr.dtype.str)
    if not isinstance(arr, da.Array):
        return _digest("values")
    graph = arr.__dask_graph__()
    names = graph.layers if isinstance(graph, HighLevelGraph) else {arr.name: None}
    kinds = sorted(_TOKEN.sub("", str(name)) for name in names)
    return _digest(kinds, arr.dtype.str)


def _counts_parts(ds: xr.Dataset) -> tuple[str, str, str, str]:
    """(source, selection, transformation, source name) of the counts."""
    data = ds[COUNTS].variable.data
    if isinstance(data, Archs4Array):
        ident, name = source_identity(data.source)
        return ident, _digest(data.rows, data.cols), "read:" + data.dtype.str, name
    index = ds.xindexes.get(SAMPLE)
    if (
        isinstance(index, SamplePositionIndex)
        and index.positions is not None
        and index.source is not None
    ):
        ident, name = source_identity(index.source)
        selection = _digest(index.positions)
    else:
        ident, name, selection = "unknown", "(in memory or computed)", "ids"
    if isinstance(data, da.Array):
        transformation = "dask:" + tokenize(data)
    else:
        transformation = "values:" + _digest(np.asarray(data))
    return ident, selection, transformation, name


def job_identity(ds: xr.Dataset, layout: dict) -> dict[str, Any]:
    """The parts of a job's identity and their combined ``fingerprint``.

    Parameters
    ----------
    ds : xarray.Dataset
        With ``counts`` and its coordinates (as ``to_zarr`` prepared it).
    layout : dict
        JSON-able description of the output layout.

    Returns
    -------
    dict
        ``{"parts": {part: digest}, "source_name": str, "fingerprint": str}``.

    Examples
    --------
    >>> import archs4x
    >>> ds = archs4x.open_dataset(archs4x.datasets.example_file())
    >>> a = job_identity(ds, {"layout": "sample"})
    >>> b = job_identity(ds.isel(sample=[1, 0]), {"layout": "sample"})
    >>> for line in describe_differences(a["parts"], b["parts"]):
    ...     print(line)
    the selection differs (other samples or genes)
    the coordinates differ (names, types or values)
    """
    source, selection, transformation, name = _counts_parts(ds)
    attrs = _digest(ds.attrs, ds[COUNTS].attrs)
    coords = []
    for key in sorted(str(k) for k in ds.coords):
        var = ds[key].variable
        coords.append([key, list(var.dims), str(var.dtype), _digest(var.attrs),
                       _values_digest(var)])  # fmt: skip
    parts = {
        "source": _digest(source),
        "selection": selection if len(selection) == 16 else _digest(selection),
        "transformation": _digest(transformation),
        "operations": operations(ds[COUNTS].variable.data),
        "attributes": attrs,
        "coordinates": _digest(coords),
        "layout": _digest(layout),
    }
    fingerprint = hashlib.blake2b(
        json.dumps([parts[p] for p in PARTS]).encode(), digest_size=16
    ).hexdigest()
    return {"parts": parts, "source_name": name, "fingerprint": fingerprint}


def describe_differences(old: dict, new: dict) -> list[str]:
    """The parts of two job identities that differ, in words."""
    return [_WHAT[p] for p in PARTS if old.get(p) != new.get(p)]


# -- what a dataset reads -----------------------------------------------------------------
def _location(source: Any) -> str | None:
    if isinstance(source, ZarrStore):
        return source.store
    name = getattr(source, "name", None)
    return str(name) if isinstance(name, str) else None


def _graph_sources(arr: da.Array) -> Iterable[Any]:
    graph = arr.__dask_graph__()
    if not isinstance(graph, HighLevelGraph):
        return
    for layer in graph.layers.values():
        if not isinstance(layer, MaterializedLayer):
            continue
        for task in layer.values():
            if isinstance(task, tuple):
                for item in task:
                    if isinstance(item, ZarrStore) or hasattr(item, "cache_key"):
                        yield item
            break  # every task of an archs4x read layer carries the same source


def reads_from(ds: xr.Dataset) -> set[str]:
    """Paths and URLs of the files and stores ``ds`` reads its values from.

    Examples
    --------
    >>> import archs4x
    >>> ds = archs4x.open_dataset(archs4x.datasets.example_file())
    >>> [p.endswith(".h5") for p in reads_from(archs4x.normalize(ds, "cpm").to_dataset())]
    [True]
    """
    found: list[Any] = []
    for var in ds.variables.values():
        data = var.data if var.chunks is not None else None
        if isinstance(data, Archs4Array):
            found.append(data.source)
        elif isinstance(data, da.Array):
            found.extend(_graph_sources(data))
    for index in ds.xindexes.values():
        if isinstance(index, SamplePositionIndex) and index.source is not None:
            found.append(index.source)
    return {loc for loc in (_location(s) for s in found) if loc}


def _normal(location: str) -> str:
    if is_url(location):
        return location.rstrip("/")
    return os.path.realpath(os.path.expanduser(location.removeprefix("file://")))


def same_location(a: str, b: str) -> bool:
    """Whether ``a`` and ``b`` are the same path, or one holds the other.

    Examples
    --------
    >>> same_location("/tmp/a.zarr", "/tmp/a.zarr/counts"), same_location("/tmp/a", "/tmp/ab")
    (True, False)
    """
    x, y = _normal(a), _normal(b)
    sep = "/" if is_url(a) or is_url(b) else os.sep
    return x == y or x.startswith(y.rstrip(sep) + sep) or y.startswith(x.rstrip(sep) + sep)
