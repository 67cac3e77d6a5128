"""Metadata search at 1,000,000-sample scale: archs4x vs archs4py ``meta.meta``.

Same file, same term, same run.  The file is in the exact ARCHS4 layout written by
archs4x.datasets (1,000,000 samples, 29 metadata fields; few genes, since only the
metadata is read).  Every contestant runs in its own fresh process, so peak memory
(``ru_maxrss``) is that of the search alone:

- ``archs4py``: ``archs4py.meta.meta(file, term)`` (metadata of the matches, 4 fields);
- ``cold``: archs4x with its metadata cache deleted first: open + search + the same
  metadata DataFrame (includes building the cache);
- ``warm, new process``: the cache on disk, a new process: open + search + DataFrame;
- ``warm``: later searches in one process, each term ``--repeat`` times (median),
  both the lazy Dataset (``ds.archs4.search``) and search + DataFrame.

Results are checked: archs4x must find exactly the samples archs4py finds.

    python benchmarks/bench_search.py [--samples 1000000] [--genes 200] [--term myoblast]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import resource
import statistics
import subprocess
import sys
import time

from _data import bench_file, save_results

FIELDS = ["characteristics_ch1", "extract_protocol_ch1", "source_name_ch1", "title"]
WARM_TERMS = ["myoblast", "liver|kidney", "hepato", "T cell", r"rep[12]$", "dexamethasone"]


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _digest(ids) -> str:
    return hashlib.sha1("\n".join(sorted(map(str, ids))).encode()).hexdigest()[:16]


def worker(kind: str, path: str, term: str, repeat: int) -> dict:
    base = _rss_mb()
    if kind == "archs4py":
        import archs4py

        base = _rss_mb()
        t0 = time.perf_counter()
        df = archs4py.meta.meta(path, term, silent=True)
        return {"seconds": time.perf_counter() - t0, "n": len(df), "ids": _digest(df.index),
                "peak_rss_mb": _rss_mb(), "base_rss_mb": base}  # fmt: skip
    import archs4x
    import archs4x.accessor
    from archs4x import metacache

    if kind == "cold":
        metacache.clear(path)
    base = _rss_mb()
    t0 = time.perf_counter()
    ds = archs4x.open_dataset(path)
    t_open = time.perf_counter() - t0
    hits = ds.archs4.search(term, FIELDS)
    t_search = time.perf_counter() - t0
    df = hits.archs4.meta(FIELDS)
    t_all = time.perf_counter() - t0
    out = {"seconds": t_all, "open_seconds": t_open, "search_seconds": t_search,
           "n": len(df), "ids": _digest(df.index), "peak_rss_mb": _rss_mb(),
           "base_rss_mb": base}  # fmt: skip
    if kind == "warm":
        per_term = {}
        for t in WARM_TERMS:
            ds_times, df_times = [], []
            for _ in range(repeat):
                t0 = time.perf_counter()
                sel = ds.archs4.search(t, FIELDS)
                ds_times.append(time.perf_counter() - t0)
                sel.archs4.meta(FIELDS)
                df_times.append(time.perf_counter() - t0)
            per_term[t] = {"n": sel.sizes["sample"], "dataset_s": statistics.median(ds_times),
                           "dataframe_s": statistics.median(df_times)}  # fmt: skip
        out["per_term"] = per_term
        out["worst_dataframe_s"] = max(v["dataframe_s"] for v in per_term.values())
        out["worst_dataset_s"] = max(v["dataset_s"] for v in per_term.values())
        out["peak_rss_mb"] = _rss_mb()
    return out


def spawn(kind: str, path, term: str, repeat: int) -> dict:
    cmd = [sys.executable, __file__, "--worker", kind, "--file", str(path), "--term", term,
           "--repeat", str(repeat)]  # fmt: skip
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if res.returncode:
        raise SystemExit(f"{kind} worker failed:\n{res.stderr}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=1_000_000)
    ap.add_argument("--genes", type=int, default=200)
    ap.add_argument("--term", default="myoblast")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--file", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.file, args.term, args.repeat)))
        return

    path = bench_file(args.genes, args.samples)
    print(f"file: {path.name} ({path.stat().st_size / 1e9:.2f} GB), term {args.term!r}")
    rows = {}
    for kind in ("archs4py", "cold", "warm_new_process", "warm"):
        rows[kind] = r = spawn(kind.replace("_new_process", "-process"), path, args.term,
                               args.repeat)  # fmt: skip
        print(f"  {kind:18s} {r['seconds']:8.2f} s  {r['n']:7d} matches  "
              f"peak RSS {r['peak_rss_mb']:6.0f} MB", flush=True)  # fmt: skip
    ref = rows["archs4py"]
    same = all(r["ids"] == ref["ids"] and r["n"] == ref["n"] for r in rows.values())
    warm = rows["warm"]
    peer = ref["seconds"]
    summary = {
        "same_results": same,
        "cold_vs_archs4py": rows["cold"]["seconds"] / peer,
        "archs4py_over_warm_dataframe": peer / warm["worst_dataframe_s"],
        "archs4py_over_warm_dataset": peer / warm["worst_dataset_s"],
        "warm_worst_dataframe_s": warm["worst_dataframe_s"],
        "warm_worst_dataset_s": warm["worst_dataset_s"],
        "peak_rss_mb_archs4x": max(rows[k]["peak_rss_mb"] for k in ("cold", "warm_new_process", "warm")),
        "peak_rss_mb_archs4py": ref["peak_rss_mb"],
    }  # fmt: skip
    print("  warm searches (median of", args.repeat, "):")
    for t, v in warm["per_term"].items():
        print(f"    {t!r:18s} {v['n']:7d}  Dataset {v['dataset_s']:.3f} s  "
              f"+ DataFrame {v['dataframe_s']:.3f} s")  # fmt: skip
    print(f"same results as archs4py: {same}")
    print(f"cold / archs4py: {summary['cold_vs_archs4py']:.2f} (goal <= 1)")
    print(f"archs4py / warm (worst term, with DataFrame): "
          f"{summary['archs4py_over_warm_dataframe']:.0f}x (goal >= 20), "
          f"worst warm {summary['warm_worst_dataframe_s']:.3f} s (goal < 1 s)")  # fmt: skip
    print(f"peak RSS archs4x {summary['peak_rss_mb_archs4x']:.0f} MB (goal < 2048), "
          f"archs4py {summary['peak_rss_mb_archs4py']:.0f} MB")  # fmt: skip
    out = save_results(f"search_{args.samples}", {
        "file": path.name, "n_samples": args.samples, "n_genes": args.genes,
        "term": args.term, "fields": FIELDS, "rows": rows, "summary": summary})  # fmt: skip
    print(f"saved {out}")
    if not same:
        raise SystemExit("archs4x and archs4py found different samples")


if __name__ == "__main__":
    main()
