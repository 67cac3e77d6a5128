"""``archs4x download SPECIES``: resumable, verified download of an ARCHS4 file."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "download",
        help="download an ARCHS4 file (resumable, verified)",
        description="Download an ARCHS4 file to DIR/<name>.part, resuming an interrupted "
        "download only when the server proves the file is unchanged (ETag or Last-Modified "
        "via If-Range), verifying size and SHA1 when known and that it is an ARCHS4 file "
        "of the release's shape, then renaming it to DIR/<name>. 'latest' is the newest "
        "fixed release (the site's list is read first).",
        epilog="example: archs4x download human --level gene --version latest -o data/",
    )
    p.add_argument("species", help="human or mouse")
    p.add_argument("--level", default="gene", help="gene (default), transcript or tpm")
    p.add_argument("--version", default="latest", help="a version from `archs4x versions`")
    p.add_argument("-o", "--output", default=".", metavar="DIR", help="folder (default .)")
    p.add_argument("--url", help="download the release from this URL (still verified)")
    p.add_argument("--mirror", help="fallback URL")
    p.add_argument("--sha1", help="expected SHA1 (overrides the catalog)")
    p.add_argument("--no-verify", action="store_true", help="skip the SHA1 check")
    p.add_argument("--retries", type=int, default=5, help="retries per source (default 5)")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds (default 60)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..download import counts
    from ._messages import warnings_to_stderr

    with warnings_to_stderr("download"):
        path = counts(
            args.species,
            args.output,
            level=args.level,
            version=args.version,
            url=args.url,
            mirror=args.mirror,
            sha1=args.sha1,
            verify=not args.no_verify,
            progress=not args.quiet,
            retries=args.retries,
            timeout=args.timeout,
        )
    print(path)
    return 0
