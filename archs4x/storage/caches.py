"""Bounded, thread-safe, per-process caches, and :func:`clear_caches`.

Everything archs4x keeps in memory between calls (open files, chunk readers, parsed
B-tree nodes, metadata columns) lives in an :class:`LRUCache` registered here, bounded by
an option, so nothing grows without limit and :func:`clear_caches` empties it all.
Cache keys include the process id where the value must not cross a ``fork``.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, Generic, TypeVar

__all__ = ["LRUCache", "clear_caches", "register_cleanup"]

V = TypeVar("V")

_REGISTRY: list[LRUCache] = []
_CLEANUPS: list[Callable[[], None]] = []
_REGISTRY_LOCK = threading.Lock()


class LRUCache(Generic[V]):
    """A least-recently-used mapping bounded by a total cost.

    Parameters
    ----------
    name : str
        For messages and debugging.
    capacity : callable returning int
        The budget, read at every insertion (so it follows :func:`archs4x.set_options`).
    cost : callable, optional
        Cost of one value (default 1: the capacity counts entries).

    Examples
    --------
    >>> cache = LRUCache("demo", capacity=lambda: 2)
    >>> for key, value in (("a", 1), ("b", 2), ("c", 3)):
    ...     _ = cache.put(key, value)
    >>> cache.get("a") is None, cache.get("c")
    (True, 3)
    """

    def __init__(
        self,
        name: str,
        capacity: Callable[[], int],
        cost: Callable[[Any], int] | None = None,
    ) -> None:
        self.name = name
        self._capacity = capacity
        self._cost = cost or (lambda value: 1)
        self._items: OrderedDict[Hashable, tuple[V, int]] = OrderedDict()
        self._total = 0
        self._lock = threading.Lock()
        with _REGISTRY_LOCK:
            _REGISTRY.append(self)

    def get(self, key: Hashable) -> V | None:
        with self._lock:
            item = self._items.get(key)
            if item is None:
                return None
            self._items.move_to_end(key)
            return item[0]

    def put(self, key: Hashable, value: V) -> V:
        """Store ``value`` (or keep the value already stored under ``key``); return it."""
        cost = int(self._cost(value))
        with self._lock:
            old = self._items.get(key)
            if old is not None:
                self._items.move_to_end(key)
                return old[0]
            self._items[key] = (value, cost)
            self._total += cost
            budget = self._capacity()
            while self._total > budget and len(self._items) > 1:
                _, (_, c) = self._items.popitem(last=False)
                self._total -= c
            return value

    def put_many(self, items) -> None:
        """Store several ``(key, value)`` pairs under one lock (existing keys kept)."""
        cost = self._cost
        with self._lock:
            store = self._items
            for key, value in items:
                if key not in store:
                    c = int(cost(value))
                    store[key] = (value, c)
                    self._total += c
            budget = self._capacity()
            while self._total > budget and len(store) > 1:
                _, (_, c) = store.popitem(last=False)
                self._total -= c

    def get_or_make(self, key: Hashable, make: Callable[[], V]) -> V:
        """The value under ``key``, made (outside the lock) and stored if missing."""
        value = self.get(key)
        if value is None:
            value = self.put(key, make())
        return value

    def discard(self, predicate: Callable[[Hashable], bool]) -> None:
        """Drop every entry whose key satisfies ``predicate``."""
        with self._lock:
            for key in [k for k in self._items if predicate(k)]:
                self._total -= self._items.pop(key)[1]

    def items(self) -> list[tuple[Hashable, V]]:
        """A snapshot of the entries (key, value), least recently used first."""
        with self._lock:
            return [(k, v) for k, (v, _) in self._items.items()]

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._total = 0

    def __len__(self) -> int:
        return len(self._items)

    @property
    def total(self) -> int:
        """The summed cost of the entries held."""
        return self._total


def register_cleanup(func: Callable[[], None]) -> Callable[[], None]:
    """Run ``func`` in :func:`clear_caches` (thread pools, open handles)."""
    with _REGISTRY_LOCK:
        if func not in _CLEANUPS:
            _CLEANUPS.append(func)
    return func


def clear_caches() -> None:
    """Empty every archs4x in-memory cache of this process and stop its reader threads.

    Open files are closed once nothing refers to them.  On-disk caches (metadata columns)
    are not touched: they are keyed by file identity and never served stale.

    Examples
    --------
    >>> import archs4x
    >>> archs4x.clear_caches()
    """
    with _REGISTRY_LOCK:
        caches = list(_REGISTRY)
        cleanups = list(_CLEANUPS)
    for func in cleanups:  # first: they may need what the caches hold (open handles)
        func()
    for cache in caches:
        cache.clear()
