"""Zarr conversion: throughput and peak RSS per layout; gene and sample reads vs the H5.

Run: ``python benchmarks/bench_zarr.py`` (67,186 x 20,000; ``--samples 5000`` for a
quicker run).  Each conversion runs in its own process, which reports its own peak RSS
(``getrusage(RUSAGE_SELF).ru_maxrss``).  Reads are timed in this process on the same
file and genes/samples: the original H5 through the archs4x reader
(``ds.counts.isel(gene=i).values``) against the gene-major store, and 1,000 random
samples against the sample-major store.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _data import bench_file, save_results

CONVERT = """
import json, resource, sys, time
import archs4x
from archs4x import to_zarr
src, out, layout = sys.argv[1:4]
ds = archs4x.open_dataset(src)
t = time.perf_counter()
to_zarr(ds, out, layout=layout, overwrite=True)
dt = time.perf_counter() - t
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"seconds": dt, "peak_rss_bytes": rss, "nbytes": ds.counts.nbytes}))
"""


def convert(src: Path, out: Path, layout: str) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", CONVERT, str(src), str(out), layout],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if proc.returncode:
        raise RuntimeError(proc.stderr)
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    res["mb_per_s"] = res["nbytes"] / res["seconds"] / 1e6
    res["peak_rss_gb"] = res["peak_rss_bytes"] / 1e9
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    res["store_bytes"] = size
    return res


def best_of(fn, reps: int) -> float:
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--genes", type=int, default=67_186)
    ap.add_argument("--samples", type=int, default=20_000)
    ap.add_argument("--out", default="/tmp/archs4x_bench_zarr")
    ap.add_argument("--n-genes-read", type=int, default=3)
    ap.add_argument("--random-samples", type=int, default=1_000)
    ap.add_argument("--keep", action="store_true", help="keep the stores")
    args = ap.parse_args()

    import archs4x
    from archs4x import open_zarr

    src = bench_file(args.genes, args.samples)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results: dict = {"file": src.name, "shape": [args.genes, args.samples], "convert": {}}
    stores = {}
    for layout in ("sample", "gene"):
        stores[layout] = out / f"{layout}.zarr"
        res = convert(src, stores[layout], layout)
        results["convert"][layout] = res
        print(f"convert {layout:6s}: {res['seconds']:.1f} s, {res['mb_per_s']:.0f} MB/s, "
              f"peak RSS {res['peak_rss_gb']:.2f} GB, store {res['store_bytes'] / 1e9:.2f} GB")  # fmt: skip

    ds = archs4x.open_dataset(src)
    rng = np.random.default_rng(0)
    zg = open_zarr(stores["gene"])
    genes = rng.choice(args.genes, args.n_genes_read, replace=False)
    for g in genes:  # same values first
        assert (zg.counts.isel(gene=int(g)).values == ds.counts.isel(gene=int(g)).values).all()
    t_h5 = np.mean([best_of(lambda g=g: ds.counts.isel(gene=int(g)).values, 1) for g in genes])
    t_zg = np.mean([best_of(lambda g=g: zg.counts.isel(gene=int(g)).values, 3) for g in genes])
    results["one_gene"] = {"h5_s": t_h5, "zarr_gene_s": t_zg, "speedup": t_h5 / t_zg}
    print(f"one gene x {args.samples} samples: H5 {t_h5 * 1e3:.0f} ms, gene-major Zarr "
          f"{t_zg * 1e3:.1f} ms -> {t_h5 / t_zg:.0f}x")  # fmt: skip

    zs = open_zarr(stores["sample"])
    idx = np.sort(rng.choice(args.samples, args.random_samples, replace=False))
    a = zs.isel(sample=idx).counts.values
    b = ds.isel(sample=idx).counts.values
    assert (a == b).all()
    t_h5 = best_of(lambda: ds.isel(sample=idx).counts.values, 2)
    t_zs = best_of(lambda: zs.isel(sample=idx).counts.values, 2)
    results["random_samples"] = {"n": args.random_samples, "h5_s": t_h5, "zarr_sample_s": t_zs,
                                 "speedup": t_h5 / t_zs}  # fmt: skip
    print(f"{args.random_samples} random samples: H5 {t_h5:.2f} s, sample-major Zarr "
          f"{t_zs:.2f} s -> {t_h5 / t_zs:.2f}x")  # fmt: skip
    path = save_results(f"zarr_{args.genes}x{args.samples}", results)
    print(f"saved {path}")
    if not args.keep:
        shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
