"""``archs4x search FILE TERM``: samples whose metadata matches a term."""

from __future__ import annotations

import argparse

from ._query import add_output_options, literal_hint, open_with_queries, report

EXAMPLES = """examples:
  archs4x search human_gene_v2.5.h5 myoblast
  archs4x search human_gene_v2.5.h5 "liver|hepatocyte" --remove-sc --out liver.parquet
  archs4x search human_gene_v2.5.h5 "TNF-α (10" --literal --fields characteristics_ch1
"""


def register(sub: argparse._SubParsersAction) -> None:
    from ..query import DEFAULT_FIELDS

    p = sub.add_parser(
        "search",
        help="find samples whose metadata matches a term",
        description="Find samples whose metadata matches TERM (a case-insensitive Python "
        "regular expression by default: the same samples as re.search); print them and "
        "optionally write their counts (--out is checked before the search).",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("file", help="ARCHS4 HDF5 file")
    p.add_argument("term", help="regular expression (Python syntax) or, with --literal, text")
    default = " ".join(DEFAULT_FIELDS)
    p.add_argument("--fields", nargs="+", default=list(DEFAULT_FIELDS), metavar="FIELD",
                   help=f"sample fields to search (default: {default})")  # fmt: skip
    p.add_argument("--literal", action="store_true", help="match TERM as plain text")
    p.add_argument("--case-sensitive", action="store_true", help="match case")
    p.add_argument("--ignore-whitespace", action="store_true",
                   help="remove whitespace from text and term before matching")  # fmt: skip
    p.add_argument("--remove-sc", action="store_true",
                   help="drop single-cell samples (singlecellprobability >= 0.5)")  # fmt: skip
    add_output_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    ds = open_with_queries(args.file)
    with literal_hint():
        hits = ds.archs4.search(args.term, args.fields, regex=not args.literal,
                                case=args.case_sensitive,
                                ignore_whitespace=args.ignore_whitespace,
                                remove_sc=args.remove_sc)  # fmt: skip
    return report(hits, args, "matching samples")
