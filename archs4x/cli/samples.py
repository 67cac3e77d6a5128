"""``archs4x samples FILE GSM...``: samples by GEO accession."""

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
  archs4x samples human_gene_v2.5.h5 GSM1158284 GSM1482938 --out counts.csv
  archs4x samples human_gene_v2.5.h5 $(cat ids.txt) --missing raise --out counts.zarr
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "samples",
        help="select samples by GSM id",
        description="Select samples by GEO accession (in the order given); print their "
        "metadata and optionally write their counts.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("file", help="ARCHS4 HDF5 file")
    p.add_argument("ids", nargs="+", metavar="GSM", help="GEO sample accessions")
    add_missing_option(p)
    add_output_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    ds = open_with_queries(args.file)
    with warnings_to_stderr("samples"):
        selected = ds.archs4.samples(args.ids, missing=args.missing)
    return report(selected, args, "samples")
