"""``archs4x demo``: the tour on the embedded example data."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="run the tour on the embedded example data",
        description="Create the example ARCHS4 file in the cache folder, open it lazily, "
        "query its metadata and normalise a small slice.",
        epilog="example: archs4x demo",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..demo import run_demo

    run_demo()
    return 0
