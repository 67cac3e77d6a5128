"""``archs4x facets FILE [FIELD ...]``: value counts of metadata fields, or the keys found."""

from __future__ import annotations

import argparse
import sys

import pandas as pd

from ._query import TABLE_OUT, check_out, open_with_queries, write_table

EXAMPLES = """examples:
  archs4x facets human_gene_v2.5.h5                      keys found in characteristics_ch1
  archs4x facets human_gene_v2.5.h5 tissue cell_type instrument_model series_id --top 20
  archs4x facets human_gene_v2.5.h5 tissue --filter "singlecellprobability < 0.5"
  archs4x facets human_gene_v2.5.h5 tissue sex --search hepatocyte --out facets.csv
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "facets",
        help="value counts of metadata fields (or the characteristics keys)",
        description="Count the values of sample fields and characteristics keys over all "
        "samples or a selection; without FIELD, list the keys found in characteristics_ch1.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("file", help="ARCHS4 HDF5 file")
    p.add_argument("fields", nargs="*", metavar="FIELD",
                   help="sample fields or characteristics keys (tissue, cell_type...)")  # fmt: skip
    p.add_argument("--top", type=int, default=20, metavar="N",
                   help="most common values (or keys) to show (default 20, 0 for all)")  # fmt: skip
    which = p.add_mutually_exclusive_group()
    which.add_argument("--filter", metavar="EXPR", help="count over the samples matching EXPR")
    which.add_argument("--search", metavar="TERM",
                       help="count over the samples matching TERM (as archs4x search)")  # fmt: skip
    p.add_argument("--out", metavar="PATH",
                   help="write the counts as one table (.csv, .tsv or .parquet)")  # fmt: skip
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..query import parse_filter

    if args.top < 0:
        raise ValueError(f"--top must be 0 or more, got {args.top}")
    check_out(args.out, TABLE_OUT)
    if args.filter is not None:
        parse_filter(args.filter)
    ds = open_with_queries(args.file)
    try:
        if args.filter is not None:
            ds = ds.archs4.filter(args.filter)
        elif args.search is not None:
            ds = ds.archs4.search(args.search)
    except TypeError as exc:
        print(f"archs4x facets: error: {exc}", file=sys.stderr)
        return 1
    top = args.top or None
    n = ds.sizes["sample"]
    if not args.fields:
        keys = ds.archs4.characteristics()
        print(f"{len(keys)} characteristics keys over {n} samples")
        with pd.option_context("display.max_colwidth", 60, "display.width", 200):
            print(keys.head(top).to_string() if len(keys) else "(none)")
        if top and len(keys) > top:
            print(f"... {len(keys) - top} more keys (--top 0 to show all)")
        if args.out:
            write_table(keys, args.out)
        return 0
    tables = ds.archs4.facets(args.fields, top=top)
    for name, table in tables.items():
        left = table.attrs["distinct"] - (len(table) - (1 if table.attrs["missing"] else 0))
        extra = f"; {left} more values ({table.attrs['other']} counts) not shown" if left else ""
        print(f"{name}: {table.attrs['distinct']} values over {n} samples"
              f" ({table.attrs['missing']} missing{extra})")  # fmt: skip
        with pd.option_context("display.max_colwidth", 60, "display.width", 200):
            print(table.to_string(index=False))
    if args.out:
        tidy = pd.concat([t.assign(field=name)[["field", "value", "count", "fraction"]]
                          for name, t in tables.items()], ignore_index=True)  # fmt: skip
        write_table(tidy.set_index("field"), args.out)
    return 0
