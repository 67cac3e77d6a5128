"""``archs4x filter FILE EXPR``: samples whose metadata satisfies a typed expression."""

from __future__ import annotations

import argparse
import sys

from ._query import COUNTS_OUT, add_output_options, check_out, open_with_queries, report

EXAMPLES = """examples:
  archs4x filter human_gene_v2.5.h5 "tissue == 'liver' and singlecellprobability < 0.5"
  archs4x filter human_gene_v2.5.h5 "submission_date >= '2019-01-01' and age > 60" --out old.parquet
  archs4x filter human_gene_v2.5.h5 "series_id in ['GSE64016'] and cell_cycle_phase == 'G1'"

expressions: comparisons == != < <= > >=, in [...], not in [...], contains, startswith,
matches (regex), is null, is not null, combined with and, or, not and parentheses.
Fields: every sample field (numbers, dates as 'YYYY-MM-DD', series_id by membership) and
every key parsed from characteristics_ch1 (tissue, cell_type, sex, age in years, ...;
list them with: archs4x facets FILE).
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "filter",
        help="select samples with a typed metadata expression",
        description="Select the samples whose metadata satisfies EXPR (typed fields, "
        "characteristics parsed into fields); print them and optionally write their counts.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("file", help="ARCHS4 HDF5 file")
    p.add_argument("expr", help="filter expression, e.g. \"tissue == 'liver' and age > 30\"")
    add_output_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..query import parse_filter

    parse_filter(args.expr)  # a syntax error or a bad --out fails before any work
    check_out(args.out, COUNTS_OUT)
    ds = open_with_queries(args.file)
    try:
        selected = ds.archs4.filter(args.expr)
    except TypeError as exc:
        print(f"archs4x filter: error: {exc}", file=sys.stderr)
        return 1
    return report(selected, args, "matching samples")
