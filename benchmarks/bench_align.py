"""Align N samples against one small reference: archs4x (Dask) vs a sequential loop.

Peer: a plain one-sample-at-a-time loop running ``kallisto quant`` with the same settings
(what archs4py's helper does, minus its defects).  archs4x runs the same samples as Dask
tasks: sequentially on the synchronous scheduler (to measure its per-sample overhead beyond
kallisto: FASTQ checks, parsing, aggregation) and on a LocalCluster of worker processes.

    python benchmarks/bench_align.py --samples 8 --reads 400000
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import dask

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from archs4x import align
from benchmarks._data import save_results
from tests._align_data import make_transcriptome, simulate_reads, true_counts


def sequential_loop(exe, ref, samples, tmp):
    for name, files in samples.items():
        out = Path(tmp) / f"loop-{name}"
        args = [exe, "quant", "-i", str(ref.index), "-o", str(out), "-t", "1"]
        if len(files) == 1:
            args += ["--single", "-l", "200", "-s", "20"]
        subprocess.run([*args, *map(str, files)], check=True, capture_output=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--samples", type=int, default=8)
    ap.add_argument("--reads", type=int, default=400_000, help="reads (pairs) per sample")
    ap.add_argument("--genes", type=int, default=300)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    exe = align.kallisto.find_kallisto()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t = make_transcriptome(n_genes=args.genes, per_gene=(2, 6), seed=1)
        fasta = t.write_fasta(tmp / "ref")
        ref = align.reference(None, cdna=fasta[0], ncrna=fasta[1], cache_dir=tmp / "cache")
        ref.build_index()
        samples = {}
        for i in range(args.samples):
            counts = true_counts(t, args.reads, seed=i)
            if i % 2:
                files = (tmp / f"s{i}_1.fastq.gz", tmp / f"s{i}_2.fastq.gz")
                simulate_reads(t, counts, files, seed=i)
            else:
                files = (tmp / f"s{i}.fastq.gz",)
                simulate_reads(t, counts, files[0], seed=i)
            samples[f"s{i}"] = files
        print(f"{len(ref.table)} transcripts, {args.samples} samples x {args.reads:,} reads "
              "(half paired)")  # fmt: skip

        def best(fn):
            times = []
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                fn()
                times.append(time.perf_counter() - t0)
            return min(times)

        loop = best(lambda: sequential_loop(exe, ref, samples, tmp))
        with dask.config.set(scheduler="sync"):
            sync = best(lambda: align.fastq(ref, samples))
            sync_head = best(lambda: align.fastq(ref, samples, check="head"))
        from distributed import Client, LocalCluster

        with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                          dashboard_address=":0") as cl, Client(cl):  # fmt: skip
            align.fastq(ref, {"warm": samples["s0"]})  # workers import archs4x once
            cluster = best(lambda: align.fastq(ref, samples))
        res = align.fastq(ref, samples, return_type="transcript")
        kallisto_inside = float(res.kallisto_seconds.sum())
    n = args.samples
    out = {
        "samples": n,
        "reads_per_sample": args.reads,
        "transcripts": len(ref.table),
        "workers": args.workers,
        "sequential_loop_s": round(loop, 3),
        "archs4x_sync_s": round(sync, 3),
        "archs4x_localcluster_s": round(cluster, 3),
        "speedup_cluster_vs_loop": round(loop / cluster, 2),
        "archs4x_sync_check_head_s": round(sync_head, 3),
        "overhead_per_sample_s": round((sync - loop) / n, 3),
        "overhead_per_sample_check_head_s": round((sync_head - loop) / n, 3),
        "overhead_per_sample_pct": round(100 * (sync - loop) / loop, 1),
        "kallisto_seconds_inside_tasks": round(kallisto_inside, 3),
    }
    for k, v in out.items():
        print(f"{k:32s} {v}")
    save_results("align", out)


if __name__ == "__main__":
    main()
