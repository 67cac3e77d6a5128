"""Zarr stores against the HDF5 they came from: conversion, reads, verification.

Run: ``python benchmarks/bench_zarr.py`` (67,186 x 5,000 and 67,186 x 20,000; pass
``--samples 5000`` for one size).  For each file of :func:`_data.bench_file`:

* **conversion**, sample- and gene-major, each in its own process, which reports its
  wall time, CPU time and peak RSS (``VmHWM`` of ``/proc/self/status``: ``ru_maxrss``
  would also count the benchmark process's memory at the fork);
* **1,000 random samples**: archs4x's H5 reader
  (``archs4x.storage.open_source(path).counts_reader().read(slice(None), cols)``) and the
  sample-major store's reader on the same columns, in the same run, alternating, several
  draws; also through ``open_zarr(...).isel(sample=cols).counts.values``;
* **one gene over all samples**: the H5 reader against the gene-major store;
* **verify**: :func:`archs4x.verify_zarr` over each whole store (MB/s of stored bytes).

Options: ``--codecs`` compares Blosc codecs on 2,048 samples (size, encode and decode
CPU, random reads), the figures behind :func:`archs4x.write.zarr.default_compressor`;
``--icechunk`` evaluates Icechunk (writes the same sample-major array into an Icechunk
repository through zarr-python, one commit per 256-sample unit, and reads the same 1,000
samples through zarr-python); ``--tensorstore`` reads the store with TensorStore too.
Every timing is repeated: min / median / max.  The machine is shared: figures are noisy.
Results: ``benchmarks/results/zarr_<genes>x<samples>.json``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
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
t, c = time.perf_counter(), time.process_time()
to_zarr(ds, out, layout=layout, overwrite=True)
dt, cpu = time.perf_counter() - t, time.process_time() - c
try:  # this process's own high-water mark (ru_maxrss also counts the parent at fork)
    with open("/proc/self/status") as f:
        rss = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM"))
except OSError:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"seconds": dt, "cpu_seconds": cpu, "peak_rss_bytes": rss,
                  "nbytes": ds.counts.nbytes}))
"""


def spread(times: list[float]) -> dict:
    return {"min": min(times), "median": statistics.median(times), "max": max(times),
            "runs": len(times)}  # fmt: skip


def store_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def convert(src: Path, out: Path, layout: str) -> dict:
    proc = subprocess.run([sys.executable, "-c", CONVERT, str(src), str(out), layout],
                          capture_output=True, text=True, check=False)  # fmt: skip
    if proc.returncode:
        raise RuntimeError(proc.stderr)
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    res["mb_per_s"] = res["nbytes"] / res["seconds"] / 1e6
    res["peak_rss_gb"] = res["peak_rss_bytes"] / 1e9
    res["store_bytes"] = store_bytes(out)
    return res


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def random_samples(src: Path, store: Path, n_samples: int, k: int, repeats: int) -> dict:
    import archs4x
    from archs4x.storage import open_source

    h5 = open_source(src).counts_reader()
    z = archs4x.open_zarr(store)
    zr = z.counts.data.source.counts_reader()
    rng = np.random.default_rng(0)
    warm = np.sort(rng.choice(n_samples, k, replace=False))
    np.testing.assert_array_equal(h5.read(slice(None), warm), zr.read(slice(None), warm))
    t_h5, t_z, t_ds = [], [], []
    for rep in range(repeats):
        cols = np.sort(rng.choice(n_samples, k, replace=False))
        order = [("h5", h5), ("zarr", zr)] if rep % 2 == 0 else [("zarr", zr), ("h5", h5)]
        for name, reader in order:
            took = timed(lambda r=reader, c=cols: r.read(slice(None), c))
            (t_h5 if name == "h5" else t_z).append(took)
        t_ds.append(timed(lambda c=cols: z.isel(sample=c).counts.values))
    return {"n": k, "h5_s": spread(t_h5), "zarr_sample_s": spread(t_z),
            "open_zarr_isel_s": spread(t_ds),
            "speedup_median": statistics.median(t_h5) / statistics.median(t_z)}  # fmt: skip


def one_gene(src: Path, store: Path, n_genes: int, repeats: int) -> dict:
    import archs4x
    from archs4x.storage import open_source

    h5 = open_source(src).counts_reader()
    zr = archs4x.open_zarr(store).counts.data.source.counts_reader()
    genes = np.random.default_rng(1).choice(n_genes, repeats, replace=False)
    t_h5, t_z = [], []
    for g in genes:
        a = h5.read([int(g)], slice(None))
        np.testing.assert_array_equal(a, zr.read([int(g)], slice(None)))
        t_h5.append(timed(lambda g=g: h5.read([int(g)], slice(None))))
        t_z.append(timed(lambda g=g: zr.read([int(g)], slice(None))))
    return {"h5_s": spread(t_h5), "zarr_gene_s": spread(t_z),
            "speedup_median": statistics.median(t_h5) / statistics.median(t_z)}  # fmt: skip


def verify(store: Path, repeats: int) -> dict:
    import archs4x

    times, report = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        report = archs4x.verify_zarr(store)
        times.append(time.perf_counter() - t)
    assert report is not None and report.ok, str(report)
    return {"seconds": spread(times), "bytes": report.nbytes,
            "mb_per_s_median": report.nbytes / statistics.median(times) / 1e6}  # fmt: skip


def codec_sweep(src: Path, out: Path, n: int = 2048, k: int = 500) -> dict:
    """Blosc codecs on ``n`` samples: size, conversion and read CPU and wall, vs the H5."""
    from zarr.codecs import BloscCodec

    import archs4x
    from archs4x.storage import open_source

    ds = archs4x.open_dataset(src).isel(sample=slice(0, n))
    h5 = open_source(src).counts_reader()
    cols = np.sort(np.random.default_rng(2).choice(n, k, replace=False))
    h5.read(slice(None), cols)
    res: dict = {"samples": n, "read_samples": k}
    c = time.process_time()
    h5_wall = min(timed(lambda: h5.read(slice(None), cols)) for _ in range(3))
    res["h5"] = {"read_wall_s": h5_wall, "read_cpu_s": (time.process_time() - c) / 3}
    for cname, level, shuffle in [("lz4", 5, "shuffle"), ("lz4", 5, "bitshuffle"),
                                  ("zstd", 1, "shuffle"), ("zstd", 3, "bitshuffle")]:  # fmt: skip
        name = f"blosc-{cname}-{level}-{shuffle}"
        store = out / f"{name}.zarr"
        t, c = time.perf_counter(), time.process_time()
        archs4x.to_zarr(ds, store, overwrite=True,
                        compressor=BloscCodec(cname=cname, clevel=level, shuffle=shuffle))  # fmt: skip
        wall, cpu = time.perf_counter() - t, time.process_time() - c
        reader = archs4x.open_zarr(store).counts.data.source.counts_reader()
        reader.read(slice(None), cols)
        c = time.process_time()
        r_wall = min(timed(lambda r=reader: r.read(slice(None), cols)) for _ in range(3))
        res[name] = {"size_ratio": store_bytes(store) / ds.counts.nbytes,
                     "convert_mb_per_s": ds.counts.nbytes / wall / 1e6,
                     "convert_mb_per_cpu_s": ds.counts.nbytes / cpu / 1e6,
                     "read_wall_s": r_wall, "read_cpu_s": (time.process_time() - c) / 3}  # fmt: skip
        print(f"  {name:28s} size {res[name]['size_ratio']:.3f}, convert "
              f"{res[name]['convert_mb_per_s']:.0f} MB/s ({res[name]['convert_mb_per_cpu_s']:.0f}"
              f" MB/CPU-s), read {k} samples {r_wall:.2f} s (H5 {h5_wall:.2f} s)")  # fmt: skip
        shutil.rmtree(store, ignore_errors=True)
    return res


def icechunk_eval(src: Path, store: Path, out: Path, n_samples: int, k: int) -> dict:
    """The same sample-major array through Icechunk (zarr-python), against our store."""
    import icechunk
    import zarr
    from zarr.codecs import BloscCodec, Crc32cCodec

    import archs4x

    ds = archs4x.open_dataset(src)
    n_f = ds.sizes["gene"]
    repo_path = out / "icechunk"
    shutil.rmtree(repo_path, ignore_errors=True)
    repo = icechunk.Repository.create(icechunk.local_filesystem_storage(str(repo_path)))
    session = repo.writable_session("main")
    zarr.create_array(session.store, name="counts", shape=(n_f, n_samples), dtype="uint32",
                      chunks=(n_f, 1), shards=(n_f, 256), fill_value=0, zarr_format=3,
                      compressors=[BloscCodec(cname="lz4", clevel=5, shuffle="shuffle"),
                                   Crc32cCodec()])  # fmt: skip
    session.commit("skeleton")
    reader = archs4x.storage.open_source(src).counts_reader()
    t0, commits = time.perf_counter(), []
    for start in range(0, n_samples, 256):
        stop = min(n_samples, start + 256)
        block = reader.read(slice(None), slice(start, stop))
        session = repo.writable_session("main")
        zarr.open_array(session.store, path="counts")[:, start:stop] = block
        t = time.perf_counter()
        session.commit(f"unit {start}")
        commits.append(time.perf_counter() - t)
    write_s = time.perf_counter() - t0
    arr = zarr.open_array(repo.readonly_session(branch="main").store, path="counts")
    cols = np.sort(np.random.default_rng(3).choice(n_samples, k, replace=False))
    ours = archs4x.open_zarr(store).counts.data.source.counts_reader()
    np.testing.assert_array_equal(np.asarray(arr.oindex[:, cols[:20]]),
                                  ours.read(slice(None), cols[:20]))  # fmt: skip
    t_ice = [timed(lambda: arr.oindex[:, cols]) for _ in range(2)]
    t_ours = [timed(lambda: ours.read(slice(None), cols)) for _ in range(2)]
    t_h5 = [timed(lambda: reader.read(slice(None), cols)) for _ in range(2)]
    return {"write_mb_per_s": n_f * n_samples * 4 / write_s / 1e6,
            "commit_s": spread(commits), "repo_bytes": store_bytes(repo_path),
            "read": {"n": k, "icechunk_zarr_python_s": spread(t_ice),
                     "archs4x_store_s": spread(t_ours), "h5_s": spread(t_h5)}}  # fmt: skip


def tensorstore_read(store: Path, n_samples: int, k: int) -> dict:
    import tensorstore as ts

    import archs4x

    arr = ts.open({"driver": "zarr3", "kvstore": {"driver": "file",
                                                  "path": str(store / "counts")}}).result()  # fmt: skip
    ours = archs4x.open_zarr(store).counts.data.source.counts_reader()
    cols = np.sort(np.random.default_rng(4).choice(n_samples, k, replace=False))
    np.testing.assert_array_equal(arr[:, cols].read().result(), ours.read(slice(None), cols))
    t_ts = [timed(lambda: arr[:, cols].read().result()) for _ in range(3)]
    t_ours = [timed(lambda: ours.read(slice(None), cols)) for _ in range(3)]
    return {"n": k, "tensorstore_s": spread(t_ts), "archs4x_s": spread(t_ours)}


def run(n_genes: int, n_samples: int, args: argparse.Namespace) -> None:
    src = bench_file(n_genes, n_samples)
    out = Path(args.out) / f"{n_genes}x{n_samples}"
    out.mkdir(parents=True, exist_ok=True)
    results: dict = {"file": src.name, "shape": [n_genes, n_samples], "convert": {},
                     "note": "shared 2-core machine: figures are noisy"}  # fmt: skip
    stores = {}
    for layout in ("sample", "gene"):
        stores[layout] = out / f"{layout}.zarr"
        res = convert(src, stores[layout], layout)
        results["convert"][layout] = res
        print(f"[{n_samples}] convert {layout:6s}: {res['seconds']:.1f} s, "
              f"{res['mb_per_s']:.0f} MB/s ({res['cpu_seconds']:.1f} CPU-s), peak RSS "
              f"{res['peak_rss_gb']:.2f} GB, store {res['store_bytes'] / 1e9:.2f} GB")  # fmt: skip
    r = random_samples(src, stores["sample"], n_samples, args.random_samples, args.repeats)
    results["random_samples"] = r
    print(f"[{n_samples}] {r['n']} random samples: H5 {r['h5_s']['median']:.2f} s "
          f"[{r['h5_s']['min']:.2f}-{r['h5_s']['max']:.2f}], sample-major Zarr "
          f"{r['zarr_sample_s']['median']:.2f} s [{r['zarr_sample_s']['min']:.2f}-"
          f"{r['zarr_sample_s']['max']:.2f}] -> {r['speedup_median']:.1f}x; via open_zarr "
          f"{r['open_zarr_isel_s']['median']:.2f} s")  # fmt: skip
    g = one_gene(src, stores["gene"], n_genes, args.repeats)
    results["one_gene"] = g
    print(f"[{n_samples}] one gene x {n_samples} samples: H5 {g['h5_s']['median'] * 1e3:.0f} ms,"
          f" gene-major Zarr {g['zarr_gene_s']['median'] * 1e3:.1f} ms -> "
          f"{g['speedup_median']:.0f}x")  # fmt: skip
    results["verify"] = {layout: verify(stores[layout], 2) for layout in stores}
    for layout, v in results["verify"].items():
        print(f"[{n_samples}] verify {layout}: {v['bytes'] / 1e6:.0f} MB in "
              f"{v['seconds']['median']:.2f} s ({v['mb_per_s_median']:.0f} MB/s)")  # fmt: skip
    if args.codecs:
        print(f"[{n_samples}] codecs (2,048 samples, 500 random reads):")
        results["codecs"] = codec_sweep(src, out)
    if args.tensorstore:
        results["tensorstore"] = t = tensorstore_read(stores["sample"], n_samples,
                                                      args.random_samples)  # fmt: skip
        print(f"[{n_samples}] TensorStore {t['tensorstore_s']['median']:.2f} s, archs4x "
              f"{t['archs4x_s']['median']:.2f} s ({t['n']} samples)")  # fmt: skip
    if args.icechunk:
        results["icechunk"] = ice = icechunk_eval(src, stores["sample"], out, n_samples,
                                                  args.random_samples)  # fmt: skip
        rd = ice["read"]
        print(f"[{n_samples}] Icechunk: write {ice['write_mb_per_s']:.0f} MB/s, commit "
              f"{ice['commit_s']['median'] * 1e3:.0f} ms/unit, {rd['n']} random samples "
              f"{rd['icechunk_zarr_python_s']['median']:.2f} s (archs4x store "
              f"{rd['archs4x_store_s']['median']:.2f} s, H5 {rd['h5_s']['median']:.2f} s)")  # fmt: skip
    path = save_results(f"zarr_{n_genes}x{n_samples}", results)
    print(f"saved {path}")
    if not args.keep:
        shutil.rmtree(out, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--genes", type=int, default=67_186)
    ap.add_argument("--samples", type=int, nargs="+", default=[5_000, 20_000])
    ap.add_argument("--out", default="/tmp/archs4x_bench_zarr")
    ap.add_argument("--random-samples", type=int, default=1_000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--codecs", action="store_true", help="compare Blosc codecs")
    ap.add_argument(
        "--icechunk", action="store_true", help="evaluate Icechunk (pip install icechunk)"
    )
    ap.add_argument("--tensorstore", action="store_true", help="read with TensorStore too")
    ap.add_argument("--keep", action="store_true", help="keep the stores")
    args = ap.parse_args()
    for n in args.samples:
        run(args.genes, n, args)


if __name__ == "__main__":
    main()
