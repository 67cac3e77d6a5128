"""``archs4x align fastq|folder|load``: quantify FASTQ files with kallisto, fetch reads."""

from __future__ import annotations

import argparse
import sys

EPILOG = """examples:
  archs4x align fastq human x_1.fastq.gz x_2.fastq.gz -o x.tsv
  archs4x align folder mouse data/run1 --level transcript -o run1.zarr
  archs4x align folder human data/run1 --cdna my.cdna.fa.gz -o run1.tsv
  archs4x align load SRR14457464 SRR14457465 -o data/run1
"""


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("species", help="human or mouse (a label only with --cdna)")
    p.add_argument("--release", type=int, default=107, help="Ensembl release (default 107)")
    p.add_argument("--cdna", help="local cDNA FASTA instead of downloading Ensembl's")
    p.add_argument("--ncrna", help="local ncRNA FASTA (with --cdna)")
    p.add_argument("--cache-dir", help="reference/index cache (default ~/.cache/archs4x/align)")
    p.add_argument("--level", choices=["gene", "transcript", "tpm"], default="gene")
    p.add_argument("--identifier", choices=["ensembl", "symbol"], default="ensembl")
    p.add_argument("--threads", type=int, default=1, help="kallisto threads per sample")
    p.add_argument("--workers", type=int, help="samples quantified at once (default: cores)")
    p.add_argument("-l", "--fragment-length", type=float, default=200, help="single-end only")
    p.add_argument("-s", "--sd", type=float, default=20, help="single-end only")
    p.add_argument("--check", choices=["full", "head", "none"], default="full")
    p.add_argument("--kallisto", help="kallisto binary (default $ARCHS4X_KALLISTO or PATH)")
    p.add_argument("-o", "--output", help="output .tsv, .csv or .zarr (default: TSV on stdout)")
    p.add_argument("-q", "--quiet", action="store_true", help="no per-sample progress")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "align",
        help="quantify FASTQ files with kallisto (counts compatible with ARCHS4)",
        description="Quantify FASTQ files with kallisto, one parallel task per sample, into "
        "gene or transcript counts that line up with ARCHS4; fetch raw reads from SRA/ENA.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    what = p.add_subparsers(dest="align_command", metavar="{fastq,folder,load}")
    f = what.add_parser("fastq", help="one sample: one (single-end) or two (paired) files")
    _common(f)
    f.add_argument("files", nargs="+", help="FASTQ file(s) of one sample")
    f.add_argument("--name", help="sample name (default: from the file name)")
    f.set_defaults(func=run)
    d = what.add_parser("folder", help="every sample of a folder (mates paired by name)")
    _common(d)
    d.add_argument("folder", help="folder of .fastq/.fq(.gz) files")
    d.set_defaults(func=run)
    ld = what.add_parser("load", help="download runs' reads (fasterq-dump, else ENA)")
    ld.add_argument("accessions", nargs="+", help="run accessions (SRR..., ERR..., DRR...)")
    ld.add_argument("-o", "--outdir", required=True, help="output folder")
    ld.add_argument("--method", choices=["auto", "fasterq-dump", "ena"], default="auto")
    ld.add_argument("--ena-url", default=None, help="ENA portal API root")
    ld.add_argument("--orphans", action="store_true", help="also fetch orphan-read files")
    ld.add_argument("-q", "--quiet", action="store_true")
    ld.set_defaults(func=run_load)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def run(args: argparse.Namespace) -> int:
    import dask

    from .. import align

    ref = align.reference(
        args.species, args.release, cdna=args.cdna, ncrna=args.ncrna, cache_dir=args.cache_dir
    )
    options = dict(
        return_type=args.level,
        identifier=args.identifier,
        fragment_length=args.fragment_length,
        sd=args.sd,
        threads=args.threads,
        check=False if args.check == "none" else args.check,
        kallisto=args.kallisto,
        compute=False,
    )
    if args.align_command == "fastq":
        lazy = align.fastq(ref, args.files, name=args.name, **options)
    else:
        lazy = align.folder(ref, args.folder, **options)
    n = lazy.sizes["sample"]
    if not args.quiet:
        print(f"quantifying {n} sample(s) against {len(ref.table):,} transcripts", file=sys.stderr)
    from ..align.pipeline import _compute

    try:
        with dask.config.set(num_workers=args.workers) if args.workers else _nullcontext():
            ds = _compute(lazy, progress=not args.quiet)
    except align.KallistoError as exc:
        print(f"archs4x align: error: {exc}", file=sys.stderr)
        return 1
    _write(ds, args.output)
    return 0


def _nullcontext():
    import contextlib

    return contextlib.nullcontext()


def _write(ds, output: str | None) -> None:
    var = "counts" if "counts" in ds else "tpm"
    if output and output.endswith(".zarr"):
        ds.to_zarr(output, mode="w")
        return
    fdim = next(d for d in ds[var].dims if d != "sample")
    table = ds[var].to_pandas()
    table.index.name = fdim
    sep = "," if output and output.endswith(".csv") else "\t"
    table.to_csv(output if output else sys.stdout, sep=sep)
    if output:
        print(f"wrote {table.shape[0]:,} x {table.shape[1]} {var} to {output}", file=sys.stderr)


def run_load(args: argparse.Namespace) -> int:
    from .. import align
    from ..align.sra import ENA_URL

    got = align.load(
        args.accessions,
        args.outdir,
        method=args.method,
        ena_url=args.ena_url or ENA_URL,
        orphans=args.orphans,
        progress=not args.quiet,
    )
    for run, paths in got.items():
        print(run, *paths, sep="\t")
    return 0
