"""Benchmark input files in the exact ARCHS4 layout, generated once into benchmarks/data/.

Every benchmark takes its file from here so that all peers are timed on the same file.
Set ``ARCHS4X_BENCH_DIR`` to keep them elsewhere.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path

from archs4x.datasets import write_archs4_file

HERE = Path(__file__).resolve().parent
DATA = Path(os.environ.get("ARCHS4X_BENCH_DIR", HERE / "data"))
RESULTS = HERE / "results"


def bench_file(n_genes: int = 67_186, n_samples: int = 5_000, *, seed: int = 0, **kw) -> Path:
    """Path of a benchmark file of that shape, written on first use (atomically)."""
    extra = "".join(f"_{k}-{v}" for k, v in sorted(kw.items()))
    path = DATA / f"bench_{n_genes}x{n_samples}_s{seed}{extra}.h5"
    if not path.exists():
        t0 = time.perf_counter()
        print(f"writing {path.name} ...", file=sys.stderr, flush=True)
        write_archs4_file(path, n_genes=n_genes, n_samples=n_samples, seed=seed, **kw)
        print(f"  done in {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    return path


def save_results(name: str, results: dict) -> Path:
    """Write ``results`` (plus machine facts) to benchmarks/results/<name>.json."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    results = {
        "benchmark": name,
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform()},
        **results,
    }  # fmt: skip
    out = RESULTS / f"{name}.json"
    out.write_text(json.dumps(results, indent=2, default=str) + "\n")
    return out
