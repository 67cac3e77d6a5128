"""``archs4x search/samples/series --out``: peak memory and time of writing a selection.

Each run is a fresh process and reports its own peak RSS (``VmHWM``): open the file, select the first
N samples, write them with the CLI's writer (``archs4x.cli._query.write_counts``: blocks
of samples streamed to CSV / Parquet).  The peer, in the same run on the same selection,
is what the CLI did before: the whole selection as one genes x samples DataFrame, then
``DataFrame.to_csv`` / ``to_parquet``.  Outputs are checked equal (values and labels) for
the sizes where the peer runs.

    python benchmarks/bench_cli_out.py                       # the default set below
    python benchmarks/bench_cli_out.py --file realscale --samples 100000 --formats parquet

The machine is shared with other jobs: times move by 2x between runs; peak RSS is stable.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _data import DATA, bench_file, save_results

CHILD = r"""
import json, sys, time
import numpy as np, pandas as pd
import archs4x
from archs4x.cli._query import write_counts
path, n, out, how = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
ds = archs4x.open_dataset(path).isel(sample=slice(0, n))
t0 = time.perf_counter()
if how == "archs4x":
    write_counts(ds, out, quiet=True)
else:  # the CLI before: the whole selection as one genes x samples DataFrame, then write
    values = ds.counts.values
    df = pd.DataFrame(values, index=pd.Index(ds.gene.values, name="gene"),
                      columns=[str(s) for s in ds.sample.values])
    df.insert(0, "symbol", np.asarray(ds.symbol.values, dtype=object))
    df.to_parquet(out) if out.endswith(".parquet") else df.to_csv(out)
seconds = time.perf_counter() - t0
# VmHWM: this process's own peak (ru_maxrss would carry the parent's peak over the fork)
hwm = next(int(x.split()[1]) for x in open("/proc/self/status") if x.startswith("VmHWM"))
print(json.dumps({"seconds": seconds, "peak_rss_mb": hwm / 1024}))
"""


def _file(name: str) -> Path:
    if name == "realscale":
        return DATA / "realscale_67186x1000000.h5"
    genes, samples = (int(x) for x in name.split("x"))
    return bench_file(genes, samples)


def _run(path: Path, n: int, out: Path, how: str) -> dict:
    proc = subprocess.run([sys.executable, "-c", CHILD, str(path), str(n), str(out), how],
                          capture_output=True, text=True)  # fmt: skip
    if proc.returncode:
        raise RuntimeError(proc.stderr[-3000:])
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    res["bytes"] = out.stat().st_size if out.exists() else None
    return res


def _same(fmt: str, ours: Path, peer: Path) -> bool:
    import numpy as np
    import pandas as pd

    from archs4x.write.tables import read_parquet_counts

    if fmt == "parquet":
        a = read_parquet_counts(ours)
        b = pd.read_parquet(peer).drop(columns="symbol").T
    else:
        a = pd.read_csv(ours, header=[0, 1], index_col=0)
        a.columns = a.columns.get_level_values(0)
        b = pd.read_csv(peer, index_col=0).drop(columns="symbol").T
    return a.index.tolist() == b.index.tolist() and np.array_equal(a.to_numpy(), b.to_numpy())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--file", default="67186x20000", help="realscale or GENESxSAMPLES")
    ap.add_argument("--samples", type=int, nargs="+", default=[1000, 5000, 20000])
    ap.add_argument("--formats", nargs="+", default=["csv", "parquet"])
    ap.add_argument("--peer-max", type=int, default=5000, help="largest N the peer runs on")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--name", default="cli_out")
    args = ap.parse_args()
    path = _file(args.file)
    rows = []
    with tempfile.TemporaryDirectory(dir=DATA) as tmp:
        for n in args.samples:
            for fmt in args.formats:
                ours = Path(tmp) / f"ours_{n}.{fmt}"
                peer = Path(tmp) / f"peer_{n}.{fmt}"
                runs = [_run(path, n, ours, "archs4x") for _ in range(args.repeat)]
                row = {"file": path.name, "samples": n, "format": fmt,
                       "archs4x_seconds": [r["seconds"] for r in runs],
                       "archs4x_peak_rss_mb": max(r["peak_rss_mb"] for r in runs),
                       "archs4x_bytes": runs[0]["bytes"]}  # fmt: skip
                if n <= args.peer_max:
                    p = [_run(path, n, peer, "peer") for _ in range(args.repeat)]
                    row.update(peer_seconds=[r["seconds"] for r in p],
                               peer_peak_rss_mb=max(r["peak_rss_mb"] for r in p),
                               same_values=_same(fmt, ours, peer))  # fmt: skip
                    peer.unlink(missing_ok=True)
                ours.unlink(missing_ok=True)
                rows.append(row)
                print(json.dumps(row), flush=True)
    load = os.getloadavg()
    out = save_results(args.name, {"rows": rows, "load_average": load,
                                   "peak_rss_self_mb": resource.getrusage(
                                       resource.RUSAGE_SELF).ru_maxrss / 1024})  # fmt: skip
    print(f"wrote {out}", time.strftime("%H:%M:%S"))


if __name__ == "__main__":
    main()
