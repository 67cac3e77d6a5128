"""``archs4x meta FILE``: sample metadata tables."""

from __future__ import annotations

import argparse

from ._query import (
    add_output_options,
    literal_hint,
    open_with_queries,
    print_table,
    warnings_to_stderr,
    write_table,
)

EXAMPLES = """examples:
  archs4x meta human_gene_v2.5.h5 --search myoblast --fields title series_id
  archs4x meta human_gene_v2.5.h5 --samples GSM1158284 GSM1482938
  archs4x meta human_gene_v2.5.h5 --series GSE64016 --out GSE64016_meta.csv
  archs4x meta human_gene_v2.5.h5 --fields geo_accession series_id --out all.parquet
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "meta",
        help="print or save sample metadata",
        description="Print (or save) the metadata of all samples, of samples matching a "
        "search, of given GSM ids or of GEO series.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("file", help="ARCHS4 HDF5 file")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--search", metavar="TERM",
                       help="samples matching TERM (case-insensitive regex)")  # fmt: skip
    which.add_argument("--samples", nargs="+", metavar="GSM", help="these samples, in order")
    which.add_argument("--series", nargs="+", metavar="GSE", help="samples of these series")
    p.add_argument("--fields", nargs="+", metavar="FIELD",
                   help="fields to show (default: all sample fields)")  # fmt: skip
    p.add_argument("--literal", action="store_true", help="match the --search TERM as text")
    p.add_argument("--list-fields", action="store_true", help="list the fields and exit")
    add_output_options(p, counts=False)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    ds = open_with_queries(args.file)
    if args.list_fields:
        from ..query import SAMPLE_ID_FIELD, sample_fields

        print("\n".join([SAMPLE_ID_FIELD, *sample_fields(ds)]))
        return 0
    with warnings_to_stderr("meta"):
        if args.search is not None:
            with literal_hint():
                ds = ds.archs4.search(args.search, regex=not args.literal)
        elif args.samples:
            ds = ds.archs4.samples(args.samples)
        elif args.series:
            ds = ds.archs4.series(args.series)
    df = ds.archs4.meta(args.fields)
    print_table(df, args.show, "samples")
    if args.out:
        write_table(df, args.out)
    return 0
