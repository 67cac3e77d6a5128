"""Embedding at scale (out of core) against the read floor, and nearest-neighbour libraries.

Part 1 (``--fit``): on the 67,186 x N-sample file in the ARCHS4 layout (N = 20,000 by
default), the read floor ``ds.counts.sum().compute()`` and
``archs4x.embedding.fit(ds, n_components=50, n_genes=5000).compute()``, on the threaded
scheduler and on a LocalCluster of 2 worker processes (1 thread each, 2.5 GiB each).  Every
run is a fresh subprocess; runs are interleaved (floor, fit, floor, fit, ...) so a noisy
neighbour hits both alike; each figure is the median of ``--repeat`` runs, min and max
kept.  Peak RSS: threads, the subprocess's own peak (``VmHWM``); cluster, the peak over
time of the summed RSS of the process tree, sampled every 0.1 s.  "passes" is the number
of reads of the counts the fit makes (library sizes, gene statistics, the randomised SVD's
``2 * n_power_iter + 2``, the projection), so "vs read floor per pass" is the cost of one
pass against the floor.

Part 2 (``--index``): ``--n`` (1,000,000) random 50-d standard-normal vectors (the hardest
case for an ANN index: no low-dimensional structure), ``--queries`` (1,000) other random
query vectors, Euclidean.  For each library, in a fresh subprocess: build time, the
process's RSS growth over the build (``VmRSS`` after - before, vectors already in memory)
and its peak, then for each search-breadth setting: recall@20 against exact search (numpy
``argpartition`` of squared distances, computed once in this process) and the latency of
one query at a time (median and 95th percentile over the queries) and of the batch.
Libraries: faiss-cpu ``IndexHNSWFlat`` (M=32, efConstruction=200), hnswlib (M=32,
ef_construction=200), pynndescent ``NNDescent`` (n_neighbors=30; its first call includes
numba's compilation, reported separately by a warm-up on 2,000 vectors).

    python benchmarks/bench_embedding.py --index --n 1000000 --repeat 3
    python benchmarks/bench_embedding.py --fit --samples 20000 --repeat 3
    python benchmarks/bench_embedding.py --markdown
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _data import DATA, RESULTS, bench_file, save_results
from _measure import run_child, spread

LIBRARIES = ("faiss", "hnswlib", "pynndescent")
FLOOR = "read floor"
FIT = "fit"

# ----------------------------------------------------------------------------- index part
_INDEX_CHILD = r"""
import json, sys, time
import numpy as np
lib, vec_path, q_path, truth_path, k, efs, threads = sys.argv[1:8]
k = int(k); efs = [int(e) for e in efs.split(",")]; threads = int(threads)
def rss_mb(field="VmRSS:"):
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1]) / 1024
x = np.load(vec_path); q = np.load(q_path); truth = np.load(truth_path)
before = rss_mb()
out = {"library": lib, "threads": threads}
if lib == "pynndescent":
    import pynndescent
    t0 = time.perf_counter()
    w = pynndescent.NNDescent(x[:2000], n_neighbors=30, random_state=0, n_jobs=threads)
    w.prepare(); w.query(q[:5], k=k)
    out["warmup_s"] = time.perf_counter() - t0
    before = rss_mb()
t0 = time.perf_counter()
if lib == "faiss":
    import faiss
    faiss.omp_set_num_threads(threads)
    index = faiss.IndexHNSWFlat(x.shape[1], 32)
    index.hnsw.efConstruction = 200
    index.add(x)
elif lib == "hnswlib":
    import hnswlib
    index = hnswlib.Index(space="l2", dim=x.shape[1])
    index.init_index(max_elements=x.shape[0], M=32, ef_construction=200, random_seed=0)
    index.add_items(x, np.arange(x.shape[0]), num_threads=threads)
else:
    index = pynndescent.NNDescent(x, n_neighbors=30, random_state=0, n_jobs=threads,
                                  low_memory=True)
    index.prepare()
out["build_s"] = time.perf_counter() - t0
out["index_rss_mb"] = rss_mb() - before
out["peak_rss_mb"] = rss_mb("VmHWM:")
out["vectors_mb"] = x.nbytes / 2**20
settings = []
for ef in efs:
    if lib == "faiss":
        index.hnsw.efSearch = max(ef, k)
        search = lambda v: index.search(v, k)[1]
    elif lib == "hnswlib":
        index.set_ef(max(ef, k))
        search = lambda v: index.knn_query(v, k=k, num_threads=1)[0]
    else:
        eps = ef / 1000  # pynndescent's epsilon, given in thousandths
        search = lambda v, eps=eps: index.query(v, k=k, epsilon=eps)[0]
    if lib == "faiss":
        faiss.omp_set_num_threads(1)
    search(q[:10])  # warm
    lat = []
    found = np.empty((q.shape[0], k), dtype=np.int64)
    for i in range(q.shape[0]):
        t0 = time.perf_counter()
        found[i] = search(q[i : i + 1])[0]
        lat.append(time.perf_counter() - t0)
    if lib == "faiss":
        faiss.omp_set_num_threads(threads)
    t0 = time.perf_counter()
    search(q)
    batch = time.perf_counter() - t0
    recall = float(np.mean([len(set(found[i]) & set(truth[i])) / k for i in range(q.shape[0])]))
    lat_ms = np.array(lat) * 1e3
    settings.append({"ef": ef, "recall_at_k": recall, "latency_ms_median": float(np.median(lat_ms)),
                     "latency_ms_p95": float(np.percentile(lat_ms, 95)),
                     "batch_s": batch})
out["settings"] = settings
print(json.dumps(out))
"""


def _exact(x: np.ndarray, q: np.ndarray, k: int) -> np.ndarray:
    """The exact k nearest neighbours (squared Euclidean), in blocks of the database."""
    xx = np.einsum("ij,ij->i", x, x, dtype=np.float64)
    best_d = np.full((q.shape[0], k), np.inf)
    best_i = np.zeros((q.shape[0], k), dtype=np.int64)
    q64 = q.astype(np.float64)
    for start in range(0, x.shape[0], 200_000):
        part = x[start : start + 200_000].astype(np.float64)
        d = xx[start : start + part.shape[0]][None, :] - 2 * q64 @ part.T
        idx = np.argpartition(d, k, axis=1)[:, :k]
        cand_d = np.concatenate([best_d, np.take_along_axis(d, idx, 1)], axis=1)
        cand_i = np.concatenate([best_i, idx + start], axis=1)
        order = np.argsort(cand_d, axis=1)[:, :k]
        best_d = np.take_along_axis(cand_d, order, 1)
        best_i = np.take_along_axis(cand_i, order, 1)
    return best_i


def index_part(args) -> dict:
    rng = np.random.default_rng(0)
    DATA.mkdir(parents=True, exist_ok=True)
    vec = DATA / f"ann_vectors_{args.n}x50.npy"
    qp = DATA / f"ann_queries_{args.queries}x50.npy"
    tp = DATA / f"ann_truth_{args.n}_{args.queries}_k{args.k}.npy"
    x = rng.standard_normal((args.n, 50), dtype=np.float32)
    q = rng.standard_normal((args.queries, 50), dtype=np.float32)
    np.save(vec, x)
    np.save(qp, q)
    t0 = time.perf_counter()
    truth = _exact(x, q, args.k)
    exact_s = time.perf_counter() - t0
    np.save(tp, truth)
    del x
    print(f"exact search of {args.queries} queries: {exact_s:.1f} s", flush=True)
    efs = {"faiss": "64,128,256,512", "hnswlib": "64,128,256,512",
           "pynndescent": "100,200,300"}  # fmt: skip
    out: dict = {"n": args.n, "dim": 50, "queries": args.queries, "k": args.k,
                 "exact_numpy_s_all_queries": exact_s, "repeat": args.repeat,
                 "libraries": {}}  # fmt: skip
    for lib in args.libraries:
        runs = []
        for rep in range(args.repeat):
            res = subprocess.run(
                [sys.executable, "-c", _INDEX_CHILD, lib, str(vec), str(qp), str(tp),
                 str(args.k), efs[lib], str(args.threads)],
                capture_output=True, text=True,
            )  # fmt: skip
            if res.returncode != 0:
                print(res.stderr[-2000:], file=sys.stderr)
                raise RuntimeError(f"{lib} failed")
            r = json.loads(res.stdout.strip().splitlines()[-1])
            runs.append(r)
            best = max(r["settings"], key=lambda s: s["recall_at_k"])
            print(f"  {lib:>11} run {rep + 1}: build {r['build_s']:7.1f} s, index "
                  f"{r['index_rss_mb']:6.0f} MB, best recall {best['recall_at_k']:.3f} at "
                  f"{best['latency_ms_median']:.2f} ms", flush=True)  # fmt: skip
        summary = {
            "build_s": spread([r["build_s"] for r in runs]),
            "index_rss_mb": spread([r["index_rss_mb"] for r in runs]),
            "peak_rss_mb": max(r["peak_rss_mb"] for r in runs),
            "settings": [],
            "runs": runs,
        }
        for i, s in enumerate(runs[0]["settings"]):
            per = [r["settings"][i] for r in runs]
            summary["settings"].append({
                "ef": s["ef"],
                "recall_at_k": spread([p["recall_at_k"] for p in per]),
                "latency_ms_median": spread([p["latency_ms_median"] for p in per]),
                "latency_ms_p95": spread([p["latency_ms_p95"] for p in per]),
                "batch_s": spread([p["batch_s"] for p in per]),
            })  # fmt: skip
        out["libraries"][lib] = summary
    return out


def index_markdown(res: dict) -> str:
    lines = [f"{res['n']:,} random {res['dim']}-d vectors, {res['queries']:,} queries, "
             f"k={res['k']}, median (min-max) of {res['repeat']} run(s):", "",
             "| library | build | index memory | search breadth | recall@20 | latency / query "
             "(median, p95) |", "|---|---|---|---|---|---|"]  # fmt: skip
    for lib, r in res["libraries"].items():
        b = r["build_s"]
        for s in r["settings"]:
            rec, lat, p95 = s["recall_at_k"], s["latency_ms_median"], s["latency_ms_p95"]
            ef = f"epsilon {s['ef'] / 1000:g}" if lib == "pynndescent" else f"ef {s['ef']}"
            lines.append(
                f"| {lib} | {b['median']:.0f} s ({b['min']:.0f}-{b['max']:.0f}) | "
                f"{r['index_rss_mb']['median']:.0f} MB | {ef} | {rec['median']:.3f} | "
                f"{lat['median']:.2f} ms, {p95['median']:.2f} ms |"
            )
    return "\n".join(lines)


# ------------------------------------------------------------------------------- fit part
_FIT_CHILD = r"""
import json, resource, sys, time
import archs4x
path, what, scheduler, n_components, n_genes = sys.argv[1:6]
ds = archs4x.open_dataset(path)
client = cluster = None
if scheduler == "distributed":
    from distributed import Client, LocalCluster
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                           memory_limit="2.5GiB", dashboard_address=None)
    client = Client(cluster)
usage = resource.getrusage(resource.RUSAGE_SELF)
cpu0 = usage.ru_utime + usage.ru_stime
t0 = time.perf_counter()
extra = {}
if what == "read floor":
    checksum = float(ds.counts.sum().compute())
else:
    emb = archs4x.embedding.fit(ds, n_components=int(n_components), n_genes=int(n_genes)).compute()
    checksum = float(abs(emb.singular_values.values).sum())
    extra = {"passes": emb.passes, "n_samples": int(emb.coordinates.shape[0]),
             "explained_variance_ratio": float(emb.explained_variance_ratio.values.sum())}
wall = time.perf_counter() - t0
usage = resource.getrusage(resource.RUSAGE_SELF)
cpu = usage.ru_utime + usage.ru_stime - cpu0
if client is not None:
    client.close(); cluster.close()
def hwm_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
print(json.dumps({"wall_s": wall, "cpu_s": cpu, "self_maxrss_mb": hwm_mb(),
                  "checksum": checksum, **extra}))
"""


def run_fit(path, what: str, scheduler: str, args) -> dict:
    return run_child(
        _FIT_CHILD,
        [str(path), what, scheduler, str(args.components), str(args.genes)],
        what,
        scheduler,
    )


def fit_part(n_samples: int, args) -> dict:
    path = bench_file(67_186, n_samples)
    runs: dict[str, dict] = {}
    for scheduler in args.schedulers:
        raw: dict[str, list[dict]] = {FLOOR: [], FIT: []}
        for rep in range(args.repeat):
            for what in (FLOOR, FIT):
                r = run_fit(path, what, scheduler, args)
                raw[what].append(r)
                print(f"  {n_samples} {scheduler:>11} run {rep + 1}: {what:>10} "
                      f"{r['wall_s']:7.1f} s  peak RSS {r['peak_rss_mb']:6.0f} MB",
                      flush=True)  # fmt: skip
        floor = statistics.median(r["wall_s"] for r in raw[FLOOR])
        for what in (FLOOR, FIT):
            walls = [r["wall_s"] for r in raw[what]]
            med = statistics.median(walls)
            entry = {
                "wall_s": spread(walls),
                "cpu_s": spread([r["cpu_s"] for r in raw[what]]),
                "vs_read_floor": med / floor,
                "peak_rss_mb": max(r["peak_rss_mb"] for r in raw[what]),
                "runs": raw[what],
            }
            if what == FIT:
                passes = raw[what][0]["passes"]
                entry["passes"] = passes
                entry["vs_read_floor_per_pass"] = med / floor / passes
            runs[f"{what}/{scheduler}"] = entry
    return {"file": str(path), "shape": [67_186, n_samples], "n_components": args.components,
            "n_genes": args.genes, "repeat": args.repeat,
            "statistic": "median (min, max kept)", "runs": runs}  # fmt: skip


def fit_markdown(res: dict) -> str:
    n = res["shape"][1]
    lines = [
        f"67,186 x {n:,} samples, `fit(n_components={res['n_components']}, "
        f"n_genes={res['n_genes']})`, median (min-max) of {res['repeat']} run(s):",
        "",
        "| what | scheduler | time | vs read floor | peak RSS |",
        "|---|---|---|---|---|",
    ]
    for key, r in res["runs"].items():
        what, scheduler = key.split("/")
        w = r["wall_s"]
        label = FLOOR if what == FLOOR else f"fit + compute ({r['passes']} passes)"
        ratio = f"{r['vs_read_floor']:.1f}x" + (
            f" ({r['vs_read_floor_per_pass']:.2f}x a pass)" if what == FIT else ""
        )
        lines.append(
            f"| {label} | {scheduler} | {w['median']:.0f} s ({w['min']:.0f}-"
            f"{w['max']:.0f}) | {ratio} | {r['peak_rss_mb'] / 1024:.2f} GB |"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--fit", action="store_true")
    ap.add_argument("--index", action="store_true")
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--samples", type=int, default=20_000)
    ap.add_argument("--components", type=int, default=50)
    ap.add_argument("--genes", type=int, default=5_000)
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--queries", type=int, default=1_000)
    ap.add_argument("--k", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--libraries", nargs="+", default=list(LIBRARIES), choices=LIBRARIES)
    ap.add_argument("--schedulers", nargs="+", default=["threads", "distributed"],
                    choices=["threads", "distributed"])  # fmt: skip
    args = ap.parse_args()
    if args.markdown:
        for name, fn in (
            ("embedding_index_1000000", index_markdown),
            (f"embedding_fit_{args.samples}", fit_markdown),
        ):
            path = RESULTS / f"{name}.json"
            if path.exists():
                print(fn(json.loads(path.read_text())), end="\n\n")
        return
    if not (args.fit or args.index):
        args.fit = args.index = True
    if args.index:
        res = index_part(args)
        print(index_markdown(res))
        old = RESULTS / f"embedding_index_{args.n}.json"
        if old.exists():  # libraries measured by an earlier invocation are kept
            kept = json.loads(old.read_text()).get("libraries", {})
            res["libraries"] = {**kept, **res["libraries"]}
        print("saved", save_results(f"embedding_index_{args.n}", res))
    if args.fit:
        res = fit_part(args.samples, args)
        print(fit_markdown(res))
        print("saved", save_results(f"embedding_fit_{args.samples}", res))


if __name__ == "__main__":
    main()
