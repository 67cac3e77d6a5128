"""Normalization at scale (out of core) and against archs4py / rnanorm in memory.

Part 1 (``--scale``): every method on a 67,186 x N-sample selection read from an
ARCHS4-layout file, on the threaded scheduler and on a LocalCluster of processes.  Each run
is a fresh subprocess; the normalized matrix is reduced to per-sample sums (so the output is
never materialized: 67,186 x 20,000 float64 would be 10.7 GB).  Peak RSS: for the threaded
scheduler the subprocess's own ``ru_maxrss``; for the cluster, the peak over time of the
summed RSS of the whole process tree (client + scheduler + workers), sampled every 0.1 s.
Throughput is MB of uint32 counts per second of wall time.

Part 2 (``--memory``): an in-memory 67,186 x 1,000 matrix (the first 1,000 samples of the
5,000-sample file): archs4py ``utils.normalize`` (quantile, log_quantile, cpm) and
rnanorm ``TMM().fit_transform`` against archs4x ``normalize`` in the same process.

    python benchmarks/bench_normalize.py --scale --samples 20000
    python benchmarks/bench_normalize.py --memory
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _data import bench_file, save_results

METHODS = ("quantile", "log_quantile", "cpm", "tmm")

_CHILD = r"""
import json, resource, sys, time
import archs4x
from archs4x.compute.normalize import normalize
path, method, scheduler = sys.argv[1:4]
ds = archs4x.open_dataset(path)
client = cluster = None
if scheduler == "distributed":
    from distributed import Client, LocalCluster
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                           memory_limit="1.4GiB", dashboard_address=None)
    client = Client(cluster)
t0 = time.perf_counter()
out = normalize(ds.counts, method, empty="nan").sum("gene").values
wall = time.perf_counter() - t0
if client is not None:
    client.close(); cluster.close()
print(json.dumps({"wall_s": wall, "self_maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "checksum": float(abs(out[out == out]).sum())}))
"""


def _tree_rss(pid: int) -> int:
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


def run_scale(path, method: str, scheduler: str) -> dict:
    proc = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(path), method, scheduler],
        stdout=subprocess.PIPE,
        text=True,
    )
    peak = 0
    done = threading.Event()

    def sample():
        nonlocal peak
        while not done.is_set():
            peak = max(peak, _tree_rss(proc.pid))
            time.sleep(0.1)

    watcher = threading.Thread(target=sample, daemon=True)
    watcher.start()
    out, _ = proc.communicate()
    done.set()
    watcher.join()
    if proc.returncode != 0:
        raise RuntimeError(f"{method}/{scheduler} failed with exit code {proc.returncode}")
    res = json.loads(out.strip().splitlines()[-1])
    res["tree_peak_rss_mb"] = peak / 2**20
    return res


def scale(args) -> dict:
    path = bench_file(67_186, args.samples)
    mb = 67_186 * args.samples * 4 / 1e6
    results = {}
    for scheduler in args.schedulers:
        for method in args.methods:
            r = run_scale(path, method, scheduler)
            r["mb_per_s"] = mb / r["wall_s"]
            peak = r["tree_peak_rss_mb"] if scheduler == "distributed" else r["self_maxrss_mb"]
            r["peak_rss_mb"] = peak
            results[f"{method}/{scheduler}"] = r
            print(f"{method:>12} {scheduler:>11}: {r['wall_s']:7.1f} s  {r['mb_per_s']:6.1f} MB/s  "
                  f"peak RSS {peak:6.0f} MB", flush=True)  # fmt: skip
    return {"file": str(path), "shape": [67_186, args.samples], "counts_mb": mb, "runs": results}


def _best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


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
        for method in ("quantile", "log_quantile", "cpm"):
            if method == "cpm":  # archs4py divides by zero silently; compare on non-empty samples
                sub, subdf = arr.isel(sample=keep), df.loc[:, keep]
            else:
                sub, subdf = arr, df
            ours = _best(lambda s=sub, m=method: normalize(s, m).values, args.repeat)
            peer = _best(lambda d=subdf, m=method: a4_normalize(d, m), args.repeat)
            results[method] = {
                "archs4x_s": ours,
                "archs4py_s": peer,
                "archs4py / archs4x": peer / ours,
            }
            print(f"{method:>12}: archs4x {ours:6.2f} s  archs4py {peer:6.2f} s  "
                  f"ratio {peer / ours:5.2f}", flush=True)  # fmt: skip
        sub = arr.isel(sample=keep)
        xt = x[:, keep].T.astype(np.float64)
        ours = _best(lambda: normalize(sub, "tmm").values, args.repeat)
        peer = _best(lambda: TMM().fit_transform(xt), args.repeat)
        results["tmm"] = {"archs4x_s": ours, "rnanorm_s": peer, "rnanorm / archs4x": peer / ours}
        print(
            f"{'tmm':>12}: archs4x {ours:6.2f} s  rnanorm  {peer:6.2f} s  ratio {peer / ours:5.2f}"
        )
    return {"shape": list(x.shape), "repeat": args.repeat, "runs": results}


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--scale", action="store_true", help="out-of-core runs on the big file")
    ap.add_argument("--memory", action="store_true", help="in-memory runs against archs4py/rnanorm")
    ap.add_argument("--samples", type=int, default=20_000)
    ap.add_argument("--memory-samples", type=int, default=1_000)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    ap.add_argument("--schedulers", nargs="+", default=["threads", "distributed"],
                    choices=["threads", "distributed"])  # fmt: skip
    args = ap.parse_args()
    if not (args.scale or args.memory):
        args.scale = args.memory = True
    if args.memory:
        res = memory(args)
        print("saved", save_results("normalize_memory", res))
    if args.scale:
        res = scale(args)
        print("saved", save_results(f"normalize_scale_{args.samples}", res))


if __name__ == "__main__":
    main()
