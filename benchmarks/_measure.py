"""Measuring helpers shared by the benchmarks: spreads of repeated timings, and a run of a
child Python process with the peak RSS of its whole process tree."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import threading
import time


def spread(values: list[float]) -> dict:
    """``{"min", "median", "max"}`` of repeated measurements."""
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def tree_rss(pid: int) -> int:
    """Summed RSS (bytes) of process ``pid`` and all its descendants (0 once it is gone)."""
    import psutil

    try:
        proc = psutil.Process(pid)
        procs = [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    total = 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total


def run_child(code: str, args: list[str], label: str, scheduler: str) -> dict:
    """Run ``python -c code *args``; return the JSON of its last stdout line, plus
    ``tree_peak_rss_mb`` (the process tree's peak, sampled every 0.1 s) and ``peak_rss_mb``:
    that tree peak on a ``distributed`` cluster, else the child's own ``self_maxrss_mb``."""
    proc = subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE, text=True)
    peak = 0
    done = threading.Event()

    def sample():
        nonlocal peak
        while not done.is_set():
            peak = max(peak, tree_rss(proc.pid))
            time.sleep(0.1)

    watcher = threading.Thread(target=sample, daemon=True)
    watcher.start()
    out, _ = proc.communicate()
    done.set()
    watcher.join()
    if proc.returncode != 0:
        raise RuntimeError(f"{label}/{scheduler} failed with exit code {proc.returncode}")
    res = json.loads(out.strip().splitlines()[-1])
    res["tree_peak_rss_mb"] = peak / 2**20
    own = res["self_maxrss_mb"]
    res["peak_rss_mb"] = res["tree_peak_rss_mb"] if scheduler == "distributed" else own
    return res
