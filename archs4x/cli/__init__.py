"""The ``archs4x`` command line.

Each subcommand lives in its own module of this package and exposes
``register(subparsers)``, which adds its parser and sets ``func`` to the function that
runs it.  Modules are discovered: adding ``cli/<name>.py`` adds ``archs4x <name>``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
from collections.abc import Sequence

__all__ = ["build_parser", "commands", "main"]


def commands() -> list[str]:
    """Names of the subcommand modules of this package, sorted."""
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))


EPILOG = """examples:
  archs4x demo                                       the tour on the embedded example data
  archs4x ls human_gene_v2.5.h5                      groups, datasets, dtypes, shapes
  archs4x index human_gene_v2.5.h5                   chunk table for fast scattered reads
  archs4x search human_gene_v2.5.h5 myoblast --remove-sc --out myoblast.parquet
  archs4x samples human_gene_v2.5.h5 GSM1158284 GSM1482938 --out two.csv
  archs4x series human_gene_v2.5.h5 GSE64016 --out gse64016.zarr
  archs4x meta human_gene_v2.5.h5 --series GSE64016 --fields title series_id
  archs4x filter human_gene_v2.5.h5 "tissue == 'liver' and submission_date >= '2019-01-01'"
  archs4x facets human_gene_v2.5.h5 tissue cell_type series_id --top 20
  archs4x convert human_gene_v2.5.h5 bygene.zarr --layout gene
  archs4x verify bygene.zarr                         every byte against its checksums
  archs4x versions --species human --level gene
  archs4x download human --level gene --version latest -o data/
  archs4x align folder human reads/ -o counts.tsv
  archs4x embed human_gene_v2.5.h5 -o human.embedding.zarr --remove-sc
  archs4x similar human_gene_v2.5.h5 human.embedding.zarr GSM1158284 -k 20
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="archs4x",
        description="Lazy, labelled, out-of-core access to ARCHS4 RNA-seq data.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    from .. import __version__

    parser.add_argument("--version", action="version", version=f"archs4x {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in commands():
        importlib.import_module(f"{__name__}.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        for check in getattr(args, "prechecks", ()):  # e.g. --out, before any work
            check(args)
        status = int(args.func(args) or 0)
        sys.stdout.flush()  # a closed pipe shows up here, while we can still handle it
        return status
    except BrokenPipeError:  # the reader went away (`archs4x demo | head -1`): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # as the Python docs
        return 0
    except ImportError as exc:  # an optional package (s3fs for s3:// ...): name the extra
        from ._messages import missing_extra

        print(f"archs4x {args.command}: error: {missing_extra(exc)}", file=sys.stderr)
        return 1
    except (FileNotFoundError, ValueError, KeyError, OSError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"archs4x {args.command}: error: {message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # pragma: no cover
        print("interrupted", file=sys.stderr)
        return 130
