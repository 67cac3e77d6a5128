"""Normalization at scale (out of core) against the read floor, and in memory against archs4py.

Part 1 (``--scale``): on 67,186 x N-sample files in the ARCHS4 layout (N = 5,000 and
20,000 by default), the read floor ``ds.counts.sum().compute()`` and every method
``normalize(ds.counts, method).sum("gene", skipna=False).values``, on the threaded scheduler and on a
LocalCluster of 2 worker processes.  Every run is a fresh subprocess; runs are
interleaved (floor, methods, floor, methods, ...) so that a noisy neighbour hits all of
them alike, and each figure is the median of ``--repeat`` runs with the min and max
kept.  ``--realscale K`` does the same on K random samples of the file with the real
file's structure (67,186 x 1,000,000, 34M chunks), so selection and chunk lookup are
those of the real file; the samples are drawn among its columns of real counts (most of
its columns are zero chunks, which would make every pass trivial).  The normalized matrix is reduced to per-sample sums, so it is never materialized
(67,186 x 20,000 float64 would be 10.7 GB).  The reduction is a plain sum, like the read
floor's: xarray's default NaN-skipping sum of a float array adds three passes of its own
(``isnan``, ``where``, ``sum``) that measure xarray, not the normalization (results before
2026-12-03 included them).  "vs read floor" is the floor's median time
divided by the method's median time, both from this run.  Peak RSS: for the threaded
scheduler the subprocess's own peak (``VmHWM``); for the cluster the peak over time of the
summed RSS of the process tree (client + scheduler + workers), sampled every 0.1 s.
MB/s is MB of uint32 counts per second of wall time.  On a shared machine wall time
mostly measures the neighbours; with threads the subprocess's CPU time (all of the work
is in it) is also reported, against the floor's.

Part 2 (``--memory``): an in-memory 67,186 x 1,000 matrix (the first 1,000 samples of
the 5,000-sample file): archs4py ``utils.normalize`` (quantile, log_quantile, cpm) on a
pandas DataFrame and rnanorm ``TMM().fit_transform`` against archs4x ``normalize`` on a
NumPy-backed DataArray, in the same process.

    python benchmarks/bench_normalize.py --scale --samples 5000 20000 --repeat 3
    python benchmarks/bench_normalize.py --realscale 2000 --repeat 3  # the 34M-chunk file
    python benchmarks/bench_normalize.py --memory
    python benchmarks/bench_normalize.py --markdown     # the README tables, from the JSON
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _data import DATA, RESULTS, bench_file, save_results
from _measure import run_child, spread

METHODS = ("cpm", "quantile", "log_quantile", "tmm")
#: The file with the real file's structure (67,186 x 1,000,000, 34M chunks of (2000, 1)).
REALSCALE = DATA / "realscale_67186x1000000.h5"
REALSCALE_SAMPLES = 1_000_000
FLOOR = "read floor"

_CHILD = r"""
import json, resource, sys, time
import numpy as np
import archs4x
from archs4x.compute.normalize import normalize
path, method, scheduler, select = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
ds = archs4x.open_dataset(path)
if select:  # random samples (seed 0) among the real-scale file's columns of real counts
    pool = json.load(open(path + ".json"))["real_columns"]
    ds = ds.isel(sample=np.sort(np.random.default_rng(0).choice(pool, select, replace=False)))
client = cluster = None
if scheduler == "distributed":
    from distributed import Client, LocalCluster
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                           memory_limit="2.5GiB", dashboard_address=None)
    client = Client(cluster)
usage = resource.getrusage(resource.RUSAGE_SELF)
cpu0 = usage.ru_utime + usage.ru_stime
t0 = time.perf_counter()
if method == "read floor":
    out = ds.counts.sum().compute().values.reshape(1)
else:
    out = normalize(ds.counts, method, empty="nan").sum("gene", skipna=False).values
wall = time.perf_counter() - t0
usage = resource.getrusage(resource.RUSAGE_SELF)
cpu = usage.ru_utime + usage.ru_stime - cpu0
if client is not None:
    client.close(); cluster.close()
def hwm_mb():  # this process's peak RSS (ru_maxrss would include the parent's, from fork)
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"wall_s": wall, "cpu_s": cpu, "self_maxrss_mb": hwm_mb(),
                  "checksum": float(abs(out[out == out]).sum())}))
"""


def run_one(path, method: str, scheduler: str, select: int = 0) -> dict:
    """One run in a fresh subprocess (of ``select`` random samples, if > 0): wall time,
    peak RSS, checksum."""
    return run_child(_CHILD, [str(path), method, scheduler, str(select)], method, scheduler)


def scale_one(n_samples: int, args, path=None, select: int = 0) -> dict:
    """Floor and methods on the 67,186 x ``n_samples`` file, or on ``select`` random samples
    of ``path`` (the real-scale file)."""
    path = path or bench_file(67_186, n_samples)
    n_samples = select or n_samples
    mb = 67_186 * n_samples * 4 / 1e6
    runs: dict[str, dict] = {}
    names = [FLOOR, *args.methods]
    for scheduler in args.schedulers:
        raw: dict[str, list[dict]] = {m: [] for m in names}
        for rep in range(args.repeat):
            for method in names:
                r = run_one(path, method, scheduler, select)
                raw[method].append(r)
                print(f"  {n_samples} {scheduler:>11} run {rep + 1}: {method:>12} "
                      f"{r['wall_s']:7.2f} s  peak RSS {r['peak_rss_mb']:6.0f} MB",
                      flush=True)  # fmt: skip
        floor = statistics.median(r["wall_s"] for r in raw[FLOOR])
        floor_cpu = statistics.median(r["cpu_s"] for r in raw[FLOOR])
        for method in names:
            walls = [r["wall_s"] for r in raw[method]]
            med = statistics.median(walls)
            runs[f"{method}/{scheduler}"] = {
                "wall_s": spread(walls),
                "mb_per_s": mb / med,
                "vs_read_floor": floor / med,
                # CPU seconds of the process (threads: all the work; cluster: the client only)
                "cpu_s": spread(cpus := [r["cpu_s"] for r in raw[method]]),
                "vs_read_floor_cpu": floor_cpu / statistics.median(cpus),
                "peak_rss_mb": max(r["peak_rss_mb"] for r in raw[method]),
                "checksums": sorted({round(r["checksum"], 3) for r in raw[method]}),
                "runs": raw[method],
            }
    return {"file": str(path), "shape": [67_186, n_samples], "counts_mb": mb,
            "selection": f"{select:,} random samples with real counts (seed 0)" if select else "all samples",
            "repeat": args.repeat, "statistic": "median (min, max kept)", "runs": runs}  # fmt: skip


def table_markdown(result: dict) -> str:
    """The issue's table (time, MB/s, vs read floor, peak RSS) from a saved result."""
    n = result["shape"][1]
    where = (
        f" of {os.path.basename(result['file'])} (the real file's 34M chunks)"
        if result.get("selection", "all samples") != "all samples"
        else ""
    )
    lines = [f"67,186 x {n:,} samples{where} ({result['counts_mb']:,.0f} MB of counts), median "
             "(min-max, runs):", "",
             "| pass | scheduler | time | MB/s | vs read floor | CPU time, vs floor | peak RSS |",
             "|---|---|---|---|---|---|---|"]  # fmt: skip
    for key, r in result["runs"].items():
        method, scheduler = key.split("/")
        w = r["wall_s"]
        label = method if method == FLOOR else f'`normalize(method="{method}")`'
        cpu = (f"{r['cpu_s']['median']:.1f} s, {r['vs_read_floor_cpu']:.2f}x"
               if scheduler == "threads" and "cpu_s" in r else "n/a (client only)")  # fmt: skip
        lines.append(
            f"| {label} | {scheduler} | {w['median']:.2f} s ({w['min']:.2f}-{w['max']:.2f}, "
            f"{len(r['runs'])} run(s)) | "
            f"{r['mb_per_s']:.0f} | {r['vs_read_floor']:.2f}x | {cpu} | "
            f"{r['peak_rss_mb'] / 1024:.2f} GB |"
        )
    return "\n".join(lines)


def _timed(fn, repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def memory(args) -> dict:
    import dask
    import pandas as pd
    import xarray as xr
    from archs4py.utils import normalize as a4_normalize
    from rnanorm import TMM

    import archs4x
    from archs4x.compute.normalize import normalize

    path = bench_file(67_186, 5_000)
    ds = archs4x.open_dataset(path).isel(sample=slice(0, args.memory_samples))
    x = ds.counts.values
    arr = xr.DataArray(x, dims=("gene", "sample"),
                       coords={"gene": ds.gene.values, "sample": ds.sample.values})  # fmt: skip
    df = pd.DataFrame(x, index=arr.gene.values, columns=arr.sample.values)
    keep = x.sum(axis=0) > 0  # rnanorm and edgeR cannot take empty libraries
    results = {}
    with dask.config.set(scheduler="threads"):
        for method in ("cpm", "quantile", "log_quantile"):
            if method == "cpm":  # archs4py divides by zero silently; compare on non-empty samples
                sub, subdf = arr.isel(sample=keep), df.loc[:, keep]
            else:
                sub, subdf = arr, df
            ours, peer = [], []
            for _ in range(args.repeat):  # interleaved
                ours += _timed(lambda s=sub, m=method: normalize(s, m).values, 1)
                peer += _timed(lambda d=subdf, m=method: a4_normalize(d, m), 1)
            results[method] = {"archs4x_s": spread(ours), "archs4py_s": spread(peer),
                               "archs4py / archs4x": statistics.median(peer)
                               / statistics.median(ours)}  # fmt: skip
            print(f"{method:>12}: archs4x {statistics.median(ours):6.2f} s  archs4py "
                  f"{statistics.median(peer):6.2f} s  ratio "
                  f"{results[method]['archs4py / archs4x']:5.2f}", flush=True)  # fmt: skip
        sub = arr.isel(sample=keep)
        xt = x[:, keep].T.astype(np.float64)
        ours, peer = [], []
        for _ in range(args.repeat):
            ours += _timed(lambda: normalize(sub, "tmm").values, 1)
            peer += _timed(lambda: TMM().fit_transform(xt), 1)
        ratio = statistics.median(peer) / statistics.median(ours)
        results["tmm"] = {"archs4x_s": spread(ours), "rnanorm_s": spread(peer),
                          "rnanorm / archs4x": ratio}  # fmt: skip
        print(f"{'tmm':>12}: archs4x {statistics.median(ours):6.2f} s  rnanorm  "
              f"{statistics.median(peer):6.2f} s  ratio {ratio:5.2f}")  # fmt: skip
    return {"shape": list(x.shape), "repeat": args.repeat, "statistic": "median",
            "runs": results}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--scale", action="store_true", help="out-of-core runs on the big files")
    ap.add_argument("--memory", action="store_true", help="in-memory runs against archs4py/rnanorm")
    ap.add_argument("--markdown", action="store_true", help="print the tables from the JSON")
    ap.add_argument("--samples", type=int, nargs="+", default=[5_000, 20_000])
    ap.add_argument(
        "--realscale",
        type=int,
        metavar="K",
        help=f"out-of-core runs on K random samples of {REALSCALE.name}",
    )
    ap.add_argument("--memory-samples", type=int, default=1_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    ap.add_argument("--schedulers", nargs="+", default=["threads", "distributed"],
                    choices=["threads", "distributed"])  # fmt: skip
    args = ap.parse_args()
    if args.markdown:
        paths = [RESULTS / f"normalize_scale_{n}.json" for n in args.samples]
        for path in [*paths, *sorted(RESULTS.glob("normalize_realscale_*.json"))]:
            if path.exists():
                print(table_markdown(json.loads(path.read_text())), end="\n\n")
        return
    if args.realscale:
        if not REALSCALE.exists():
            raise SystemExit(f"{REALSCALE} does not exist: python benchmarks/bench_read.py "
                             "--files realscale writes it")  # fmt: skip
        res = scale_one(REALSCALE_SAMPLES, args, path=REALSCALE, select=args.realscale)
        print(table_markdown(res))
        print("saved", save_results(f"normalize_realscale_{args.realscale}", res))
        return
    if not (args.scale or args.memory):
        args.scale = args.memory = True
    if args.memory:
        res = memory(args)
        print("saved", save_results("normalize_memory", res))
    if args.scale:
        for n in args.samples:
            res = scale_one(n, args)
            print(table_markdown(res))
            print("saved", save_results(f"normalize_scale_{n}", res))


if __name__ == "__main__":
    main()
