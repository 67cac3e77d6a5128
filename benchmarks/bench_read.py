"""Extract the full columns of 1,000 random samples: archs4x vs archs4py vs h5py vs the floor.

Same file, same samples, same run.  The file is in the exact ARCHS4 layout
(67,186 genes x 5,000 samples, chunks (2000, 1), gzip) written by archs4x.datasets.
The OS page cache is warm for every contestant (one untimed warm-up read of the
selection), so the figures compare CPU work, not the disk.

    python benchmarks/bench_read.py [--samples 1000] [--repeat 3] [--h5py-fancy]

``--h5py-fancy`` adds h5py's ``dset[:, sorted_idx]`` (about 90 s on this machine).
"""

from __future__ import annotations

import argparse
import statistics
import time

import h5py
import numpy as np
from _data import bench_file, save_results

import archs4x
from tests._reads import get_reader


def timed(fn, repeat):
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=1000)
    ap.add_argument("--n-file-samples", type=int, default=5000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--h5py-fancy", action="store_true")
    ap.add_argument("--skip-archs4py", action="store_true")
    args = ap.parse_args()

    path = str(bench_file(67_186, args.n_file_samples))
    rng = np.random.default_rng(42)
    idx = np.sort(rng.choice(args.n_file_samples, args.samples, replace=False))
    results: dict = {"file": path, "shape": [67_186, args.n_file_samples],
                     "samples": args.samples, "timings_s": {}}  # fmt: skip
    t = results["timings_s"]

    with h5py.File(path) as f:
        dset = f["data/expression"]
        n_chunks = -(-dset.shape[0] // dset.chunks[0]) * len(idx)
        offsets = [(r, int(c)) for c in idx for r in range(0, dset.shape[0], dset.chunks[0])]
        for off in offsets:  # warm the page cache for everyone
            dset.id.read_direct_chunk(off)

        def raw_reads():
            return [dset.id.read_direct_chunk(off)[1] for off in offsets]

        med, _, raws = timed(raw_reads, args.repeat)
        t["floor_raw_chunk_reads"] = med
        import deflate

        nbytes = dset.chunks[0] * 4

        def inflate_all():
            return [deflate.zlib_decompress(r, nbytes) for r in raws]

        t["floor_inflate_single_pass"], _, _ = timed(inflate_all, args.repeat)
        t["floor_total"] = t["floor_raw_chunk_reads"] + t["floor_inflate_single_pass"]
        results["compressed_mb"] = sum(len(r) for r in raws) / 1e6
        results["chunks"] = n_chunks

        def h5py_columns():
            return np.stack([dset[:, int(i)] for i in idx], axis=1)

        t["h5py_per_column"], _, ref = timed(h5py_columns, 1)
        if args.h5py_fancy:
            t["h5py_fancy_index"], _, fancy = timed(lambda: dset[:, idx], 1)
            assert np.array_equal(fancy, ref)

    reader = get_reader(path)
    t["archs4x_reader"], _, got = timed(lambda: reader.read(slice(None), idx), args.repeat)
    assert np.array_equal(got, ref)
    ds = archs4x.open_dataset(path)
    t["archs4x_dataset_isel"], _, got = timed(
        lambda: ds.counts.isel(sample=idx).values, args.repeat
    )
    assert np.array_equal(got, ref)

    if not args.skip_archs4py:
        import archs4py

        med, _, df = timed(lambda: archs4py.data.index(path, idx.tolist(), silent=True), 1)
        t["archs4py_data_index"] = med
        assert np.array_equal(df.to_numpy(), ref)

    best = min(t["archs4x_reader"], t["archs4x_dataset_isel"])
    ratios = {
        "archs4py / archs4x": t.get("archs4py_data_index", float("nan")) / best,
        "h5py per-column / archs4x": t["h5py_per_column"] / best,
        "archs4x dataset / floor": t["archs4x_dataset_isel"] / t["floor_total"],
        "archs4x reader / floor": t["archs4x_reader"] / t["floor_total"],
    }
    if "h5py_fancy_index" in t:
        ratios["h5py fancy / archs4x"] = t["h5py_fancy_index"] / best
    results["ratios"] = ratios
    for k, v in t.items():
        print(f"{k:<28} {v:8.3f} s")
    for k, v in ratios.items():
        print(f"{k:<28} {v:8.2f} x")
    print("saved", save_results("read_1000_samples", results))


if __name__ == "__main__":
    main()
