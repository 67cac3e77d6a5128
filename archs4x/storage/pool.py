"""The thread pool that fetches and inflates chunks.

``os.pread``, libdeflate and Blosc release the GIL, so chunk work scales over threads.
The pool is made on first use with the ``read_threads`` option, remade when that option
changes, and shut down by :func:`archs4x.clear_caches`.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from .._options import read_threads
from .caches import register_cleanup

__all__ = ["reader_pool", "shutdown"]

_lock = threading.Lock()
_state: dict[str, ThreadPoolExecutor | int | None] = {"pool": None, "size": 0}


def reader_pool() -> tuple[ThreadPoolExecutor, int]:
    """The shared pool and its number of threads.

    Examples
    --------
    >>> pool, n = reader_pool()
    >>> n >= 1 and pool.submit(sum, [1, 2]).result() == 3
    True
    """
    n = read_threads()
    with _lock:
        pool = _state["pool"]
        if pool is None or _state["size"] != n:
            old = pool
            pool = ThreadPoolExecutor(n, thread_name_prefix="archs4x-read")
            _state["pool"], _state["size"] = pool, n
            if isinstance(old, ThreadPoolExecutor):
                old.shutdown(wait=False)
        return pool, n  # type: ignore[return-value]


@register_cleanup
def shutdown() -> None:
    """Stop the pool's threads (a later read starts a new pool)."""
    with _lock:
        pool, _state["pool"], _state["size"] = _state["pool"], None, 0
    if isinstance(pool, ThreadPoolExecutor):
        pool.shutdown(wait=False)
