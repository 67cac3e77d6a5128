"""Extract 10 random samples from a remote file: archs4x vs h5py over fsspec (the naive way).

Same file, same samples, same run.  The file (67,186 genes x 5,000 samples, exact ARCHS4
layout) is served by a real threaded HTTP server on 127.0.0.1 with Range support that
counts every body byte it sends and every request (tests/_http.py), so "bytes
transferred" is measured on the server side.  Contestants:

* archs4x, cold: empty metadata cache; open + read the samples' gene columns.
* archs4x, warm: metadata cached from the cold run, new process state (no open handles).
* naive: ``h5py.File(fsspec.open(url))`` with fsspec's default read-ahead cache, reading
  the sample and gene ids and ``dset[:, sorted_idx]`` (what archs4py's remote code does).

    python benchmarks/bench_remote.py [--samples 10] [--n-file-samples 5000] [--seed 0]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import fsspec
import h5py
import numpy as np
from _data import bench_file, save_results

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import archs4x
from archs4x import clear_caches as clear_cache
from archs4x import remote
from tests._http import FileServer


def forget_handles() -> None:
    remote.close_all()
    fsspec.filesystem("http").clear_instance_cache()
    clear_cache()


def measure(srv, fn):
    srv.stats.reset()
    t0 = time.perf_counter()
    out = fn()
    wall = time.perf_counter() - t0
    return out, {"bytes": srv.stats.bytes_sent, "requests": len(srv.stats.requests),
                 "wall_s": round(wall, 3)}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=10)
    ap.add_argument("--n-file-samples", type=int, default=5000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    path = bench_file(67_186, args.n_file_samples)
    size = path.stat().st_size
    idx = np.sort(np.random.default_rng(args.seed).choice(args.n_file_samples, args.samples,
                                                          replace=False))  # fmt: skip
    want = archs4x.open_dataset(path).isel(sample=idx).counts.values
    os.environ["ARCHS4X_CACHE_DIR"] = tempfile.mkdtemp(prefix="archs4x-bench-remote-")
    results = {"file": path.name, "file_bytes": size, "samples": idx.tolist()}

    with FileServer(path.parent) as srv:
        url = srv.url(path.name)

        def ours():
            return archs4x.open_dataset(url).isel(sample=idx).counts.values

        forget_handles()
        got, results["archs4x_cold"] = measure(srv, ours)
        assert (got == want).all()
        forget_handles()
        got, results["archs4x_warm"] = measure(srv, ours)
        assert (got == want).all()

        def naive():
            with h5py.File(fsspec.open(url, "rb").open(), "r") as f:
                f["meta/samples/geo_accession"][:]
                f["meta/genes/ensembl_gene"][:]
                return f["data/expression"][:, idx]

        fsspec.filesystem("http").clear_instance_cache()
        got, results["h5py_fsspec"] = measure(srv, naive)
        assert (got == want).all()

    for name in ("archs4x_cold", "archs4x_warm", "h5py_fsspec"):
        r = results[name]
        r["percent_of_file"] = round(100 * r["bytes"] / size, 3)
        print(f"{name:13s} {r['bytes'] / 1e6:9.2f} MB  {r['percent_of_file']:7.3f} % of file  "
              f"{r['requests']:5d} requests  {r['wall_s']:7.2f} s")  # fmt: skip
    cold, naive_r = results["archs4x_cold"], results["h5py_fsspec"]
    results["ratio_bytes_naive_over_archs4x_cold"] = round(naive_r["bytes"] / cold["bytes"], 1)
    results["ratio_time_naive_over_archs4x_cold"] = round(naive_r["wall_s"] / cold["wall_s"], 1)
    print(
        f"naive / archs4x (cold): {results['ratio_bytes_naive_over_archs4x_cold']}x bytes, "
        f"{results['ratio_time_naive_over_archs4x_cold']}x time"
    )
    print("saved", save_results("remote_10_samples", results))


if __name__ == "__main__":
    main()
