"""The analysis functions at scale (out of core) against the read floor, in the same run.

On a 67,186 x N-sample file in the ARCHS4 layout (N = 20,000 by default): the read floor
``ds.counts.sum().compute()``, then ``coexpression`` of 10 query genes (k=50, Pearson,
log-CPM), ``correlation`` of 2,000 genes, ``diffexp`` (Welch, log-CPM) of two groups of
min(5,000, N/2) samples, ``qc`` and ``score_genesets`` of 50 sets of 100 genes (mean_z:
two reads; rank: one).  Every run is a fresh subprocess on the threaded scheduler; runs
are interleaved (floor, functions, floor, functions, ...) so that a noisy neighbour hits
all of them alike; each figure is the median of ``--repeat`` runs with min and max kept.
"vs read floor" is the floor's median wall time divided by the function's (1.0 = as fast
as reading).  MB/s is MB of uint32 counts read per second of wall time (the counts the
function's input holds; diffexp reads only its two groups).  Peak RSS is the child's own
peak (``VmHWM``).

    python benchmarks/bench_analysis.py --samples 20000 --repeat 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _data import bench_file, save_results

FLOOR = "read floor"
TASKS = (
    FLOOR,
    "coexpression",
    "correlation",
    "diffexp",
    "qc",
    "score_genesets_mean_z",
    "score_genesets_rank",
)

_CHILD = r"""
import json, resource, sys, time
import numpy as np
import archs4x
path, task, group = sys.argv[1], sys.argv[2], int(sys.argv[3])
ds = archs4x.open_dataset(path)
rng = np.random.default_rng(0)
genes = ds.gene.values
n_genes, n = ds.sizes["gene"], ds.sizes["sample"]
t0, c0 = time.perf_counter(), time.process_time()
if task == "read floor":
    out = float(ds.counts.sum().compute())
    cells = n_genes * n
elif task == "coexpression":
    top = archs4x.coexpression(ds, list(genes[rng.choice(n_genes, 10, replace=False)]), k=50)
    out = float(np.nansum(top.correlation.values))
    cells = n_genes * n
elif task == "correlation":
    c = archs4x.correlation(ds, list(genes[rng.choice(n_genes, 2000, replace=False)]))
    out = float(np.nansum(c.values))
    cells = n_genes * n
elif task == "diffexp":
    pair = (ds.isel(sample=slice(0, group)), ds.isel(sample=slice(group, 2 * group)))
    res = archs4x.diffexp(ds.isel(sample=slice(0, 2 * group)), pair).compute()
    out = float(np.nansum(res.statistic.values))
    cells = n_genes * 2 * group
elif task == "qc":
    out = float(archs4x.qc(ds).library_size.sum().compute())
    cells = n_genes * n
else:
    method = task.rsplit("_", 1)[1] if task.endswith("rank") else "mean_z"
    sets = {f"set{i}": list(genes[rng.choice(n_genes, 100, replace=False)]) for i in range(50)}
    out = float(np.nansum(archs4x.score_genesets(ds, sets, method=method).values))
    cells = n_genes * n
wall, cpu = time.perf_counter() - t0, time.process_time() - c0
hwm = 0.0
for line in open("/proc/self/status"):
    if line.startswith("VmHWM:"):
        hwm = int(line.split()[1]) / 1024
print(json.dumps({"wall_s": wall, "cpu_s": cpu, "peak_rss_mb": hwm, "check": out,
                  "counts_mb": cells * 4 / 1e6}))
"""


def run(path, task, group) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, str(path), task, str(group)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def summary(values: list[float]) -> dict:
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=20_000)
    ap.add_argument("--genes", type=int, default=67_186)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--tasks", nargs="*", default=list(TASKS))
    args = ap.parse_args()
    path = bench_file(args.genes, args.samples)
    group = min(5_000, args.samples // 2)
    tasks = [FLOOR] + [t for t in args.tasks if t != FLOOR]
    raw: dict[str, list[dict]] = {t: [] for t in tasks}
    for r in range(args.repeat):
        for task in tasks:
            res = run(path, task, group)
            raw[task].append(res)
            print(
                f"[{r + 1}/{args.repeat}] {task:24s} {res['wall_s']:7.1f} s  "
                f"cpu {res['cpu_s']:7.1f} s  rss {res['peak_rss_mb']:6.0f} MB",
                flush=True,
            )
    floor = statistics.median(x["wall_s"] for x in raw[FLOOR])
    floor_cpu = statistics.median(x["cpu_s"] for x in raw[FLOOR])
    runs = {}
    for task, xs in raw.items():
        wall = [x["wall_s"] for x in xs]
        cpu = [x["cpu_s"] for x in xs]
        med = statistics.median(wall)
        runs[task] = {
            "wall_s": summary(wall),
            "cpu_s": summary(cpu),
            "counts_mb": xs[0]["counts_mb"],
            "mb_per_s": xs[0]["counts_mb"] / med,
            "vs_read_floor": floor / med,
            "vs_read_floor_mb_per_s": (xs[0]["counts_mb"] / med)
            / (raw[FLOOR][0]["counts_mb"] / floor),
            "vs_read_floor_cpu": floor_cpu / statistics.median(cpu),
            "peak_rss_mb": max(x["peak_rss_mb"] for x in xs),
            "checks": [x["check"] for x in xs],
        }
    out = save_results(
        f"analysis_{args.genes}x{args.samples}",
        {
            "file": str(path),
            "shape": [args.genes, args.samples],
            "repeat": args.repeat,
            "scheduler": "threads",
            "diffexp_group_samples": group,
            "statistic": "median (min, max kept)",
            "runs": runs,
        },
    )
    print(f"wrote {out}")
    for task, r in runs.items():
        print(
            f"{task:24s} median {r['wall_s']['median']:7.1f} s  {r['mb_per_s']:7.1f} MB/s  "
            f"x{r['vs_read_floor']:.2f} of floor  rss {r['peak_rss_mb']:.0f} MB"
        )


if __name__ == "__main__":
    main()
