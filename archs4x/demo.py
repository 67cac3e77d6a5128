"""The guided tour behind ``archs4x demo``, on the embedded example data."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from .backends.open import open_dataset
from .compute.normalize import normalize
from .datasets import example_file

__all__ = ["run_demo"]

MARKERS = ["MYOD1", "MYOG", "DES", "ACTB", "ALB"]


def run_demo(*, file: TextIO | None = None, path=None) -> dict:
    """Open the example file lazily, search its metadata, and normalise the hits.

    Returns a dict of the figures it printed (used by the tests).

    Examples
    --------
    >>> import io
    >>> res = run_demo(file=io.StringIO())
    >>> res["n_genes"], res["n_samples"], res["table"].dims
    (4500, 400, ('gene', 'sample'))
    """
    out = file or sys.stdout
    t0 = time.perf_counter()
    path = path or example_file()
    ds = open_dataset(path)
    t_open = time.perf_counter() - t0
    fdim = ds.counts.dims[0]
    print(f"archs4x demo: {path}", file=out)
    print(f"opened lazily in {t_open * 1000:.0f} ms: only sample and gene ids read", file=out)
    print(f"  counts: {dict(ds.sizes)} uint32 in {ds.counts.data.npartitions} Dask chunk(s)",
          file=out)  # fmt: skip
    n_fields = sum(1 for c in ds.coords.values() if c.dims == ("sample",)) - 1
    print(f"  {n_fields} sample metadata fields as coordinates, loaded on first use", file=out)

    hits = ds.archs4.search("myoblast")
    bulk = hits.archs4.remove_single_cell()
    print(f"\nds.archs4.search('myoblast'): {hits.sizes['sample']} samples, "
          f"{bulk.sizes['sample']} after removing single-cell samples", file=out)  # fmt: skip
    table = bulk.archs4.meta(["series_id", "title"]).head(4)
    for gsm, row in table.iterrows():
        print(f"  {gsm}  {row['series_id']:<20} {row['title']}", file=out)

    first = bulk.isel(sample=slice(0, 6))
    norm = normalize(first, "log_quantile")  # lazy: nothing read yet
    # every gene carrying a marker symbol (a symbol can name several Ensembl genes)
    table = norm.sel({fdim: first.archs4.genes(MARKERS)[fdim].values}).compute()
    print("\nlog-quantile normalised expression of marker genes (only these samples read):",
          file=out)  # fmt: skip
    print("  " + "gene".ljust(24) + "".join(s[-7:].rjust(9) for s in table.sample.values),
          file=out)  # fmt: skip
    for gid, sym, row in zip(table[fdim].values, table.symbol.values, table.values, strict=True):
        label = f"{sym} ({gid[-6:]})"
        print("  " + label.ljust(24) + "".join(f"{v:9.2f}" for v in row), file=out)
    print(f"\ndone in {time.perf_counter() - t0:.2f} s. Next: README.md's tour, or "
          "`archs4x --help`.", file=out)  # fmt: skip
    return {
        "n_genes": int(ds.sizes[fdim]),
        "n_samples": int(ds.sizes["sample"]),
        "myoblast_hits": int(hits.sizes["sample"]),
        "table": table,
    }
