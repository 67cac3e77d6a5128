"""``archs4x align fastq|folder|load``: quantify FASTQ files with kallisto, fetch reads."""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

EPILOG = """examples:
  archs4x align fastq human x_1.fastq.gz x_2.fastq.gz -o x.tsv
  archs4x align folder mouse data/run1 --level transcript -o run1.zarr
  archs4x align folder human data/run1 --cdna my.cdna.fa.gz -o run1.tsv
  archs4x align load SRR14457464 SRR14457465 -o data/run1
"""

FASTQ_DESCRIPTION = """\
Quantify one sample with kallisto the way ARCHS4 v2 did (Ensembl release 107 cDNA +
ncRNA; single-end --single -l 200 -s 20, paired-end with the fragment length estimated)
and print (or write) its counts, lined up with ARCHS4's genes. One FILE is single-end,
two are the mates of a paired-end sample. Relative paths are taken from the current
folder. Inputs are checked before the reference is downloaded."""

FOLDER_DESCRIPTION = """\
Quantify every sample of a folder of FASTQ files with kallisto, in parallel (one task per
sample). Mates pair by name (NAME_1/_2, NAME_R1/_R2, NAME.1/.2; .fastq/.fq, gzipped or
not); fasterq-dump's orphan file NAME.fastq next to mates is ignored. Counts line up with
ARCHS4's genes. The folder is checked before the reference is downloaded."""

OUTPUTS = (".tsv", ".csv", ".zarr")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("species", help="human or mouse (a label only with --cdna)")
    p.add_argument("--release", type=int, default=107, help="Ensembl release (default 107)")
    p.add_argument("--cdna", help="local cDNA FASTA instead of downloading Ensembl's")
    p.add_argument("--ncrna", help="local ncRNA FASTA (with --cdna)")
    p.add_argument("--cache-dir", help="reference/index cache (default ~/.cache/archs4x/align)")
    p.add_argument("--level", choices=["gene", "transcript", "tpm"], default="gene",
                   help="gene: gene counts (rounded sums of transcript estimates, uint32, "
                   "as ARCHS4's gene files; default); transcript: rounded transcript "
                   "counts; tpm: transcript TPM (.tsv/.csv only)")  # fmt: skip
    p.add_argument("--identifier", choices=["ensembl", "symbol"], default="ensembl",
                   help="label genes by versionless Ensembl id (default, as ARCHS4 files) "
                   "or by symbol, summing genes that share one (--level gene only)")  # fmt: skip
    p.add_argument("--threads", type=int, default=1, help="kallisto threads per sample")
    p.add_argument("--workers", type=int, help="samples quantified at once (default: cores)")
    p.add_argument("-l", "--fragment-length", type=float, default=200, help="single-end only")
    p.add_argument("-s", "--sd", type=float, default=20, help="single-end only")
    p.add_argument("--check", choices=["full", "head", "none"], default="full",
                   help="FASTQ checks: full (default) checks the first 1,000 records and "
                   "reads every file to its end, comparing the read count with kallisto's "
                   "(catches truncated .gz files and mates of different lengths); head only "
                   "the first 1,000 records (faster); none skips them")  # fmt: skip
    p.add_argument("--kallisto", help="kallisto binary (default $ARCHS4X_KALLISTO or PATH)")
    p.add_argument("-o", "--output", help="output .tsv, .csv (features x samples) or .zarr "
                   "(archs4x.to_zarr, for archs4x.open_zarr); default: TSV on stdout")  # fmt: skip
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
    f = what.add_parser(
        "fastq",
        help="one sample: one (single-end) or two (paired) files",
        description=FASTQ_DESCRIPTION,
        epilog="example: archs4x align fastq human reads/x_1.fastq.gz reads/x_2.fastq.gz -o x.tsv",
    )
    _common(f)
    f.add_argument("files", nargs="+", help="FASTQ file(s) of one sample")
    f.add_argument("--name", help="sample name (default: from the file name)")
    f.set_defaults(func=run)
    d = what.add_parser(
        "folder",
        help="every sample of a folder (mates paired by name)",
        description=FOLDER_DESCRIPTION,
        epilog="example: archs4x align folder mouse data/run1 --level transcript -o run1.zarr",
    )
    _common(d)
    d.add_argument("folder", help="folder of .fastq/.fq(.gz) files")
    d.set_defaults(func=run)
    ld = what.add_parser(
        "load",
        help="download runs' reads (fasterq-dump, else ENA)",
        description="Download the raw reads of SRA/ENA runs into a folder: fasterq-dump "
        "--split-3 --skip-technical when installed (runs prefetched into the current "
        "folder are used offline), else ENA's FASTQ files, resumably and MD5-checked.",
    )
    ld.add_argument("accessions", nargs="+", help="run accessions (SRR..., ERR..., DRR...)")
    ld.add_argument("-o", "--outdir", required=True, help="output folder")
    ld.add_argument("--method", choices=["auto", "fasterq-dump", "ena"], default="auto")
    ld.add_argument("--ena-url", default=None, help="ENA portal API root")
    ld.add_argument("--orphans", action="store_true", help="also fetch orphan-read files")
    ld.add_argument("-q", "--quiet", action="store_true")
    ld.set_defaults(func=run_load)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def _check_output(output: str | None, level: str) -> None:
    """The output's kind and folder, before anything is downloaded or run."""
    if output is None:
        return
    suffix = Path(output.rstrip("/")).suffix.lower()
    if suffix not in OUTPUTS:
        raise ValueError(f"-o {output!r}: use a .tsv, .csv or .zarr path")
    if suffix == ".zarr" and level == "tpm":
        raise ValueError("-o *.zarr stores counts: use --level gene or transcript, or a .tsv")
    folder = Path(output).expanduser().absolute().parent
    if not folder.is_dir():
        raise FileNotFoundError(f"-o {output!r}: the folder {folder} does not exist")


def run(args: argparse.Namespace) -> int:
    import dask

    from .. import align
    from ..align import fastq_samples, run_quantification
    from ..align.fastq import find_samples

    _check_output(args.output, args.level)
    # inputs first: a typo must not cost a reference download
    if args.align_command == "fastq":
        samples = fastq_samples(args.files, args.name)
    else:
        samples = find_samples(args.folder)
    if args.identifier == "symbol" and args.level != "gene":
        raise ValueError("--identifier symbol applies to --level gene")
    ref = align.reference(
        args.species, args.release, cdna=args.cdna, ncrna=args.ncrna, cache_dir=args.cache_dir
    )
    lazy = align.quantify(
        ref,
        samples,
        return_type=args.level,
        identifier=args.identifier,
        options=align.QuantOptions(
            fragment_length=args.fragment_length,
            sd=args.sd,
            threads=args.threads,
            check=False if args.check == "none" else args.check,
            kallisto=args.kallisto,
        ),
    )
    n = lazy.sizes["sample"]
    if not args.quiet:
        print(f"quantifying {n} sample(s) against {len(ref.table):,} transcripts", file=sys.stderr)
    workers = dask.config.set(num_workers=args.workers) if args.workers else None
    try:
        with workers or contextlib.nullcontext():
            ds = run_quantification(lazy, progress=not args.quiet)
    except align.KallistoError as exc:
        print(f"archs4x align: error: {exc}", file=sys.stderr)
        return 1
    _write(ds, args.output, quiet=args.quiet)
    return 0


def _write(ds, output: str | None, *, quiet: bool = True) -> None:
    var = "counts" if "counts" in ds else "tpm"
    if output and output.rstrip("/").lower().endswith(".zarr"):
        from ..write.zarr import to_zarr

        to_zarr(ds, output, overwrite=True, progress=not quiet)
        if not quiet:
            print(f"wrote {ds.sizes['sample']} sample(s) to {output}", file=sys.stderr)
        return
    fdim = next(d for d in ds[var].dims if d != "sample")
    table = ds[var].transpose(fdim, "sample").to_pandas()
    table.index.name = fdim
    sep = "," if output and output.lower().endswith(".csv") else "\t"
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
