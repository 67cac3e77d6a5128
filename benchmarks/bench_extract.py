"""Materialise the counts of a query: 1,000 random samples, all genes, archs4x vs archs4py.

Same file (67,186 genes x 5,000 samples in the exact ARCHS4 layout), same samples, same
run.  archs4x's query path ``ds.archs4.rand(1000).counts.values`` and its compat
``archs4x.compat.data.rand`` / ``data.index`` are timed against archs4py's
``data.rand`` / ``data.index`` (which pick the same samples for the same seed); the
outputs are checked to be identical.  The OS page cache is warmed first (one untimed
read), so the figures compare the libraries, not the disk.  Each contestant runs
``--repeat`` times (archs4py ``--peer-repeat`` times) and the best time is compared
(timeit's convention: on a shared machine the minimum is the least disturbed run); all
times are saved.  The Dataset path for the same positions, ``ds.isel(sample=idx)
.counts.values``, is timed against the chunk reader alone (goal: within 1.15x) and
against archs4py ``data.index`` (goal: >= 12x).

    python benchmarks/bench_extract.py [--samples 1000] [--repeat 5] [--peer-repeat 2]
"""

from __future__ import annotations

import argparse
import random
import time

import numpy as np
import pandas as pd
from _data import bench_file, save_results

import archs4x
import archs4x.accessor
import archs4x.compat as a4
from archs4x.storage import open_source


def timed(fn, repeat: int):
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), times, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=1000)
    ap.add_argument("--n-file-samples", type=int, default=5000)
    ap.add_argument("--genes", type=int, default=67_186)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--peer-repeat", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()

    import archs4py

    path = bench_file(args.genes, args.n_file_samples)
    file = str(path)
    n, seed = args.samples, args.seed
    print(f"file: {path.name}, {n} random samples (seed {seed}), all genes")
    with open(path, "rb") as fh:  # warm the page cache for everyone
        while fh.read(64 << 20):
            pass

    t0 = time.perf_counter()
    ds = archs4x.open_dataset(path)
    first = ds.archs4.rand(n, seed=seed).counts.values
    t_first = time.perf_counter() - t0
    t_query, q_times, values = timed(lambda: ds.archs4.rand(n, seed=seed).counts.values,
                                     args.repeat)  # fmt: skip
    t_crand, c_times, ours = timed(lambda: a4.data.rand(file, n, seed=seed, silent=True),
                                   args.repeat)  # fmt: skip
    positions = sorted(random.Random(seed).sample(range(ds.sizes["sample"]), n))
    t_cindex, i_times, ours_idx = timed(lambda: a4.data.index(file, positions, silent=True),
                                        args.repeat)  # fmt: skip
    reader = open_source(path).counts_reader()
    t_reader, rd_times, by_reader = timed(lambda: reader.read(slice(None), positions),
                                          args.repeat)  # fmt: skip
    t_isel, is_times, by_isel = timed(lambda: ds.isel(sample=positions).counts.values,
                                      args.repeat)  # fmt: skip
    print(f"  archs4x ds.archs4.rand(n).counts.values  {t_query:7.2f} s  (first, incl. open: "
          f"{t_first:.2f} s)")  # fmt: skip
    print(f"  archs4x ds.isel(sample=idx).counts.values {t_isel:6.2f} s")
    print(f"  archs4x chunk reader alone               {t_reader:7.2f} s")
    print(f"  archs4x compat data.rand                 {t_crand:7.2f} s")
    print(f"  archs4x compat data.index                {t_cindex:7.2f} s", flush=True)

    t_peer_rand, r_times, theirs = timed(
        lambda: archs4py.data.rand(file, n, seed=seed, silent=True), args.peer_repeat
    )
    print(f"  archs4py data.rand                       {t_peer_rand:7.2f} s", flush=True)
    t_peer_index, x_times, theirs_idx = timed(
        lambda: archs4py.data.index(file, positions, silent=True), args.peer_repeat
    )
    print(f"  archs4py data.index                      {t_peer_index:7.2f} s")

    same = True
    try:
        pd.testing.assert_frame_equal(ours, theirs)
        pd.testing.assert_frame_equal(ours_idx, theirs_idx)
        np.testing.assert_array_equal(values, theirs.to_numpy())
        np.testing.assert_array_equal(first, values)
        np.testing.assert_array_equal(by_isel, theirs_idx.to_numpy())
        np.testing.assert_array_equal(by_reader, by_isel)
    except AssertionError as exc:
        same = False
        print(f"outputs differ: {exc}")
    summary = {
        "same_results": same,
        "archs4py_rand_over_query": t_peer_rand / t_query,
        "archs4py_rand_over_compat_rand": t_peer_rand / t_crand,
        "archs4py_index_over_compat_index": t_peer_index / t_cindex,
        "archs4py_index_over_query": t_peer_index / t_query,
        "archs4py_index_over_dataset_isel": t_peer_index / t_isel,
        "dataset_isel_over_reader": t_isel / t_reader,
    }
    goals = {"dataset_isel_over_reader": "goal <= 1.15", "archs4py_index_over_dataset_isel":
             "goal >= 12"}  # fmt: skip
    print(f"same results: {same}")
    for k, v in summary.items():
        if k != "same_results":
            print(f"  {k}: {v:.2f}x ({goals.get(k, 'goal >= 8')})")
    out = save_results(f"extract_{n}_of_{args.n_file_samples}", {
        "file": path.name, "samples": n, "seed": seed, "repeat": args.repeat,
        "seconds": {"archs4x_query": q_times, "archs4x_query_first_incl_open": t_first,
                    "compat_rand": c_times, "compat_index": i_times,
                    "archs4py_rand": r_times, "archs4py_index": x_times,
                    "dataset_isel": is_times, "reader": rd_times},
        "statistic": "min",
        "summary": summary})  # fmt: skip
    print(f"saved {out}")
    if not same:
        raise SystemExit("archs4x and archs4py returned different counts")


if __name__ == "__main__":
    main()
