"""``archs4x series FILE GSE...``: every sample of GEO series."""

from __future__ import annotations

import argparse

from ._query import (
    add_missing_option,
    add_output_options,
    open_with_queries,
    report,
    warnings_to_stderr,
)

EXAMPLES = """examples:
  archs4x series human_gene_v2.5.h5 GSE64016 --out GSE64016.parquet
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "series",
        help="select every sample of GEO series",
        description="Select the samples of one or more GEO series (samples listed in "
        "several series included); print them and optionally write their counts.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("file", help="ARCHS4 HDF5 file")
    p.add_argument("gse", nargs="+", metavar="GSE", help="GEO series accessions")
    add_missing_option(p)
    add_output_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    ds = open_with_queries(args.file)
    with warnings_to_stderr("series"):
        selected = ds.archs4.series(args.gse, missing=args.missing)
    return report(selected, args, "samples")
