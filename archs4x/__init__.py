"""archs4x: the ARCHS4 RNA-seq compendium as lazy, labelled, out-of-core arrays."""

from __future__ import annotations

from . import datasets
from .dims import GENE, SAMPLE, TRANSCRIPT
from .errors import ChunkDecodeError, NotArchs4Error
from .io import open_dataset
from .listing import ls

__version__ = "0.1.0"

__all__ = [
    "GENE",
    "SAMPLE",
    "TRANSCRIPT",
    "ChunkDecodeError",
    "NotArchs4Error",
    "__version__",
    "datasets",
    "ls",
    "open_dataset",
]

from . import pushdown as _pushdown

_pushdown.enable()
