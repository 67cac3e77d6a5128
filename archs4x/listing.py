"""``ls``: the tree of groups and datasets of an HDF5 file, with dtypes and shapes."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import TextIO

import h5py

from .storage.sources import open_source

__all__ = ["Entry", "ls", "tree"]


@dataclass(frozen=True)
class Entry:
    """One group or dataset of an HDF5 file."""

    path: str
    kind: str  # "group" or "dataset"
    dtype: str = ""
    shape: tuple[int, ...] = ()
    chunks: tuple[int, ...] | None = None
    compression: str | None = None

    @property
    def depth(self) -> int:
        return self.path.count("/")


def _dtype_name(dset: h5py.Dataset) -> str:
    if h5py.check_string_dtype(dset.dtype) is not None or dset.dtype.kind in "OS":
        return "str"
    return str(dset.dtype)


def tree(path: str | os.PathLike) -> list[Entry]:
    """Every group and dataset of ``path``, in file order, without reading any data.

    Examples
    --------
    >>> from archs4x.datasets import example_file
    >>> [e.path for e in tree(example_file())][:3]
    ['data', 'data/expression', 'meta']
    """
    f = open_source(path).h5()
    out: list[Entry] = []

    def visit(name: str, obj) -> None:
        if isinstance(obj, h5py.Dataset):
            out.append(Entry(name, "dataset", _dtype_name(obj), tuple(obj.shape),
                             obj.chunks, obj.compression))  # fmt: skip
        else:
            out.append(Entry(name, "group"))

    f.visititems(visit)
    return out


def ls(path: str | os.PathLike, *, file: TextIO | None = None) -> None:
    """Print the groups and datasets of an ARCHS4 file (like ``archs4py.ls``).

    Examples
    --------
    >>> from archs4x.datasets import example_file
    >>> ls(example_file())  # doctest: +ELLIPSIS
    data/
    │ expression                uint32   (4500, 400)  chunks=(2000, 1) gzip
    meta/
    │ genes/
    │ │ biotype                 str      (4500,)
    ...
    """
    out = file or sys.stdout
    for e in tree(path):
        indent = "│ " * e.depth
        leaf = e.path.rsplit("/", 1)[-1]
        if e.kind == "group":
            print(f"{indent}{leaf}/", file=out)
            continue
        shape = "(" + ", ".join(str(s) for s in e.shape) + ("," if len(e.shape) == 1 else "") + ")"
        extra = ""
        if e.chunks:
            extra = f"  chunks={e.chunks}" + (f" {e.compression}" if e.compression else "")
        print(f"{indent}{leaf:<{28 - len(indent)}}{e.dtype:<9}{shape}{extra}".rstrip(), file=out)
