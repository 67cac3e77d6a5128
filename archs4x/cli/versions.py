"""``archs4x versions``: list the known ARCHS4 release files."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "versions",
        help="list known ARCHS4 release files (URL, size, SHA1)",
        description="List the ARCHS4 release files archs4x knows (bundled catalog; "
        "--refresh also reads the site's release list). 'latest' is the newest fixed "
        "release, with its size and SHA1.",
        epilog="example: archs4x versions --species human --level gene",
    )
    p.add_argument("--species", choices=["human", "mouse"], help="only this species")
    p.add_argument("--level", choices=["gene", "transcript", "tpm"], help="only this level")
    p.add_argument("--refresh", action="store_true", help="also read the site's release list")
    p.add_argument("--url", help="release list URL (default https://archs4.org/api/versionfile)")
    p.add_argument("--urls", action="store_true", help="show URLs and SHA1s instead of notes")
    p.set_defaults(func=run)


def _size(v) -> str:
    try:
        return f"{int(v) / 1e9:.1f} GB"
    except (TypeError, ValueError):
        return "-"


def run(args: argparse.Namespace) -> int:
    from ..catalog import versions
    from ._messages import warnings_to_stderr

    with warnings_to_stderr("versions"):  # offline --refresh: one line, then the catalog
        df = versions(args.species, args.level, refresh=args.refresh, url=args.url)
    cols = ["species", "level", "version", "size"]
    cols += ["url", "sha1"] if args.urls else ["file", "note"]
    out = df.assign(size=df["size"].map(_size), sha1=df["sha1"].fillna("-"))[cols]
    print(out.to_string(index=False))
    return 0
