"""``archs4x ls FILE``: list the groups and datasets of an ARCHS4 file."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "ls",
        help="list groups and datasets of an ARCHS4 file",
        description="List groups and datasets (dtype, shape, chunks) without reading data.",
        epilog="example: archs4x ls human_gene_v2.5.h5",
    )
    p.add_argument("file", help="ARCHS4 HDF5 file")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..listing import ls

    ls(args.file)
    return 0
