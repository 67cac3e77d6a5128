"""The guided tour behind ``archs4x demo``, on the embedded example data."""

from __future__ import annotations

import sys
import time
from typing import TextIO

import numpy as np

from .datasets import example_file
from .io import open_dataset

__all__ = ["run_demo"]


def run_demo(*, file: TextIO | None = None, path=None) -> dict:
    """Open the example file lazily, query its metadata, and normalise a small slice.

    Returns a dict of the figures it printed (used by the tests).

    Examples
    --------
    >>> import io
    >>> res = run_demo(file=io.StringIO())
    >>> res["n_genes"], res["n_samples"]
    (4500, 400)
    """
    out = file or sys.stdout
    t0 = time.perf_counter()
    path = path or example_file()
    ds = open_dataset(path)
    t_open = time.perf_counter() - t0
    print(f"archs4x demo: {path}", file=out)
    print(f"opened lazily in {t_open * 1000:.0f} ms: nothing but ids read yet", file=out)
    print(
        f"  counts: {dict(ds.sizes)} uint32, {ds.counts.data.npartitions} Dask chunk(s)", file=out
    )
    print(f"  sample metadata fields: {len(ds.coords) - 3}; gene fields: symbol, biotype", file=out)

    source = ds["source_name_ch1"].compute()
    hits = np.flatnonzero(np.char.find(source.values.astype(str), "myoblast") >= 0)
    bulk = hits[ds["singlecellprobability"].values[hits] < 0.5]
    print(f"\nsamples whose source mentions 'myoblast': {hits.size} ({bulk.size} bulk)", file=out)
    sel = ds.isel(sample=bulk[:6])
    print("  " + ", ".join(sel.sample.values.tolist()), file=out)

    counts = sel.counts.astype("float64")
    lib = counts.sum("gene")
    log_cpm = np.log2(1 + counts / lib.where(lib > 0) * 1e6)
    genes = ["MYOD1", "MYOG", "DES", "ACTB", "ALB"]
    symbols = ds["symbol"].values
    rows = [int(np.flatnonzero(symbols == g)[0]) for g in genes]
    table = log_cpm.isel(gene=rows).swap_dims(gene="symbol").compute()
    print("\nlog2(1 + CPM) of marker genes in those samples (only their chunks were read):",
          file=out)  # fmt: skip
    print("  " + "gene".ljust(8) + "".join(s[-7:].rjust(9) for s in table.sample.values),
          file=out)  # fmt: skip
    for g in genes:
        row = table.sel(symbol=g).values
        print("  " + g.ljust(8) + "".join(f"{v:9.2f}" for v in row), file=out)
    print(f"\ndone in {time.perf_counter() - t0:.2f} s", file=out)
    return {
        "n_genes": int(ds.sizes[ds.counts.dims[0]]),
        "n_samples": int(ds.sizes["sample"]),
        "myoblast_hits": int(hits.size),
        "table": table,
    }
