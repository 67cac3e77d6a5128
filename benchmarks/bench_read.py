"""Read the full columns of 1,000 random samples: archs4x vs archs4py vs h5py vs the floor.

Two files, each in the exact ARCHS4 layout (chunks (2000, 1), gzip): the 67,186 x 5,000
benchmark file and the real-scale 67,186 x 1,000,000 file (34 million chunks; see
``archs4x.datasets.realscale``).  Same samples for every contestant, same run.  The OS page
cache is warm for every contestant (one untimed read of the selection first), so the
figures compare CPU work, not the disk.

Contestants: the floor (raw chunk bytes through h5py's ``read_direct_chunk`` plus one
single-threaded libdeflate pass), h5py one column at a time, the archs4x reader alone
(``ChunkReader.read``), the Dataset path ``ds.isel(sample=idx).counts.values``, and
archs4py ``data.index`` (its own 16-process pool).  Each archs4x contestant runs
``--repeat`` times (median, min and max kept); h5py and archs4py once.

Peak RSS is measured in fresh subprocesses (open, select, read; ``VmHWM``) for the
reader and the Dataset path.  On the real-scale file it is measured with the on-disk chunk
table (:func:`archs4x.storage.sources.build_chunk_table`) if one exists, and without it
(a cache folder holding only the metadata cache), since the table is memory-mapped and
the pages a read touches count in RSS.

    python benchmarks/bench_read.py [--files 5000 realscale] [--samples 1000] [--repeat 3]
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
from archs4x.storage import open_source

REALSCALE = DATA / "realscale_67186x1000000.h5"

_RSS_CHILD = r"""
import json, resource, sys, time
import numpy as np
path, mode, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
def hwm_mb():  # this process's peak RSS (ru_maxrss would include the parent's, from fork)
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
import archs4x
from archs4x.storage import open_source
t0 = time.perf_counter()
if mode == "dataset":
    ds = archs4x.open_dataset(path)
    n_samples = ds.sizes["sample"]
else:
    reader = open_source(path).counts_reader()
    n_samples = reader.shape[1]
t_open = time.perf_counter() - t0
idx = np.sort(np.random.default_rng(42).choice(n_samples, n, replace=False))
t0 = time.perf_counter()
out = ds.isel(sample=idx).counts.values if mode == "dataset" else reader.read(slice(None), idx)
t_read = time.perf_counter() - t0
print(json.dumps({"open_s": t_open, "read_s": t_read, "result_mb": out.nbytes / 2**20,
                  "peak_rss_mb": hwm_mb()}))
"""


def timed(fn, repeat: int):
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return times, out


def spread(times: list[float]) -> dict:
    return {"min": min(times), "median": statistics.median(times), "max": max(times)}


def peak_rss(path: str, mode: str, n: int, cache: str | None = None) -> dict:
    """Open, select and read ``n`` samples in a fresh process; its peak RSS."""
    env = dict(os.environ)
    if cache is not None:
        env["ARCHS4X_CACHE_DIR"] = cache
    out = subprocess.run([sys.executable, "-c", _RSS_CHILD, path, mode, str(n)], env=env,
                         capture_output=True, text=True, check=True)  # fmt: skip
    res = json.loads(out.stdout.strip().splitlines()[-1])
    res["budget_mb"] = 2 * res["result_mb"] + 300  # the target: 2x the result + 300 MB
    return res


def cache_without_table() -> str:
    """A cache folder with archs4x's metadata cache but no chunk tables."""
    from archs4x._options import cache_dir

    folder = tempfile.mkdtemp(prefix="archs4x-bench-cache-")
    meta = cache_dir() / "metacache"
    if meta.exists():
        os.symlink(meta, Path(folder) / "metacache")
    return folder


def bench(path: str, n: int, repeat: int, skip_archs4py: bool) -> dict:
    reader = open_source(path).counts_reader()
    n_file = reader.shape[1]
    idx = np.sort(np.random.default_rng(42).choice(n_file, n, replace=False))
    res: dict = {"file": path, "shape": [reader.shape[0], n_file], "samples": n,
                 "seconds": {}}  # fmt: skip
    t = res["seconds"]
    reader.read(slice(None), idx)  # warm the page cache (and the chunk index) for everyone
    with h5py.File(path) as f:
        dset = f["data/expression"]
        offsets = [(r, int(c)) for c in idx for r in range(0, dset.shape[0], dset.chunks[0])]

        def raw_reads():  # never-written chunks (the real-scale file has some) are skipped
            out = []
            for o in offsets:
                try:
                    out.append(dset.id.read_direct_chunk(o)[1])
                except RuntimeError:
                    pass
            return out

        times, raws = timed(raw_reads, 1)
        t["floor_raw_chunk_reads"] = spread(times)
        import deflate

        nbytes = dset.chunks[0] * dset.dtype.itemsize

        def inflate_all(raws=raws):
            return [deflate.zlib_decompress(r, nbytes) for r in raws]

        times, _ = timed(inflate_all, repeat)
        t["floor_inflate_single_pass"] = spread(times)
        res["compressed_mb"] = sum(len(r) for r in raws) / 1e6
        res["chunks"] = len(offsets)
        raws = inflate_all = None
        times, ref = timed(lambda: np.stack([dset[:, int(i)] for i in idx], axis=1), 1)
        t["h5py_per_column"] = spread(times)
    times, got = timed(lambda: reader.read(slice(None), idx), repeat)
    t["archs4x_reader"] = spread(times)
    assert np.array_equal(got, ref)
    del got
    ds = archs4x.open_dataset(path)
    times, got = timed(lambda: ds.isel(sample=idx).counts.values, repeat)
    t["archs4x_dataset_isel"] = spread(times)
    assert np.array_equal(got, ref)
    del got
    if not skip_archs4py:
        import archs4py

        times, df = timed(lambda: archs4py.data.index(path, idx.tolist(), silent=True), 1)
        t["archs4py_data_index"] = spread(times)
        assert np.array_equal(df.to_numpy(), ref)
        del df
    med = {k: v["median"] for k, v in t.items()}
    floor = med["floor_raw_chunk_reads"] + med["floor_inflate_single_pass"]
    res["ratios"] = {
        "archs4py / archs4x dataset": med.get("archs4py_data_index", float("nan"))
        / med["archs4x_dataset_isel"],
        "h5py per-column / archs4x dataset": med["h5py_per_column"] / med["archs4x_dataset_isel"],
        "archs4x dataset / reader": med["archs4x_dataset_isel"] / med["archs4x_reader"],
        "archs4x reader / floor": med["archs4x_reader"] / floor,
    }
    rss = {}
    for mode in ("reader", "dataset"):
        rss[mode] = peak_rss(path, mode, n)
    if n_file >= 1_000_000:
        cache = cache_without_table()
        for mode in ("reader", "dataset"):
            rss[f"{mode}, no chunk table"] = peak_rss(path, mode, n, cache)
    res["peak_rss"] = rss
    return res


def report(res: dict) -> None:
    print(f"\n{Path(res['file']).name}: {res['samples']} random samples of {res['shape']}")
    for k, v in res["seconds"].items():
        print(f"  {k:<28} {v['median']:8.3f} s  ({v['min']:.3f}-{v['max']:.3f})")
    for k, v in res["ratios"].items():
        print(f"  {k:<36} {v:8.2f} x")
    for k, v in res["peak_rss"].items():
        print(f"  peak RSS {k:<24} {v['peak_rss_mb']:7.0f} MB (budget {v['budget_mb']:.0f} MB;"
              f" open {v['open_s']:.1f} s, read {v['read_s']:.2f} s)")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", nargs="+", default=["5000", "realscale"],
                    choices=["5000", "realscale"])  # fmt: skip
    ap.add_argument("--samples", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--skip-archs4py", action="store_true")
    args = ap.parse_args()
    results = {}
    for which in args.files:
        if which == "realscale" and not REALSCALE.exists():
            print(f"skipping the real-scale file: {REALSCALE} does not exist")
            continue
        path = str(bench_file(67_186, 5_000) if which == "5000" else REALSCALE)
        results[which] = bench(path, args.samples, args.repeat, args.skip_archs4py)
        report(results[which])
    print(
        "saved",
        save_results(f"read_{args.samples}_samples", {"files": results, "statistic": "median"}),
    )


if __name__ == "__main__":
    main()
