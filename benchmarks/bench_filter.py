"""Typed filters, facets and characteristics at 1,000,000-sample scale, vs pandas on archs4py.

The file is ``benchmarks/data/realscale_67186x1000000.h5`` (the real file's structure,
written by ``archs4x.datasets.realscale``).  Its ``characteristics_ch1`` is in the style of
the generator that wrote it; when that is the older style (3 fixed pairs, ~150 distinct
texts), the parse on it is cheap, so the parser is also timed on 1,000,000 texts in the
current style (1-6 messy pairs) and on 1,000,000 all-distinct texts (the worst case).

Every contestant runs in its own process with its own, initially empty, cache folder
(``ARCHS4X_CACHE_DIR``), so "cold" means nothing cached at all and other people's caches
are left alone; peak memory is ``ru_maxrss`` of that process:

- ``cold``: open + ``filter(3 clauses)`` with an empty cache (builds the metadata
  columns and parses the characteristics), then ``facets`` of 4 fields;
- ``new process``: the same cache folder, a new process: open + filter + facets;
- ``warm``: repeated in one process (``--repeat``, min/median/max);
- ``characteristics cold``: open + ``characteristics()`` with an empty cache, then warm;
- ``pandas``: the same questions with pandas on ``archs4py.meta.meta(file, "", fields,
  remove_sc=True)`` output (``remove_sc`` is the ``singlecellprobability < 0.5`` clause);
  run once (it takes minutes).

Answers are checked: archs4x's samples and value counts must equal pandas'.

    python benchmarks/bench_filter.py [--file PATH] [--repeat 5] [--cold 2] [--skip-pandas]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _data import DATA, save_results
from _measure import spread

EXPR = ("tissue == 'liver' and singlecellprobability < 0.5 and "
        "submission_date >= '2019-01-01'")  # fmt: skip
FACETS = ["tissue", "cell_type", "instrument_model", "series_id"]
PANDAS_FIELDS = ["characteristics_ch1", "submission_date", "instrument_model", "series_id"]
DEFAULT_FILE = DATA / "realscale_67186x1000000.h5"


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _digest(values) -> str:
    return hashlib.sha1("\n".join(map(str, values)).encode()).hexdigest()[:16]


def _facet_digest(tables: dict) -> dict:
    out = {}
    for name, t in tables.items():
        body = t[t["value"].notna()]
        pairs = sorted(zip(body["value"].astype(str), body["count"].astype(int), strict=True))
        out[name] = {"digest": _digest(pairs), "missing": int(t.attrs["missing"]),
                     "distinct": int(t.attrs["distinct"])}  # fmt: skip
    return out


def _spread(times: list[float]) -> dict:
    return {**spread(times), "runs": len(times)}


# -- workers (each in its own process) ---------------------------------------------------------
def work_archs4x(path: str, repeat: int, what: str) -> dict:
    import archs4x

    base = _rss_mb()
    out: dict = {"base_rss_mb": base}
    t0 = time.perf_counter()
    ds = archs4x.open_dataset(path)
    out["open_seconds"] = time.perf_counter() - t0
    if what == "characteristics":
        t1 = time.perf_counter()
        keys = ds.archs4.characteristics()
        out["characteristics_seconds"] = time.perf_counter() - t1
        out["seconds"] = time.perf_counter() - t0
        out["keys"] = keys["samples"].to_dict()
        warm = []
        for _ in range(repeat):
            t1 = time.perf_counter()
            ds.archs4.characteristics()
            warm.append(time.perf_counter() - t1)
        out["warm_characteristics"] = _spread(warm)
        out["peak_rss_mb"] = _rss_mb()
        return out
    t1 = time.perf_counter()
    sel = ds.archs4.filter(EXPR)
    out["filter_seconds"] = time.perf_counter() - t1
    out["seconds"] = time.perf_counter() - t0  # open + filter
    out["n"] = sel.sizes["sample"]
    out["ids"] = _digest(sel.sample.values)
    t1 = time.perf_counter()
    tables = ds.archs4.facets(FACETS)
    out["facets_seconds"] = time.perf_counter() - t1
    out["facets"] = _facet_digest(tables)
    if what == "warm":
        filt, fac, chars = [], [], []
        for _ in range(repeat):
            t1 = time.perf_counter()
            ds.archs4.filter(EXPR)
            filt.append(time.perf_counter() - t1)
            t1 = time.perf_counter()
            ds.archs4.facets(FACETS)
            fac.append(time.perf_counter() - t1)
            t1 = time.perf_counter()
            ds.archs4.characteristics()
            chars.append(time.perf_counter() - t1)
        out["warm_filter"] = _spread(filt)
        out["warm_facets"] = _spread(fac)
        out["warm_characteristics"] = _spread(chars)
    out["peak_rss_mb"] = _rss_mb()
    return out


_KEY_RX = r"(?:^|,)\s*{}\s*:\s*([^,]*)"


def work_pandas(path: str) -> dict:
    """The same questions with pandas on archs4py's metadata DataFrame."""
    import archs4py
    import pandas as pd

    base = _rss_mb()
    t0 = time.perf_counter()
    meta = archs4py.meta.meta(path, "", meta_fields=PANDAS_FIELDS, remove_sc=True, silent=True)
    t_meta = time.perf_counter() - t0
    t1 = time.perf_counter()
    ch = meta["characteristics_ch1"]
    tissue = ch.str.extract(_KEY_RX.format("tissue"), flags=re.IGNORECASE)[0].str.strip()
    dates = pd.to_datetime(meta["submission_date"], format="%b %d %Y")
    hit = (tissue == "liver") & (dates >= "2019-01-01")
    t_filter = time.perf_counter() - t1
    t1 = time.perf_counter()
    everything = archs4py.meta.meta(path, "", meta_fields=PANDAS_FIELDS, silent=True)
    t_meta_all = time.perf_counter() - t1
    t1 = time.perf_counter()
    ch = everything["characteristics_ch1"]
    cols = {
        "tissue": ch.str.extract(_KEY_RX.format("tissue"), flags=re.IGNORECASE)[0].str.strip(),
        "cell_type": ch.str.extract(_KEY_RX.format("cell type"),
                                    flags=re.IGNORECASE)[0].str.strip(),
        "instrument_model": everything["instrument_model"],
        "series_id": everything["series_id"].str.split(",").explode().str.strip(),
    }  # fmt: skip
    facets = {}
    for name, s in cols.items():
        missing = s.isna() | (s == "")
        counts = s[~missing].value_counts()
        pairs = sorted(zip(counts.index.astype(str), counts.astype(int), strict=True))
        facets[name] = {"digest": _digest(pairs), "missing": int(missing.sum()),
                        "distinct": len(counts)}  # fmt: skip
    t_facets = time.perf_counter() - t1
    return {"meta_seconds": t_meta, "filter_seconds": t_filter,
            "seconds": t_meta + t_filter, "meta_all_seconds": t_meta_all,
            "facets_seconds": t_facets, "facets_total_seconds": t_meta_all + t_facets,
            "n": int(hit.sum()), "ids": _digest(meta.index[hit.to_numpy()]),
            "facets": facets, "peak_rss_mb": _rss_mb(), "base_rss_mb": base}  # fmt: skip


def work_parser(n: int) -> dict:
    """The parser alone on ``n`` texts of the current generator, and ``n`` distinct texts."""
    import numpy as np
    import pyarrow as pa

    from archs4x.datasets.synthetic import _characteristics, _SampleLatents
    from archs4x.query.charcache import ParsedCharacteristics

    lat = _SampleLatents(n, np.random.default_rng(0))
    texts, _ = _characteristics(lat, "human")
    col = pa.array(texts, pa.large_string())
    out = {"samples": n, "distinct_texts": len(set(texts)),
           "rss_before_parse_mb": _rss_mb()}  # fmt: skip
    t0 = time.perf_counter()
    parsed = ParsedCharacteristics.parse(col)
    out["parse_seconds"] = time.perf_counter() - t0
    out["keys"] = len(parsed.keys)
    out["peak_rss_after_parse_mb"] = _rss_mb()
    del parsed
    unique = pa.array([f"{t},donor id: {i}" for i, t in enumerate(texts)], pa.large_string())
    del texts, col
    t0 = time.perf_counter()
    ParsedCharacteristics.parse(unique)
    out["all_distinct_parse_seconds"] = time.perf_counter() - t0
    out["peak_rss_mb"] = _rss_mb()
    return out


# -- the driver ------------------------------------------------------------------------------
def _run(args: list[str], cache: Path | None) -> dict:
    env = dict(os.environ)
    if cache is not None:
        env["ARCHS4X_CACHE_DIR"] = str(cache)
    r = subprocess.run([sys.executable, __file__, "--worker", *args], capture_output=True,
                       text=True, env=env, check=False)  # fmt: skip
    if r.returncode != 0:
        raise RuntimeError(f"worker {args} failed:\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--file", default=str(DEFAULT_FILE))
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--cold", type=int, default=2, help="cold runs of each kind")
    p.add_argument("--parser-samples", type=int, default=1_000_000)
    p.add_argument("--skip-pandas", action="store_true")
    p.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.worker:
        kind, *rest = a.worker
        if kind == "pandas":
            res = work_pandas(rest[0])
        elif kind == "parser":
            res = work_parser(int(rest[0]))
        else:
            res = work_archs4x(rest[0], int(rest[1]), kind)
        print(json.dumps(res, default=str))
        return
    path = a.file
    if not Path(path).exists():
        sys.exit(f"{path} not found: write it with archs4x.datasets.realscale")
    root = Path(tempfile.mkdtemp(prefix="bench_filter_"))
    results: dict = {"file": Path(path).name, "expr": EXPR, "facets": FACETS,
                     "machine_note": "2 cores shared with other jobs: figures are noisy"}  # fmt: skip
    try:
        cold, chars_cold, newproc = [], [], []
        for i in range(a.cold):
            cache = root / f"cold{i}"
            print(f"cold filter run {i + 1}/{a.cold} ...", file=sys.stderr, flush=True)
            cold.append(_run(["cold", path, "1"], cache))
            print("  new process on that cache ...", file=sys.stderr, flush=True)
            newproc.append(_run(["new", path, "1"], cache))
            print(f"cold characteristics run {i + 1}/{a.cold} ...", file=sys.stderr, flush=True)
            chars_cold.append(_run(["characteristics", path, str(a.repeat)], root / f"ch{i}"))
        print("warm runs ...", file=sys.stderr, flush=True)
        warm = _run(["warm", path, str(a.repeat)], root / "cold0")
        results["archs4x"] = {"cold": cold, "new_process": newproc, "warm": warm,
                              "characteristics_cold": chars_cold}  # fmt: skip
        print("parser on current-style and all-distinct texts ...", file=sys.stderr, flush=True)
        results["parser"] = _run(["parser", str(a.parser_samples)], root / "parser")
        if not a.skip_pandas:
            print("pandas on archs4py.meta.meta (minutes) ...", file=sys.stderr, flush=True)
            pandas = _run(["pandas", path], None)
            results["pandas"] = pandas
            same_ids = all(r["ids"] == pandas["ids"] and r["n"] == pandas["n"]
                           for r in [*cold, *newproc, warm])  # fmt: skip
            same_facets = all(r["facets"] == pandas["facets"] for r in [*cold, *newproc, warm])
            results["checked"] = {"same_samples": same_ids, "same_facets": same_facets}
            wf = warm["warm_filter"]["median"]
            results["ratios"] = {
                "filter_cold": pandas["seconds"] / statistics.median(c["seconds"] for c in cold),
                "filter_new_process": pandas["seconds"] / statistics.median(
                    c["seconds"] for c in newproc),
                "filter_warm": pandas["filter_seconds"] / wf,
                "filter_warm_vs_pandas_total": pandas["seconds"] / wf,
                "facets_warm": pandas["facets_seconds"] / warm["warm_facets"]["median"],
                "facets_warm_vs_pandas_total": pandas["facets_total_seconds"]
                / warm["warm_facets"]["median"],
            }  # fmt: skip
    finally:
        shutil.rmtree(root, ignore_errors=True)
    out = save_results("filter_1000000", results)
    print(json.dumps(results, indent=2, default=str))
    print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
