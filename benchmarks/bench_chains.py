"""Chained selections: chunks read against chunks needed, and time, at two scales.

The chains of the selection-model issue, each followed by ``.counts.values``, on a
67,186 x 5,000 file and on the real-scale structure (67,186 x 1,000,000, 34 million
chunks of (2000, 1): ``archs4x.datasets.realscale``).  Chunks are counted by the reader
(every chunk served, fill-value chunks included); "needed" is what the selection covers.

At real scale each chain runs twice: with the B-tree walked per read (a fresh file, no
chunk table) and with the chunk table (``archs4x.storage.sources.build_chunk_table``,
built once and timed).  Peers in the same run: archs4py ``data.index`` and h5py for 300
random samples and for never-written samples, and ``dask.optimize`` of an unrelated
40,000-chunk graph with and without ``import archs4x`` (separate processes).

    python benchmarks/bench_chains.py [--repeat 3] [--skip-archs4py]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
from _data import DATA, bench_file, save_results

import archs4x
from archs4x.datasets.realscale import realscale_layout, write_realscale_file
from archs4x.storage import open_source
from archs4x.storage.sources import build_chunk_table


def timed(fn, repeat: int):
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return out, {"min": min(times), "median": statistics.median(times), "max": max(times)}


def chains(n_samples: int, rng: np.random.Generator):
    """(name, selection, needed chunks as a function of the result)."""
    fifty = np.sort(rng.choice(n_samples, 50, replace=False))
    return [
        ("isel 50 positions", lambda d: d.isel(sample=fifty)),
        ("remove_single_cell().rand(50)", lambda d: d.archs4.remove_single_cell().archs4.rand(50)),
        ("rand(50, remove_sc=True)", lambda d: d.archs4.rand(50, remove_sc=True)),
        ("search('liver').rand(20)", lambda d: d.archs4.search("liver").archs4.rand(20)),
        ("isel(slice(0, 1000)).isel([3, 4])",
         lambda d: d.isel(sample=slice(0, 1000)).isel(sample=[3, 4])),
        ("sortby(singlecellprobability).isel(slice(0, 3))",
         lambda d: d.sortby("singlecellprobability").isel(sample=slice(0, 3))),
        ("search('myoblast').genes(['MYOD1'])",
         lambda d: d.archs4.search("myoblast").archs4.genes(["MYOD1"])),
    ]  # fmt: skip


def needed(out, reader) -> int:
    rows = np.asarray(out.counts.data.rows)
    cols = np.asarray(out.counts.data.cols)
    if not (rows.size and cols.size):
        return 0
    cr, cc = reader.chunks
    return int(np.unique(rows // cr).size * np.unique(cols // cc).size)


def run_chains(path: str, repeat: int, label: str) -> list[dict]:
    ds = archs4x.open_dataset(path)
    reader = open_source(path).counts_reader()
    rows = []
    for name, select in chains(ds.sizes["sample"], np.random.default_rng(7)):
        out = select(ds)
        before = reader.stats.chunks
        out.counts.values  # noqa: B018  (first run: counted, cold caches)
        read = reader.stats.chunks - before
        _, t = timed(lambda out=out: out.counts.values, repeat)
        rows.append({"chain": name, "mode": label, "samples": int(out.sizes["sample"]),
                     "chunks_read": int(read), "chunks_needed": needed(out, reader),
                     "time_s": t})  # fmt: skip
        print(f"  {label:>10} {name:<48} read {read:>7,} needed {rows[-1]['chunks_needed']:>7,}"
              f"  {t['median']:.3f} s", flush=True)  # fmt: skip
    return rows


_OPTIMIZE = """
import sys, time, dask, dask.array as da
if sys.argv[1] == "1":
    import archs4x
x = (da.ones((200, 200_000), chunks=(200, 5)) + 1).sum(axis=0)
times = []
for _ in range(3):
    t0 = time.perf_counter(); dask.optimize(x); times.append(time.perf_counter() - t0)
print(min(times))
"""


def unrelated_graph() -> dict:
    out = {}
    for flag, name in (("0", "without archs4x"), ("1", "with import archs4x")):
        r = subprocess.run([sys.executable, "-c", _OPTIMIZE, flag], capture_output=True,
                           text=True, check=True)  # fmt: skip
        out[name] = float(r.stdout.strip())
    out["ratio"] = out["with import archs4x"] / out["without archs4x"]
    return out


def real_scale(repeat: int, skip_archs4py: bool) -> dict:
    path = DATA / "realscale_67186x1000000.h5"
    if not path.exists():
        print(f"writing {path.name} (a few minutes) ...", file=sys.stderr, flush=True)
        write_realscale_file(path)
    info = realscale_layout(path)
    res: dict = {"file": str(path), "chunks": info["chunks"]}
    # the B-tree walked per read: a fresh cache folder holds no chunk table
    with tempfile.TemporaryDirectory() as cache, archs4x.set_options(cache_dir=cache):
        archs4x.clear_caches()
        res["btree"] = run_chains(str(path), repeat, "btree")
        rng = np.random.default_rng(3)
        reader = open_source(path).counts_reader()
        picks = [np.sort(rng.choice(1_000_000, 1000, replace=False)) for _ in range(repeat)]
        times = []
        for cols in picks:  # new samples each time: nothing cached
            t0 = time.perf_counter()
            reader.read(slice(None), cols)
            times.append(time.perf_counter() - t0)
        res["1000_random_btree_s"] = {"min": min(times), "median": statistics.median(times),
                                      "max": max(times)}  # fmt: skip
    archs4x.clear_caches()
    t0 = time.perf_counter()
    build_chunk_table(path, progress=False)
    res["chunk_table_build_s"] = time.perf_counter() - t0
    archs4x.clear_caches()
    res["table"] = run_chains(str(path), repeat, "table")
    reader = open_source(path).counts_reader()
    rng = np.random.default_rng(3)
    times = []
    for _ in range(repeat):
        cols = np.sort(rng.choice(1_000_000, 1000, replace=False))
        t0 = time.perf_counter()
        reader.read(slice(None), cols)
        times.append(time.perf_counter() - t0)
    res["1000_random_table_s"] = {"min": min(times), "median": statistics.median(times),
                                  "max": max(times)}  # fmt: skip
    before = reader.stats.chunks
    t0 = time.perf_counter()
    reader.read([12345], slice(None))
    res["one_gene_all_samples"] = {"s": time.perf_counter() - t0,
                                   "chunks_read": reader.stats.chunks - before,
                                   "chunks_needed": 1_000_000}  # fmt: skip
    unwritten = np.array(info["unwritten_columns"][:50])
    _, res["50_unwritten_archs4x_s"] = timed(lambda: reader.read(slice(None), unwritten), repeat)
    with h5py.File(path) as f:
        dset = f["data/expression"]
        _, res["50_unwritten_h5py_s"] = timed(lambda: [dset[:, int(c)] for c in unwritten],
                                              repeat)  # fmt: skip
    three = np.sort(np.random.default_rng(9).choice(1_000_000, 300, replace=False))
    _, res["300_random_archs4x_s"] = timed(lambda: reader.read(slice(None), three), repeat)
    if not skip_archs4py:
        import archs4py

        _, res["300_random_archs4py_index_s"] = timed(
            lambda: archs4py.data.index(str(path), three.tolist(), silent=True), 1
        )
        res["300_random_speedup"] = (res["300_random_archs4py_index_s"]["median"]
                                     / res["300_random_archs4x_s"]["median"])  # fmt: skip
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--skip-archs4py", action="store_true")
    ap.add_argument("--skip-real-scale", action="store_true")
    args = ap.parse_args()
    results: dict = {"repeat": args.repeat}
    small = str(bench_file(67_186, 5_000))
    print("67,186 x 5,000:", flush=True)
    results["5000"] = run_chains(small, args.repeat, "5k")
    reader = open_source(small).counts_reader()
    cols = np.sort(np.random.default_rng(3).choice(5000, 1000, replace=False))
    reader.read(slice(None), cols)
    _, results["1000_random_5000_file_s"] = timed(lambda: reader.read(slice(None), cols),
                                                  args.repeat)  # fmt: skip
    if not args.skip_real_scale:
        print("67,186 x 1,000,000 (34M chunks):", flush=True)
        results["1000000"] = real_scale(args.repeat, args.skip_archs4py)
        small_t = results["1000_random_5000_file_s"]["median"]
        big = results["1000000"]
        results["1000_random_ratio_table"] = big["1000_random_table_s"]["median"] / small_t
        results["1000_random_ratio_btree"] = big["1000_random_btree_s"]["median"] / small_t
    results["unrelated_graph_optimize_s"] = unrelated_graph()
    print(json.dumps({k: v for k, v in results.items() if not isinstance(v, list | dict)},
                     indent=1))  # fmt: skip
    print("written", save_results("chains", results))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main()
