"""Open a 1,000,000-sample ARCHS4 file: wall time and peak memory of ``open_dataset``.

Goal (issue: lazy datasets): under 2 s and under 1 GB.  Each repeat runs in a fresh
process so that the peak RSS is the open's own; the page cache is warm.

    python benchmarks/bench_open.py [--samples 1000000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

from _data import bench_file, save_results

CHILD = r"""
import json, resource, sys, time
t0 = time.perf_counter()
import archs4x
t_import = time.perf_counter() - t0
t0 = time.perf_counter()
ds = archs4x.open_dataset(sys.argv[1])
t_open = time.perf_counter() - t0
t0 = time.perf_counter()
html = ds._repr_html_()
t_repr = time.perf_counter() - t0
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"open_s": t_open, "import_s": t_import, "repr_html_s": t_repr,
                  "peak_rss_mb": rss, "n_samples": ds.sizes["sample"],
                  "coords": len(ds.coords)}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=1_000_000)
    ap.add_argument("--genes", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    path = str(bench_file(args.genes, args.samples))
    runs = []
    for _ in range(args.repeat):
        out = subprocess.run([sys.executable, "-c", CHILD, path], capture_output=True,
                             text=True, check=True)  # fmt: skip
        runs.append(json.loads(out.stdout))
    summary = {k: statistics.median(r[k] for r in runs)
               for k in ("open_s", "import_s", "repr_html_s", "peak_rss_mb")}  # fmt: skip
    print(f"file: {path} ({args.genes} genes x {args.samples:,} samples)")
    for k, v in summary.items():
        print(f"  {k:<14} {v:10.3f}")
    print("saved", save_results("open_1m_samples", {"file": path, "runs": runs,
                                                    "median": summary}))  # fmt: skip


if __name__ == "__main__":
    main()
