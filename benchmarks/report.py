"""The README's benchmark table, generated from ``benchmarks/results/*.json``.

Every row is one claim: what was measured, its peer in the same run, archs4x's figure, and
the ratio, with the spread over repeats where the script kept it and the date of the run.
Nothing here is typed in by hand: rerun a benchmark, then

    python benchmarks/report.py            # print the section
    python benchmarks/report.py --write    # replace it in README.md

``tests/test_project.py`` checks that the README holds exactly what this prints.
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections.abc import Callable, Iterator
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
README = HERE.parent / "README.md"
BEGIN, END = "<!-- section:benchmarks -->", "<!-- /section:benchmarks -->"

Row = tuple[str, str, str, str, str]  # what, peer, archs4x, ratio, script


#: The results files the rows have read (each file must feed a row: see tests/test_project.py).
USED: set[str] = set()


def _load(name: str) -> dict | None:
    path = RESULTS / f"{name}.json"
    if not path.exists():
        return None
    USED.add(path.name)
    return json.loads(path.read_text())


def _glob(pattern: str) -> Iterator[dict]:
    for path in sorted(RESULTS.glob(pattern)):
        yield _load(path.stem)  # type: ignore[misc]


def _s(x: float) -> str:
    """Seconds, to a sensible precision."""
    if x >= 100:
        return f"{x:,.0f} s"
    if x >= 10:
        return f"{x:.1f} s"
    if x >= 0.1:
        return f"{x:.2f} s"
    return f"{x * 1000:.1f} ms"


def _spread(d: dict) -> str:
    """``median s (min-max)`` of a {min, median, max} summary; one run: just the time."""
    if d["min"] == d["max"]:
        return _s(d["median"])
    return f"{_s(d['median'])} ({_s(d['min'])}-{_s(d['max'])})"


def _x(r: float) -> str:
    return f"{r:.2f}x" if r < 10 else f"{r:.0f}x" if r >= 100 else f"{r:.1f}x"


def _date(d: dict) -> str:
    return d["date"][:10]


# --------------------------------------------------------------------------- rows
def rows_read() -> Iterator[Row]:
    d = _load("read_1000_samples")
    if d is None:
        return
    for key, label in [
        ("5000", "67,186 x 5,000"),
        ("realscale", "67,186 x 1,000,000 (34M chunks)"),
    ]:
        f = d["files"].get(key)
        if f is None:
            continue
        s = f["seconds"]
        peers = [f"archs4py `data.index` {_spread(s['archs4py_data_index'])}"]
        if "h5py_per_column" in s:
            peers.append(f"h5py per column {_spread(s['h5py_per_column'])}")
        if "floor_raw_chunk_reads" in s:
            peers.append(f"raw chunk reads {_spread(s['floor_raw_chunk_reads'])}")
        rss = f["peak_rss"]["dataset"]
        ours = (f"`ds.isel(sample=...).counts.values` {_spread(s['archs4x_dataset_isel'])}; "
                f"reader alone {_spread(s['archs4x_reader'])}; peak RSS "
                f"{rss['peak_rss_mb']:,.0f} MB for a {rss['result_mb']:,.0f} MB result")  # fmt: skip
        a4 = s["archs4py_data_index"]["median"] / s["archs4x_dataset_isel"]["median"]
        ds_reader = s["archs4x_dataset_isel"]["median"] / s["archs4x_reader"]["median"]
        ratio = f"{_x(a4)} archs4py; Dataset path {ds_reader:.2f}x the reader's time"
        yield (f"1,000 random samples, all genes, {label} ({_date(d)})", "; ".join(peers),
               ours, ratio, "bench_read.py")  # fmt: skip


def rows_extract() -> Iterator[Row]:
    d = _load("extract_1000_of_5000")
    if d is None:
        return
    s = {k: (min(v) if isinstance(v, list) else v) for k, v in d["seconds"].items()}
    yield (f"the same through the query API, 67,186 x 5,000, best of {d['repeat']} "
           f"({_date(d)})",
           f"archs4py `data.rand` {_s(s['archs4py_rand'])}, `data.index` "
           f"{_s(s['archs4py_index'])}",
           f"`ds.archs4.rand(1000).counts.values` {_s(s['archs4x_query'])}; "
           f"`compat.data.rand` {_s(s['compat_rand'])}, `compat.data.index` "
           f"{_s(s['compat_index'])}",
           f"{_x(s['archs4py_rand'] / s['archs4x_query'])} / "
           f"{_x(s['archs4py_rand'] / s['compat_rand'])} (rand, query / compat); "
           f"{_x(s['archs4py_index'] / s['compat_index'])} (index, compat)",
           "bench_extract.py")  # fmt: skip


def _chain_row(rows: list[dict], label: str, date: str) -> Row:
    exact = sum(r["chunks_read"] == r["chunks_needed"] for r in rows)
    worst = max(rows, key=lambda r: r["time_s"]["median"])
    return (f"{len(rows)} chained selections then `.counts.values`, {label} ({date})",
            "chunks each selection needs",
            f"{exact} of {len(rows)} read exactly the chunks they need; slowest "
            f"`{worst['chain']}` {_spread(worst['time_s'])}",
            f"{sum(r['chunks_read'] for r in rows):,} read / "
            f"{sum(r['chunks_needed'] for r in rows):,} needed", "bench_chains.py")  # fmt: skip


def rows_chains() -> Iterator[Row]:
    d = _load("chains")
    if d is None:
        return
    date = _date(d)
    if "5000" in d:
        yield _chain_row(d["5000"], "67,186 x 5,000", date)
    big = d.get("1000000")
    if not big:
        return
    for mode, how in (("btree", "B-tree walked per read"), ("table", "chunk table")):
        if mode in big:
            yield _chain_row(big[mode], f"67,186 x 1,000,000, {how}", date)
    small = d["1000_random_5000_file_s"]
    yield (f"1,000 random samples, 67,186 x 1,000,000 against 67,186 x 5,000 ({date})",
           f"the same extraction from the 5,000-sample file {_spread(small)}",
           f"chunk table {_spread(big['1000_random_table_s'])} (table built in "
           f"{_s(big['chunk_table_build_s'])}); B-tree walk {_spread(big['1000_random_btree_s'])}",
           f"{d['1000_random_ratio_table']:.2f}x / {d['1000_random_ratio_btree']:.2f}x the "
           "5,000-sample time (goal <= 1.3x)", "bench_chains.py")  # fmt: skip
    one = big["one_gene_all_samples"]
    yield (f"one gene over 1,000,000 samples; 50 never-written samples; 300 random samples "
           f"({date})",
           f"chunks needed {one['chunks_needed']:,}; h5py (50 unwritten) "
           f"{_spread(big['50_unwritten_h5py_s'])}; archs4py `data.index` (300) "
           f"{_spread(big['300_random_archs4py_index_s'])}",
           f"{_s(one['s'])}, {one['chunks_read']:,} chunks read; "
           f"{_spread(big['50_unwritten_archs4x_s'])}; {_spread(big['300_random_archs4x_s'])}",
           f"{_x(big['50_unwritten_h5py_s']['median'] / big['50_unwritten_archs4x_s']['median'])}"
           f" h5py (unwritten); {_x(big['300_random_speedup'])} archs4py (300)",
           "bench_chains.py")  # fmt: skip
    g = d["unrelated_graph_optimize_s"]
    yield (f"`dask.optimize` of an unrelated 40,000-chunk graph ({date})",
           f"without `import archs4x` {_s(g['without archs4x'])}",
           f"with `import archs4x` {_s(g['with import archs4x'])}",
           f"{g['ratio']:.2f}x the time (no cost)", "bench_chains.py")  # fmt: skip


def rows_open_search_filter() -> Iterator[Row]:
    d = _load("open_1m_samples")
    if d is not None:
        m = d["median"]
        yield (f"open a 1,000,000-sample file ({_date(d)})", "goal < 2 s, < 1 GB",
               f"{_s(m['open_s'])}, peak RSS {m['peak_rss_mb']:,.0f} MB", "met",
               "bench_open.py")  # fmt: skip
    d = _load("search_1000000")
    if d is not None:
        r, sm = d["rows"], d["summary"]
        yield (f"search \"{d['term']}\", 1,000,000 samples, 4 fields ({_date(d)})",
               f"archs4py `meta.meta` {_s(r['archs4py']['seconds'])}",
               f"first (cache built) {_s(r['cold']['seconds'])}; later, worst of 6 terms "
               f"with DataFrame {_s(sm['warm_worst_dataframe_s'])}",
               f"{_x(1 / sm['cold_vs_archs4py'])} first; "
               f"{_x(sm['archs4py_over_warm_dataframe'])} later", "bench_search.py")  # fmt: skip
    d = _load("filter_1000000")
    if d is not None:
        w, p = d["archs4x"]["warm"], d["pandas"]
        cold = statistics.median(r["filter_seconds"] for r in d["archs4x"]["cold"])
        yield (f"typed `filter` (3 clauses) and `facets` (4 fields), 1,000,000 samples "
               f"({_date(d)})",
               f"pandas on archs4py `meta.meta` output: filter {_s(p['filter_seconds'])} "
               f"(+ {_s(p['meta_seconds'])} to load), facets {_s(p['facets_seconds'])}",
               f"filter warm {_spread(w['warm_filter'])}, cold {_s(cold)}; facets warm "
               f"{_spread(w['warm_facets'])}; peak RSS {w['peak_rss_mb']:,.0f} MB",
               f"{_x(p['filter_seconds'] / w['warm_filter']['median'])} filter, "
               f"{_x(p['facets_seconds'] / w['warm_facets']['median'])} facets (warm)",
               "bench_filter.py")  # fmt: skip


def rows_remote() -> Iterator[Row]:
    d = _load("remote_10_samples")
    if d is None:
        return
    a, h = d["archs4x_cold"], d["h5py_fsspec"]
    yield (f"10 random samples of a {d['file_bytes'] / 1e6:,.0f} MB file over HTTP "
           f"({_date(d)})",
           f"h5py over fsspec: {h['bytes'] / 1e6:,.0f} MB sent, {_s(h['wall_s'])}",
           f"{a['bytes'] / 1e6:.1f} MB sent ({a['percent_of_file']:.2f}% of the file), "
           f"{_s(a['wall_s'])}",
           f"{d['ratio_bytes_naive_over_archs4x_cold']:.0f}x fewer bytes, "
           f"{_x(d['ratio_time_naive_over_archs4x_cold'])} faster", "bench_remote.py")  # fmt: skip


def rows_normalize() -> Iterator[Row]:
    files = [_load(f"normalize_scale_{n}") for n in (5000, 20000)]
    for d in [*files, *_glob("normalize_realscale_*.json")]:
        if d is None:
            continue
        n = d["shape"][1]
        where = ("from the file" if d.get("selection", "all samples") == "all samples"
                 else f"({d['selection'].split(' ', 1)[1]}) of the 67,186 x 1,000,000 file "
                 "(34M chunks)")  # fmt: skip
        runs = d["runs"]
        floor = runs.get("read floor/threads")
        if floor is None:
            continue
        parts = []
        for m in ("cpm", "quantile", "log_quantile", "tmm"):
            r = runs.get(f"{m}/threads")
            if r is not None:
                parts.append(f"{m} {_spread(r['wall_s'])} ({_x(r['vs_read_floor'])})")
        rss = max(r["peak_rss_mb"] for k, r in runs.items() if k.endswith("/threads"))
        yield (f"normalize 67,186 x {n:,} {where}, threads, {d['repeat']} run(s) "
               f"({_date(d)})", f"read floor `counts.sum()` {_spread(floor['wall_s'])}",
               "; ".join(parts) + f"; peak RSS {rss:,.0f} MB",
               "in brackets: floor time / method time (goal: cpm >= 0.9x, quantile >= "
               "0.45x, tmm >= 0.4x)", "bench_normalize.py --scale")  # fmt: skip
    d = _load("normalize_memory")
    if d is not None:
        r = d["runs"]
        yield (f"normalize in memory, 67,186 x {d['shape'][1]:,} ({_date(d)})",
               f"archs4py cpm {_spread(r['cpm']['archs4py_s'])}, quantile "
               f"{_spread(r['quantile']['archs4py_s'])}; rnanorm TMM "
               f"{_spread(r['tmm']['rnanorm_s'])}",
               f"cpm {_spread(r['cpm']['archs4x_s'])}, quantile "
               f"{_spread(r['quantile']['archs4x_s'])}, TMM {_spread(r['tmm']['archs4x_s'])}",
               f"{r['cpm']['archs4py / archs4x']:.2f}x, {r['quantile']['archs4py / archs4x']:.2f}x, "
               f"{r['tmm']['rnanorm / archs4x']:.1f}x (peer / archs4x)",
               "bench_normalize.py --memory")  # fmt: skip


def rows_zarr() -> Iterator[Row]:
    for n in (5000, 20000):
        d = _load(f"zarr_67186x{n}")
        if d is None:
            continue
        c, rs, g = d["convert"], d["random_samples"], d["one_gene"]
        yield (f"Zarr, 67,186 x {n:,} ({_date(d)})",
               f"the HDF5 it came from: 1,000 random samples {_spread(rs['h5_s'])}; "
               f"one gene {_spread(g['h5_s'])}",
               f"sample-major {_spread(rs['zarr_sample_s'])}; gene-major one gene "
               f"{_spread(g['zarr_gene_s'])}; conversion {c['sample']['mb_per_s']:.0f} MB/s "
               f"(sample), {c['gene']['mb_per_s']:.0f} MB/s (gene), peak "
               f"{max(c['sample']['peak_rss_gb'], c['gene']['peak_rss_gb']):.2f} GB",
               f"{_x(rs['speedup_median'])} samples, {_x(g['speedup_median'])} one gene",
               "bench_zarr.py")  # fmt: skip


def rows_analysis() -> Iterator[Row]:
    for d in _glob("analysis_*.json"):
        runs = d["runs"]
        floor = runs["read floor"]
        parts = [f"{k} {_spread(r['wall_s'])} ({_x(r['vs_read_floor_mb_per_s'])}, "
                 f"{r['peak_rss_mb'] / 1024:.1f} GB)"
                 for k, r in runs.items() if k != "read floor"]  # fmt: skip
        yield (f"analysis, {d['shape'][0]:,} x {d['shape'][1]:,}, threads, {d['repeat']} "
               f"run(s) ({_date(d)})", f"read floor `counts.sum()` {_spread(floor['wall_s'])}",
               "; ".join(parts), "in brackets: MB/s of counts read vs the floor's MB/s (diffexp "
               "reads its two groups only), peak RSS (goal: >= 0.5x for one-pass functions, "
               "< 3 GB)", "bench_analysis.py")  # fmt: skip


def rows_embedding() -> Iterator[Row]:
    for d in _glob("embedding_fit_*.json"):
        for key, r in d["runs"].items():
            what, scheduler = key.split("/")
            if what == "read floor":
                continue
            floor = d["runs"][f"read floor/{scheduler}"]
            yield (f"`embedding.fit` ({d['n_components']} components, {d['n_genes']:,} genes), "
                   f"67,186 x {d['shape'][1]:,}, {scheduler} ({_date(d)})",
                   f"read floor {_spread(floor['wall_s'])}",
                   f"{_spread(r['wall_s'])}, {r['passes']} passes over the counts, peak RSS "
                   f"{r['peak_rss_mb'] / 1024:.2f} GB",
                   f"{r['vs_read_floor']:.1f}x the floor's time "
                   f"({r['vs_read_floor_per_pass']:.2f}x per pass)", "bench_embedding.py --fit")  # fmt: skip
    for d in _glob("embedding_index_*.json"):
        for lib, r in d["libraries"].items():
            ok = [s for s in r["settings"] if s["recall_at_k"]["median"] >= 0.95]
            s = min(ok, key=lambda s: s["latency_ms_median"]["median"]) if ok else max(
                r["settings"], key=lambda s: s["recall_at_k"]["median"])  # fmt: skip
            yield (f"nearest neighbours, {d['n']:,} random {d['dim']}-d vectors, k={d['k']}, "
                   f"{lib} ({_date(d)})",
                   f"exact search (numpy) {_s(d['exact_numpy_s_all_queries'] / d['queries'])}"
                   " per query",
                   f"build {_spread(r['build_s'])}, index {r['index_rss_mb']['median']:,.0f} MB; "
                   f"ef {s['ef']}: {s['latency_ms_median']['median']:.2f} ms per query",
                   f"recall@{d['k']} {s['recall_at_k']['median']:.3f} (goal >= 0.95, "
                   "< 20 ms)", "bench_embedding.py --index")  # fmt: skip


def rows_cli_out() -> Iterator[Row]:
    for d in _glob("cli_out_*.json"):
        for r in d["rows"]:
            peer = (f"one DataFrame, then `to_{r['format']}`: {_s(min(r['peer_seconds']))}, "
                    f"peak RSS {r['peer_peak_rss_mb']:,.0f} MB" if "peer_seconds" in r
                    else "none (a DataFrame of this size does not fit)")  # fmt: skip
            ratio = (_x(min(r["peer_seconds"]) / min(r["archs4x_seconds"]))
                     if "peer_seconds" in r else "")  # fmt: skip
            yield (f"`archs4x ... --out x.{r['format']}`, {r['samples']:,} samples of "
                   f"{r['file']} ({_date(d)})", peer,
                   f"streamed: {_s(min(r['archs4x_seconds']))}, peak RSS "
                   f"{r['archs4x_peak_rss_mb']:,.0f} MB, {r['archs4x_bytes'] / 1e6:,.0f} MB "
                   "written", ratio, "bench_cli_out.py")  # fmt: skip


def rows_align() -> Iterator[Row]:
    d = _load("align")
    if d is None:
        return
    yield (f"{d['samples']} samples x {d['reads_per_sample']:,} reads, kallisto "
           f"({_date(d)})", f"a sequential loop {_s(d['sequential_loop_s'])}",
           f"LocalCluster {_s(d['archs4x_localcluster_s'])}; overhead "
           f"{d['overhead_per_sample_s']:.3f} s per sample",
           f"{_x(d['speedup_cluster_vs_loop'])} on {d['workers']} cores", "bench_align.py")  # fmt: skip


SECTIONS: list[Callable[[], Iterator[Row]]] = [
    rows_read, rows_extract, rows_chains, rows_open_search_filter, rows_remote,
    rows_normalize, rows_zarr, rows_analysis, rows_embedding, rows_cli_out, rows_align,
]  # fmt: skip


def render() -> str:
    """The benchmark section of the README, from the results files."""
    lines = [
        "Generated by `python benchmarks/report.py --write` from `benchmarks/results/*.json`",
        "(each row names its script and the date of its run). Every figure is against its",
        "peer in the same run on the same file; times are the median with (min-max) over",
        "the repeats the script made. This 2-core machine is shared: the same command moves",
        "by up to ±40% between runs, which is why every figure is paired with its peer.",
        "",
        "| what (date) | peer, same run | archs4x | ratio | script |",
        "|---|---|---|---|---|",
    ]
    for section in SECTIONS:
        for row in section():
            lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |")
    return "\n".join(lines) + "\n"


def write_readme(text: str | None = None) -> None:
    """Replace the README's benchmark section with :func:`render`'s."""
    readme = README.read_text(encoding="utf-8")
    head, rest = readme.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    README.write_text(head + BEGIN + "\n" + (text or render()) + END + tail, encoding="utf-8")


def readme_section() -> str:
    """What the README's benchmark section holds now."""
    readme = README.read_text(encoding="utf-8")
    return readme.split(BEGIN, 1)[1].split(END, 1)[0].lstrip("\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write", action="store_true", help="replace the section in README.md")
    args = ap.parse_args()
    text = render()
    if args.write:
        write_readme(text)
        print(f"wrote the benchmark section of {README}")
    else:
        print(text, end="")


if __name__ == "__main__":
    main()
