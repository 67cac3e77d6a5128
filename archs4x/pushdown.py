"""Push Dask sample selections down into the archs4x chunk reader.

A Dask-backed ``counts`` is one ``getter`` task per block of ~500 samples.  When a user
writes ``ds.sel(sample=ids)`` (or ``isel`` with an index array), Dask plans a *take*:
read each touched block whole, pick the wanted columns, then concatenate the pieces of
each output block and restore the requested order.  On ARCHS4 files that means reading
hundreds of samples to return one, and copying the result twice.

:func:`pushdown_optimize` is a graph optimisation, chained in front of Dask's own
array optimisation, that rewrites, for archs4x arrays only,
``take(getter(counts, block), columns)`` into ``getter(counts, columns)`` and a merge of
such pieces into a single ``getter(counts, output_columns)`` in request order, so the
reader is asked for exactly the selected samples, once per output block.  The rewrite
is structural and conservative: any graph it does not recognise is left as it was
(results are identical either way; only the amount read differs), and it can be
switched off with
``ARCHS4X_PUSHDOWN=0`` or :func:`disable`.
"""

from __future__ import annotations

import os
from typing import Any

import dask
import numpy as np
from dask.array.core import getter
from dask.array.optimization import optimize as _dask_optimize

try:  # dask >= 2024.12 task spec and shuffle-based take
    from dask._task_spec import DataNode, List, Task, TaskRef, convert_legacy_graph
    from dask.array._shuffle import _getitem as _take_getitem
    from dask.array._shuffle import concatenate_arrays as _take_merge
except ImportError:  # pragma: no cover - older dask: no pushdown, still correct
    _take_getitem = _take_merge = None

from .backend import OuterIndexedArray, unwrap

__all__ = ["disable", "enable", "pushdown_optimize"]


def _is_archs4_array(obj: Any) -> bool:
    return unwrap(obj, OuterIndexedArray) is not None


def _value(node: Any, graph: dict) -> Any:
    if isinstance(node, TaskRef):
        node = graph.get(node.key)
    if isinstance(node, Task) and getattr(node.func, "passthrough", False) and node.args:
        return _value(node.args[0], graph)  # e.g. archs4x.passes.reread's gate
    if isinstance(node, DataNode):
        return node.value
    return node


def _fuse_axis(block: Any, take: Any) -> Any:
    if isinstance(take, slice) and take == slice(None):
        return block
    if not isinstance(block, slice) or block.step not in (None, 1):
        raise NotImplementedError
    start = block.start or 0
    if isinstance(take, slice):
        return slice(start + (take.start or 0), start + (take.stop if take.stop is not None
                     else (block.stop - start)), take.step)  # fmt: skip
    arr = np.asarray(take)
    if arr.dtype.kind not in "iu" or arr.ndim != 1:
        raise NotImplementedError
    return arr.astype(np.int64) + start


def _push_selections(dsk: Any) -> Any:
    from dask.highlevelgraph import HighLevelGraph
    from dask.utils import ensure_dict

    graph = ensure_dict(dsk) if isinstance(dsk, HighLevelGraph) else dict(dsk)
    graph = convert_legacy_graph(graph)
    rewrites = {}
    for key, task in graph.items():
        if not (isinstance(task, Task) and task.func is _take_getitem and len(task.args) == 2):
            continue
        src_ref, taker_ref = task.args
        if not isinstance(src_ref, TaskRef):
            continue
        src = graph.get(src_ref.key)
        if not (isinstance(src, Task) and src.func is getter and len(src.args) >= 2):
            continue
        if not _is_archs4_array(_value(src.args[0], graph)):
            continue
        block_index = _value(src.args[1], graph)
        taker = _value(taker_ref, graph)
        if not (isinstance(block_index, tuple) and isinstance(taker, tuple) and len(taker) == 2):
            continue
        take = taker[1]
        if len(take) != len(block_index):
            continue
        try:
            fused = tuple(_fuse_axis(b, t) for b, t in zip(block_index, take, strict=True))
        except NotImplementedError:
            continue
        index_key = f"archs4x-pushdown-index-{dask.base.tokenize(fused)}"
        rewrites[index_key] = DataNode(index_key, fused)
        rewrites[key] = Task(key, getter, src.args[0], TaskRef(index_key), *src.args[2:])
    if not rewrites:
        return dsk
    graph.update(rewrites)
    _merge_pieces(graph, rewrites)
    return graph


def _merge_pieces(graph: dict, rewrites: dict) -> None:
    """Replace ``merge([getter(a, i1), getter(a, i2)], sorter)`` by one ``getter(a, i)``."""
    if _take_merge is None:  # pragma: no cover
        return
    for key, task in list(graph.items()):
        if not (isinstance(task, Task) and task.func is _take_merge and len(task.args) == 3):
            continue
        pieces, sorter_ref, axis = task.args
        if not isinstance(pieces, List) or not isinstance(axis, int):
            continue
        refs = pieces.args
        if not refs or not all(isinstance(r, TaskRef) and r.key in rewrites for r in refs):
            continue
        tasks = [rewrites[r.key] for r in refs]
        arrays = {repr(t.args[0]) for t in tasks}
        indexes = [_value(t.args[1], graph) for t in tasks]
        sorter = _value(sorter_ref, graph)
        if len(arrays) != 1 or not (isinstance(sorter, tuple) and len(sorter) == 2):
            continue
        others = {tuple(repr(ix[d]) for d in range(len(ix)) if d != axis) for ix in indexes}
        if len(others) != 1 or not all(isinstance(ix[axis], np.ndarray) for ix in indexes):
            continue
        combined = np.concatenate([ix[axis] for ix in indexes])[np.argsort(sorter[1])]
        fused = tuple(combined if d == axis else indexes[0][d] for d in range(len(indexes[0])))
        index_key = f"archs4x-pushdown-index-{dask.base.tokenize(fused)}"
        graph[index_key] = DataNode(index_key, fused)
        graph[key] = Task(key, getter, tasks[0].args[0], TaskRef(index_key), *tasks[0].args[2:])


def pushdown_optimize(dsk: Any, keys: Any, **kwargs: Any) -> Any:
    """Dask array optimisation: archs4x selection pushdown, then Dask's own passes."""
    if _take_getitem is not None and os.environ.get("ARCHS4X_PUSHDOWN", "1") != "0":
        try:
            dsk = _push_selections(dsk)
        except Exception:  # an optimisation must never break a computation
            pass
    return _dask_optimize(dsk, keys, **kwargs)


def enable() -> None:
    """Install :func:`pushdown_optimize` as Dask's array optimisation (done on import).

    Examples
    --------
    >>> import dask, archs4x
    >>> dask.config.get("array_optimize") is pushdown_optimize
    True"""
    current = dask.config.get("array_optimize", None)
    if current is None or current is _dask_optimize:
        dask.config.set(array_optimize=pushdown_optimize)


def disable() -> None:
    """Restore Dask's default array optimisation."""
    if dask.config.get("array_optimize", None) is pushdown_optimize:
        dask.config.set(array_optimize=None)
