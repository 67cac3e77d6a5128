"""Align your own FASTQ files with kallisto, as Dask tasks, into counts that line up with ARCHS4.

>>> from archs4x import align
>>> sorted(n for n in align.__all__ if n.islower())
['fastq', 'fastq_samples', 'folder', 'load', 'merge', 'quantify', 'reference', 'run_quantification']

- :func:`reference`: Ensembl cDNA + ncRNA FASTA (cached), transcript -> gene table from
  the headers, kallisto index built once (a delayed task, cached by content hash).
- :func:`fastq` / :func:`folder`: one ``kallisto quant`` task per sample, in parallel on
  the current Dask scheduler; gene counts = rounded sums of transcript estimates (uint32).
- :func:`load`: raw reads from SRA (fasterq-dump) or ENA (HTTP), resumable.
- :func:`merge`: put the result next to an ARCHS4 dataset along ``sample``.
"""

from __future__ import annotations

from ..errors import (
    ChecksumError,
    DownloadError,
    FastqError,
    KallistoError,
    KallistoNotFound,
    UnknownAccessionError,
)
from .options import QuantOptions
from .pipeline import fastq, fastq_samples, folder, merge, quantify, run_quantification
from .reference import Reference, reference
from .sra import load

__all__ = [
    "ChecksumError",
    "DownloadError",
    "FastqError",
    "KallistoError",
    "KallistoNotFound",
    "QuantOptions",
    "Reference",
    "UnknownAccessionError",
    "fastq",
    "fastq_samples",
    "folder",
    "load",
    "merge",
    "quantify",
    "reference",
    "run_quantification",
]
