"""Shared options and output of the query subcommands (search, samples, series, meta)."""

from __future__ import annotations

import argparse
import contextlib
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

SHOW_FIELDS = ["series_id", "source_name_ch1", "title"]
OUT_HELP = (
    "write the selected counts: .parquet or .csv (genes x samples, Ensembl id index, "
    "symbol column) or .zarr (counts and metadata, via archs4x.to_zarr)"
)


@contextlib.contextmanager
def warnings_to_stderr(command: str):
    """Show library warnings (e.g. unknown ids) as one plain line each on stderr."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    for w in caught:
        print(f"archs4x {command}: warning: {w.message}", file=sys.stderr)


def open_with_queries(path: str) -> xr.Dataset:
    """Open ``path`` with the ``ds.archs4`` accessor registered."""
    from .. import accessor  # noqa: F401
    from ..backends.open import open_dataset

    return open_dataset(path)


def add_output_options(p: argparse.ArgumentParser, *, counts: bool = True) -> None:
    p.add_argument("--out", metavar="PATH", help=OUT_HELP if counts else
                   "write the metadata table to PATH (.csv or .parquet)")  # fmt: skip
    p.add_argument("--show", type=int, default=20, metavar="N",
                   help="rows of the table to print (default 20, 0 for none)")  # fmt: skip
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def add_missing_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--missing", choices=("warn", "raise", "ignore"), default="warn",
                   help="unknown ids: warn (default), fail, or ignore")  # fmt: skip


def print_table(df: pd.DataFrame, show: int, what: str, total: int | None = None) -> None:
    """Print a count line and the first ``show`` rows of ``df``."""
    total = len(df) if total is None else total
    shown = min(max(show, 0), len(df))
    print(f"{total} {what}")
    if shown:
        with pd.option_context("display.max_colwidth", 40, "display.width", 200):
            print(df.head(shown).to_string())
    if total > shown and show > 0:
        print(f"... {total - shown} more (--show N to print more, --out PATH to save)")


def write_table(df: pd.DataFrame, out: str) -> None:
    suffix = Path(out).suffix.lower()
    if suffix == ".parquet":
        df.to_parquet(out)
    elif suffix in (".csv", ".tsv"):
        df.to_csv(out, sep="\t" if suffix == ".tsv" else ",")
    else:
        raise ValueError(f"--out {out!r}: use a .csv, .tsv or .parquet file for tables")
    print(f"wrote {out}", file=sys.stderr)


def counts_table(ds: xr.Dataset, *, quiet: bool) -> pd.DataFrame:
    """Counts of ``ds`` read with a progress bar: genes x samples, plus a symbol column."""
    from ..dims import COUNTS, SAMPLE, feature_dim
    from ..progress import compute

    fdim = feature_dim(ds)
    (values,) = compute(ds[COUNTS].data, progress=not quiet)
    df = pd.DataFrame(values, index=pd.Index(np.asarray(ds.indexes[fdim]), name=fdim),
                      columns=[str(s) for s in ds.indexes[SAMPLE]])  # fmt: skip
    if "symbol" in ds.coords and ds.coords["symbol"].dims == (fdim,):
        df.insert(0, "symbol", np.asarray(ds.coords["symbol"].values, dtype=object))
    return df


def write_counts(ds: xr.Dataset, out: str, *, quiet: bool) -> None:
    """Write the selected counts to ``out`` (format from the suffix)."""
    suffix = Path(out.rstrip("/")).suffix.lower()
    if suffix == ".zarr":
        from ..write.zarr import to_zarr

        to_zarr(ds, out, progress=not quiet, overwrite=True)
    elif suffix in (".parquet", ".csv", ".tsv"):
        write_table(counts_table(ds, quiet=quiet), out)
        return
    else:
        raise ValueError(f"--out {out!r}: use a .parquet, .csv, .tsv or .zarr path")
    print(f"wrote {out}", file=sys.stderr)


def report(ds: xr.Dataset, args: argparse.Namespace, what: str) -> int:
    """Print the selection's metadata (first ``--show`` rows); write counts if ``--out``."""
    n = ds.sizes["sample"]
    fields = [f for f in SHOW_FIELDS if f in ds.coords]
    head = ds.archs4.index(np.arange(min(max(args.show, 0), n))).archs4.meta(fields)
    print_table(head, args.show, what, total=n)
    if args.out:
        write_counts(ds, args.out, quiet=args.quiet)
    return 0
