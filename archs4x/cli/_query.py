"""Shared options and output of the query subcommands (search, samples, series, meta, ...).

``--out`` is checked before any work (its kind, its folder, that it can be written, the
optional package a URL needs), through the ``prechecks`` that :func:`add_output_options`
registers and :func:`archs4x.cli.main` runs first.  Counts are then written in bounded
memory, block by block of samples, with a progress bar through the write: tables by
:mod:`archs4x.cli._tables`, Zarr stores by :func:`archs4x.to_zarr`.  An empty selection
writes nothing, whatever the format: the command says so and exits with status 1.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from ..write.tables import CountsTableWriter
from ._messages import missing_extra, warnings_to_stderr

__all__ = [
    "SHOW_FIELDS",
    "add_missing_option",
    "add_output_options",
    "check_out",
    "literal_hint",
    "open_with_queries",
    "print_table",
    "report",
    "warnings_to_stderr",
    "write_counts",
    "write_table",
]

SHOW_FIELDS = ["series_id", "source_name_ch1", "title"]
COUNTS_OUT = (".csv", ".tsv", ".parquet", ".zarr")
TABLE_OUT = (".csv", ".tsv", ".parquet")
BLOCK_BYTES = 32 * 2**20  # counts per block written: all genes x this many bytes of samples
OUT_HELP = (
    "write the selected counts: .csv/.tsv/.parquet (one row per sample, streamed) or .zarr "
    "(counts and metadata, via archs4x.to_zarr); checked before any work"
)


def open_with_queries(path: str) -> xr.Dataset:
    """Open ``path`` with the ``ds.archs4`` accessor registered."""
    from .. import accessor  # noqa: F401
    from ..backends.open import open_dataset

    return open_dataset(path)


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0.

    Examples
    --------
    >>> non_negative_int("3")
    3
    >>> non_negative_int("-1")
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: must be 0 or more, got -1
    """
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def check_out(out: str | None, kinds: tuple[str, ...] = COUNTS_OUT) -> None:
    """Fail now, before any work, if ``--out`` cannot be written.

    Raises
    ------
    ValueError
        Unsupported extension, an existing non-Zarr folder for ``.zarr``, or a URL
        whose filesystem package is missing (naming the extra to install).
    FileNotFoundError, PermissionError, IsADirectoryError
        The folder is missing or not writable; a table path is a folder.

    Examples
    --------
    >>> check_out("counts.xlsx")
    Traceback (most recent call last):
    ...
    ValueError: --out 'counts.xlsx': use a .csv, .tsv, .parquet or .zarr path
    >>> check_out("/no/such/folder/x.csv")
    Traceback (most recent call last):
    ...
    FileNotFoundError: --out '/no/such/folder/x.csv': the folder /no/such/folder does not exist
    """
    if out is None:
        return
    suffix = Path(out.rstrip("/")).suffix.lower()
    if suffix not in kinds:
        names = ", ".join(kinds[:-1]) + f" or {kinds[-1]}" if len(kinds) > 1 else kinds[0]
        raise ValueError(f"--out {out!r}: use a {names} path")
    if "://" in out:
        import fsspec

        protocol = out.split("://", 1)[0]
        try:
            fsspec.get_filesystem_class(protocol)
        except ImportError as exc:
            raise ValueError(f"--out {out!r}: {missing_extra(exc, protocol)}") from None
        except ValueError:
            raise ValueError(f"--out {out!r}: unknown protocol {protocol!r}") from None
        return
    path = Path(out).expanduser()
    folder = path.parent
    if not folder.is_dir():
        raise FileNotFoundError(f"--out {out!r}: the folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise PermissionError(f"--out {out!r}: the folder {folder} is not writable")
    if suffix == ".zarr":
        if path.is_file():
            raise ValueError(f"--out {out!r} is a file, not a Zarr store")
        if path.is_dir() and any(path.iterdir()) and not (path / "zarr.json").exists():
            raise ValueError(f"--out {out!r} is a folder that is not a Zarr store: not overwritten")
    elif path.is_dir():
        raise IsADirectoryError(f"--out {out!r} is a folder")
    elif path.exists() and not os.access(path, os.W_OK):
        raise PermissionError(f"--out {out!r} exists and is not writable")


def add_output_options(p: argparse.ArgumentParser, *, counts: bool = True) -> None:
    """``--out``, ``--show`` and ``--quiet``; ``--out`` is checked before the command runs."""
    kinds = COUNTS_OUT if counts else TABLE_OUT
    p.add_argument("--out", metavar="PATH", help=OUT_HELP if counts else
                   "write the metadata table to PATH (.csv, .tsv or .parquet)")  # fmt: skip
    p.add_argument("--show", type=non_negative_int, default=20, metavar="N",
                   help="rows of the table to print (default 20, 0 for none)")  # fmt: skip
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(prechecks=[lambda args: check_out(args.out, kinds)])


def add_missing_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--missing", choices=("warn", "raise", "ignore"), default="warn",
                   help="unknown ids: warn (default), fail, or ignore")  # fmt: skip


@contextlib.contextmanager
def literal_hint() -> Iterator[None]:
    """Re-raise pattern errors naming the command line's ``--literal``, not ``regex=False``.

    Examples
    --------
    >>> with literal_hint():
    ...     raise ValueError("invalid regular expression 'a(': ...; pass regex=False to ...")
    Traceback (most recent call last):
    ...
    ValueError: invalid regular expression 'a(': ...; pass --literal to ...
    """
    from ..errors import RegexTimeoutError

    try:
        yield
    except (ValueError, RegexTimeoutError) as exc:
        text = str(exc)
        if "regex=False" not in text:
            raise
        raise type(exc)(text.replace("regex=False", "--literal")) from None


def print_table(df: pd.DataFrame, show: int, what: str, total: int | None = None) -> None:
    """Print a count line and the first ``show`` rows of ``df``."""
    total = len(df) if total is None else total
    shown = min(max(show, 0), len(df))
    print(f"{total} {what}")
    if shown:
        with pd.option_context("display.max_colwidth", 40, "display.width", 200):
            print(df.head(shown).to_string())
    if total > shown and show > 0:
        print(f"... {total - shown} more (--show N to print more, --out PATH to save)")


def write_table(df: pd.DataFrame, out: str) -> None:
    """Write a (small) table: ``.csv``, ``.tsv`` or ``.parquet``, complete or not at all."""
    check_out(out, TABLE_OUT)
    suffix = Path(out).suffix.lower()
    local = "://" not in out
    target = out + ".part" if local else out
    try:
        if suffix == ".parquet":
            df.to_parquet(target)
        else:
            df.to_csv(target, sep="\t" if suffix == ".tsv" else ",")
    except BaseException:
        if local:
            Path(target).unlink(missing_ok=True)
        raise
    if local:
        os.replace(target, out)
    print(f"wrote {out}", file=sys.stderr)


def _feature_labels(ds: xr.Dataset) -> tuple[list[str], list[str] | None]:
    from ..dims import feature_dim

    fdim = feature_dim(ds)
    genes = [str(g) for g in ds.indexes[fdim]]
    sym = ds.coords.get("symbol")
    symbols = None
    if sym is not None and sym.dims == (fdim,):
        symbols = ["" if s is None else str(s) for s in np.asarray(sym.values, dtype=object)]
    return genes, symbols


def stream_counts(ds: xr.Dataset, out: str, *, quiet: bool) -> int:
    """Write the counts of ``ds`` to a table, one block of samples at a time.

    The next block is read while the current one is written; memory holds two blocks
    of ``BLOCK_BYTES``.  Returns the number of samples written.
    """
    from tqdm.auto import tqdm

    from ..dims import COUNTS, SAMPLE, feature_dim

    fdim = feature_dim(ds)
    genes, symbols = _feature_labels(ds)
    ids = [str(s) for s in ds.indexes[SAMPLE]]
    counts = ds[COUNTS].transpose(fdim, SAMPLE).data
    per = max(1, BLOCK_BYTES // (4 * max(1, len(genes))))
    starts = list(range(0, len(ids), per))

    def read(start: int) -> np.ndarray:
        block = counts[:, start : start + per]
        values = block.compute() if hasattr(block, "compute") else np.asarray(block)
        return np.ascontiguousarray(np.asarray(values).T)

    bar = tqdm(total=len(ids), unit="sample", desc=f"writing {Path(out).name}",
               disable=quiet, file=sys.stderr, dynamic_ncols=True)  # fmt: skip
    with bar, CountsTableWriter(out, genes, symbols) as writer, \
            concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:  # fmt: skip
        ahead = pool.submit(read, starts[0]) if starts else None
        for i, start in enumerate(starts):
            assert ahead is not None
            block = ahead.result()
            ahead = pool.submit(read, starts[i + 1]) if i + 1 < len(starts) else None
            writer.write(ids[start : start + per], block)
            bar.update(len(block))
    return len(ids)


def write_counts(ds: xr.Dataset, out: str, *, quiet: bool) -> None:
    """Write the selected counts to ``out`` (format from the suffix).

    Raises
    ------
    ValueError
        The selection is empty: nothing is written, whatever the format.
    """
    check_out(out, COUNTS_OUT)
    n = ds.sizes["sample"]
    if n == 0:
        raise ValueError(f"0 samples selected: nothing written to {out}")
    if Path(out.rstrip("/")).suffix.lower() == ".zarr":
        from ..write.zarr import to_zarr

        to_zarr(ds, out, progress=not quiet, overwrite=True)
    else:
        stream_counts(ds, out, quiet=quiet)
    print(f"wrote {n} samples to {out}", file=sys.stderr)


def report(ds: xr.Dataset, args: argparse.Namespace, what: str) -> int:
    """Print the selection's metadata (first ``--show`` rows); write counts if ``--out``."""
    n = ds.sizes["sample"]
    fields = [f for f in SHOW_FIELDS if f in ds.coords]
    head = ds.archs4.index(np.arange(min(max(args.show, 0), n))).archs4.meta(fields)
    print_table(head, args.show, what, total=n)
    sys.stdout.flush()
    if args.out:
        write_counts(ds, args.out, quiet=args.quiet)
    return 0
