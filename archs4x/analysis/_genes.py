"""Resolving genes given by symbol or Ensembl id to row positions of a counts array."""

from __future__ import annotations

import difflib
import warnings
from collections.abc import Iterable

import numpy as np
import xarray as xr

from ..dims import feature_dim
from ..errors import MissingIdsWarning

__all__ = ["resolve_genes", "symbols_of"]

#: The symbol coordinate of gene (and transcript) files.
SYMBOL = "symbol"


def symbols_of(arr: xr.DataArray | xr.Dataset) -> np.ndarray | None:
    """The feature symbols of ``arr`` as an object array, or None without a symbol coord."""
    if SYMBOL not in arr.coords:
        return None
    return np.asarray(arr.coords[SYMBOL].values, dtype=object)


def _as_list(genes: str | Iterable[str]) -> list[str]:
    if isinstance(genes, str):
        return [genes]
    out = [str(g) for g in genes]
    if not out:
        raise ValueError("no genes given")
    return out


def resolve_genes(
    arr: xr.DataArray | xr.Dataset,
    genes: str | Iterable[str],
    *,
    what: str = "gene",
    missing: str = "raise",
) -> tuple[np.ndarray, list[str]]:
    """Row positions of ``genes`` (Ensembl ids or symbols), and the name each came from.

    An Ensembl id (the feature index) gives its row; a symbol gives every row carrying
    it (about 3% of symbols belong to several Ensembl genes), in file order.  Rows are
    unique, in the order of ``genes``.  An unknown name raises ``KeyError`` listing
    close matches (``missing="raise"``) or is left out with a
    :class:`archs4x.MissingIdsWarning` (``missing="warn"``).

    Examples
    --------
    >>> import archs4x
    >>> ds = archs4x.open_dataset(archs4x.datasets.example_file())
    >>> rows, names = resolve_genes(ds, ["ALB", "ENSG00000000001"])
    >>> rows.tolist(), names
    ([5, 0], ['ALB', 'ENSG00000000001'])
    >>> resolve_genes(ds, ["MYOD"])
    Traceback (most recent call last):
    ...
    KeyError: "gene 'MYOD' not found (neither an Ensembl id nor a symbol); close matches: MYOD1..."
    """
    names = _as_list(genes)
    fdim = feature_dim(arr)
    ids = np.asarray(arr[fdim].values, dtype=object)
    symbols = symbols_of(arr)
    id_pos = {str(g): i for i, g in enumerate(ids)}
    sym_pos: dict[str, list[int]] = {}
    if symbols is not None:
        for i, s in enumerate(symbols):
            sym_pos.setdefault(str(s), []).append(i)
    rows: list[int] = []
    origin: list[str] = []
    seen: set[int] = set()
    absent: list[str] = []
    for name in names:
        if name in id_pos:
            found = [id_pos[name]]
        elif name in sym_pos:
            found = sym_pos[name]
        elif missing == "warn":
            absent.append(name)
            continue
        else:
            vocabulary = list(sym_pos) + list(id_pos)
            close = difflib.get_close_matches(name, vocabulary, n=5, cutoff=0.6)
            hint = f"; close matches: {', '.join(close)}" if close else ""
            raise KeyError(f"{what} {name!r} not found (neither an Ensembl id nor a symbol){hint}")
        for r in found:
            if r not in seen:
                seen.add(r)
                rows.append(r)
                origin.append(name)
    if absent:
        shown = ", ".join(absent[:20]) + (" ..." if len(absent) > 20 else "")
        warnings.warn(f"{len(absent)} {what}s not found: {shown}", MissingIdsWarning, stacklevel=3)
    return np.asarray(rows, dtype=np.int64), origin
