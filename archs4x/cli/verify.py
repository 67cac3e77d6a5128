"""``archs4x verify STORE``: check every byte of a Zarr store against its checksums."""

from __future__ import annotations

import argparse
import sys

EXAMPLES = """examples:
  archs4x verify human_gene.zarr
  archs4x verify s3://bucket/human.zarr --storage-option anon=false
  archs4x verify human_gene.zarr --json > report.json

Exit status: 0 when the store is complete and sound, 1 when anything is damaged,
missing or unfinished (each problem is listed, naming array, chunk and object).
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "verify",
        help="check a Zarr store written by archs4x against its checksums",
        description="Read every object of a store once: each chunk's CRC-32C, every chunk "
        "present, each unit against the digest recorded when it was written, metadata.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("store", help="the Zarr store: a directory or an fsspec URL")
    p.add_argument("--storage-option", action="append", default=[], metavar="KEY=VALUE",
                   help="fsspec option for URL stores (repeatable)")  # fmt: skip
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..write.verify import report_json, verify_zarr
    from .convert import storage_options

    report = verify_zarr(args.store, storage_options=storage_options(args.storage_option),
                         progress=not args.quiet and not args.json)  # fmt: skip
    print(report_json(report) if args.json else str(report))
    if not report.ok and not args.json:
        print(f"archs4x verify: {args.store} is damaged or incomplete; rerun the "
              "archs4x.to_zarr call (or archs4x convert) that wrote it to repair it",
              file=sys.stderr)  # fmt: skip
    return 0 if report.ok else 1
