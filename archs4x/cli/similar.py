"""``archs4x similar FILE EMB.zarr (GSM... | FASTQ... | counts.tsv)``: nearest samples."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

EXAMPLES = """examples:
  archs4x similar human_gene_v2.5.h5 human.embedding.zarr GSM1158284 -k 20
  archs4x similar human_gene_v2.5.h5 human.embedding.zarr counts.tsv -o hits.csv
  archs4x similar human_gene_v2.5.h5 human.embedding.zarr reads/x_1.fq.gz reads/x_2.fq.gz
"""

_GSM = re.compile(r"^GSM\d+$")
_FASTQ = re.compile(r"\.(fastq|fq)(\.gz)?$", re.IGNORECASE)
_TABLE = (".tsv", ".csv", ".txt")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "similar",
        help="the samples nearest to GSM ids, a counts table or FASTQ files",
        description="Find the samples of FILE nearest to the queries in an embedding made by "
        "`archs4x embed`: GSM ids, a counts table (genes x samples, Ensembl gene ids as first "
        "column; .tsv/.csv, as `archs4x align` writes), or FASTQ files, which are aligned "
        "first with kallisto (as `archs4x align fastq`: mates paired by name).",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("file", help="ARCHS4 HDF5 gene file (the one the embedding was fitted on)")
    p.add_argument("embedding", help="embedding store from `archs4x embed`")
    p.add_argument("queries", nargs="+", help="GSM ids, one counts table, or FASTQ files")
    p.add_argument("-k", type=int, default=20, help="neighbours per query sample (default 20)")
    p.add_argument("--metric", choices=["euclidean", "cosine"], default="euclidean")
    p.add_argument("-o", "--output", help="write the table (.csv, .tsv or .parquet)")
    g = p.add_argument_group("FASTQ queries (as `archs4x align`)")
    g.add_argument("--species", default="human", help="human (default) or mouse")
    g.add_argument("--release", type=int, default=107, help="Ensembl release (default 107)")
    g.add_argument("--cdna", help="local cDNA FASTA instead of downloading Ensembl's")
    g.add_argument("--ncrna", help="local ncRNA FASTA (with --cdna)")
    g.add_argument("--cache-dir", help="reference/index cache (default ~/.cache/archs4x/align)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress")
    p.set_defaults(func=run)


def _queries(args: argparse.Namespace):
    items = list(args.queries)
    if all(_GSM.match(q) for q in items):
        return items
    if all(_FASTQ.search(q) for q in items):
        from .. import align
        from ..align.fastq import pair_files

        for q in items:
            if not Path(q).exists():
                raise FileNotFoundError(f"no such FASTQ file: {q}")
        samples = pair_files(items)
        ref = align.reference(args.species, args.release, cdna=args.cdna, ncrna=args.ncrna,
                              cache_dir=args.cache_dir)  # fmt: skip
        if not args.quiet:
            print(f"aligning {len(samples)} sample(s) with kallisto ...", file=sys.stderr)
        mapping = {s.name: s.files if len(s.files) == 2 else s.files[0] for s in samples}
        return align.fastq(ref, mapping, progress=not args.quiet)
    if len(items) == 1 and items[0].lower().endswith(_TABLE):
        import pandas as pd

        sep = "," if items[0].lower().endswith(".csv") else "\t"
        return pd.read_csv(items[0], sep=sep, index_col=0)
    raise ValueError("queries must be GSM ids, FASTQ files (.fastq/.fq[.gz]) or one counts "
                     f"table (.tsv/.csv), not a mix: {' '.join(items)}")  # fmt: skip


def run(args: argparse.Namespace) -> int:
    from ..embedding import load
    from ._query import open_with_queries

    if args.output and not args.output.lower().endswith((".csv", ".tsv", ".parquet")):
        raise ValueError(f"-o {args.output!r}: use a .csv, .tsv or .parquet path")
    emb = load(args.embedding)
    ds = open_with_queries(args.file)
    emb.check_dataset(ds)
    query = _queries(args)
    hits = ds.archs4.similar(query, k=args.k, embedding=emb, metric=args.metric)
    if args.output:
        out = args.output.lower()
        if out.endswith(".parquet"):
            hits.to_parquet(args.output)
        else:
            hits.to_csv(args.output, sep="," if out.endswith(".csv") else "\t", index=False)
        print(f"wrote {len(hits):,} rows to {args.output}", file=sys.stderr)
        return 0
    cols = [c for c in ("query", "rank", "gsm", "distance", "title", "series", "tissue")
            if c in hits.columns]  # fmt: skip
    hits[cols].to_csv(sys.stdout, sep="\t", index=False, float_format="%.4g")
    return 0
