"""``archs4x convert FILE OUT.zarr``: write an ARCHS4 file (or matching samples) to Zarr."""

from __future__ import annotations

import argparse
import sys

EXAMPLES = """examples:
  archs4x convert human_gene_v2.5.h5 human_gene.zarr
  archs4x convert human_gene_v2.5.h5 human_gene_bygene.zarr --layout gene
  archs4x convert human_gene_v2.5.h5 liver.zarr --search liver hepatocyte
  archs4x convert human_gene_v2.5.h5 s3://bucket/human.zarr --storage-option anon=false

Rerunning an interrupted conversion with the same arguments resumes it (units already
written are verified first); rerunning a finished one verifies and repairs it.
See also: archs4x verify OUT.zarr
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "convert",
        help="convert an ARCHS4 file (or a search result) to Zarr, resumably",
        description="Write counts and all metadata to a Zarr v3 store, sample-major "
        "(per-sample work) or gene-major (one gene over all samples in a few reads).",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("file", help="ARCHS4 HDF5 file")
    p.add_argument("out", help="output Zarr store: a directory or an fsspec URL")
    p.add_argument("--layout", choices=["sample", "gene"], default="sample",
                   help="chunk layout (default: sample)")  # fmt: skip
    p.add_argument("--search", nargs="+", metavar="TERM",
                   help="keep only samples whose metadata matches any TERM (regex)")  # fmt: skip
    p.add_argument("--overwrite", action="store_true", help="replace OUT and start over")
    p.add_argument("--max-memory", default="1.5GiB", help="memory budget (default: 1.5GiB)")
    p.add_argument("--workers", type=int, default=None, help="units written at once")
    p.add_argument("--storage-option", action="append", default=[], metavar="KEY=VALUE",
                   help="fsspec option for URL stores (repeatable)")  # fmt: skip
    p.add_argument("--no-verify", action="store_true",
                   help="on resume, trust the units already written (no read-back)")  # fmt: skip
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=run)


def storage_options(items: list[str]) -> dict | None:
    out: dict = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--storage-option expects KEY=VALUE, got {item!r}")
        low = value.lower()
        out[key] = True if low == "true" else False if low == "false" else value
    return out or None


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from ..backends.open import open_dataset
    from ..write.zarr import to_zarr

    ds = open_dataset(args.file)
    if args.search:
        from ..query import search

        ids: set = set()
        for term in args.search:
            ids.update(search(ds, term).sample.values.tolist())
        keep = np.flatnonzero(ds.sample.isin(list(ids)).values)
        if keep.size == 0:
            raise ValueError(f"no sample matches {args.search}: nothing to convert")
        ds = ds.isel(sample=keep)
        if not args.quiet:
            print(f"{keep.size} samples match {args.search}", file=sys.stderr)
    out = to_zarr(
        ds, args.out, layout=args.layout, overwrite=args.overwrite,
        progress=not args.quiet, storage_options=storage_options(args.storage_option),
        max_memory=args.max_memory, workers=args.workers, verify=not args.no_verify,
    )  # fmt: skip
    if not args.quiet:
        n_f, n_s = ds.counts.shape
        print(f"wrote {out} ({args.layout} layout, {n_f} x {n_s})", file=sys.stderr)
    return 0
