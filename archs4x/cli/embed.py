"""``archs4x embed FILE -o EMB.zarr``: fit an embedding of a file's samples."""

from __future__ import annotations

import argparse
import sys

EXAMPLES = """examples:
  archs4x embed human_gene_v2.5.h5 -o human_v2.5.embedding.zarr --remove-sc
  archs4x embed human_gene_v2.5.h5 -o muscle.zarr --samples "skeletal muscle" -k 30
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "embed",
        help="fit an embedding of the samples (out-of-core SVD of log-CPM)",
        description="Fit an embedding of a file's samples (or of those a search selects): "
        "highly variable genes by log-CPM variance, then a randomised truncated SVD, out of "
        "core; saved as a Zarr store for `archs4x similar`.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("file", help="ARCHS4 HDF5 gene file")
    p.add_argument("-o", "--output", required=True, help="the embedding's Zarr store (.zarr)")
    p.add_argument("--samples", metavar="QUERY",
                   help="only samples whose metadata matches this search term "
                   "(as `archs4x search`)")  # fmt: skip
    p.add_argument("--remove-sc", action="store_true", help="leave single-cell samples out")
    p.add_argument("-k", "--components", type=int, default=50, help="dimensions (default 50)")
    p.add_argument("--genes", type=int, default=5000,
                   help="highly variable genes (default 5000)")  # fmt: skip
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--power-iter", type=int, default=2, help="SVD power iterations (default 2)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..embedding import fit
    from ._query import open_with_queries

    if not args.output.rstrip("/").endswith(".zarr"):
        raise ValueError(f"-o {args.output!r}: the embedding is a Zarr store: use a .zarr path")
    ds = open_with_queries(args.file)
    if args.samples:
        ds = ds.archs4.search(args.samples, remove_sc=args.remove_sc)
    elif args.remove_sc:
        ds = ds.archs4.remove_single_cell()
    n = ds.sizes["sample"]
    if n == 0:
        raise ValueError(f"no samples match {args.samples!r}")
    what = f"search {args.samples!r}" if args.samples else "all samples"
    what += ", single-cell removed" if args.remove_sc else ""
    print(f"embedding {n:,} samples ({what}) ...", file=sys.stderr)
    emb = fit(ds, n_components=args.components, n_genes=args.genes, seed=args.seed,
              n_power_iter=args.power_iter, description=what)  # fmt: skip
    emb.save(args.output)
    ratio = float(emb.explained_variance_ratio.sum())
    print(f"wrote {emb.coordinates.shape[0]:,} samples x {emb.coordinates.shape[1]} components "
          f"({emb.genes.size:,} genes, {ratio:.1%} of their variance) to {args.output}",
          file=sys.stderr)  # fmt: skip
    return 0
