"""``archs4x index FILE``: walk a file's chunk B-tree once and keep its chunk table."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "index",
        help="build the chunk table of a large file (faster scattered reads)",
        description=(
            "Walk the file's whole chunk B-tree once and keep a table of every chunk's "
            "byte offset on disk (16 bytes a chunk, keyed by the file's identity). Later "
            "reads of scattered samples, in any process, locate chunks with one lookup. "
            "Small files get one automatically; large files walk the tree per read "
            "without it."
        ),
        epilog="example: archs4x index human_gene_v2.5.h5",
    )
    p.add_argument("file", help="ARCHS4 HDF5 file (path or URL)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..storage.sources import build_chunk_table

    path = build_chunk_table(args.file, progress=not args.quiet)
    print(path)
    return 0
