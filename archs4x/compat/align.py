"""archs4py ``align``: quantify FASTQ files with kallisto, pandas in and out.

Same names, arguments and defaults as ``archs4py.align``, on top of :mod:`archs4x.align`:

* ``fastq(species, fastq, release="latest", t=8, overwrite=False,
  return_type="transcript", identifier="symbol")`` returns a pandas Series for the sample:
  transcript estimated counts (kallisto's ``est_counts``, as archs4py's ``reads``), gene
  counts (Series of uint64, by symbol or Ensembl gene id) or transcript TPM;
* ``folder(species, folder, return_type="transcript", release="latest", overwrite=False,
  t=8, identifier="symbol")`` returns a DataFrame, features x samples: rounded counts;
* ``load(sras, outfolder)`` downloads runs' reads (fasterq-dump, else ENA) and returns
  ``{run: [paths]}`` (archs4py returns nothing).

``release`` is the ARCHS4 version whose Ensembl release is used (``"latest"`` and
``"2.2"``: Ensembl 107, as archs4py), or an Ensembl release number.  Differences, all
deliberate (see the README): gene counts are the *rounded* sums of the transcript
estimates (archs4py truncates), transcript ids are versionless in every result, a
single-end sample is named after its file (archs4py uses the file's path), genes are
mapped from the Ensembl FASTA headers (no BioMart), samples run in parallel in their own
folders, and a kallisto failure raises with its stderr.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from ..write.interop import to_pandas

__all__ = ["ENSEMBL_RELEASES", "fastq", "folder", "load"]

#: archs4py's ALIGNMENT table: ARCHS4 version -> Ensembl release.
ENSEMBL_RELEASES = {"latest": 107, "2.2": 107}


def _ensembl_release(release: str | int) -> int:
    key = str(release).lower()
    if key in ENSEMBL_RELEASES:
        return ENSEMBL_RELEASES[key]
    if key.isdigit():
        return int(key)
    raise ValueError(
        f"unknown release {release!r}: use 'latest', '2.2' (Ensembl 107) or an Ensembl release"
    )


def _options(species, release, t, overwrite, return_type, identifier) -> dict:
    from ..align import reference

    if return_type not in ("transcript", "gene", "tpm"):
        raise ValueError(f"return_type must be 'transcript', 'gene' or 'tpm', not {return_type!r}")
    ref = reference(species, _ensembl_release(release))
    if overwrite:  # archs4py rebuilds the index: drop ours, the next task builds it again
        ref.index.unlink(missing_ok=True)
    gene_id = "symbol" if identifier == "symbol" else "ensembl"
    return {"ref": ref, "return_type": return_type, "threads": int(t),
            "identifier": gene_id if return_type == "gene" else "ensembl"}  # fmt: skip


def _frame(ds: xr.Dataset, return_type: str) -> pd.DataFrame:
    """Features x samples, as archs4py: gene counts as uint64, rows by the feature index."""
    var = "tpm" if return_type == "tpm" else "counts"
    dtype = np.uint64 if return_type == "gene" else None
    frame = to_pandas(ds[var], dtype=dtype).rename_axis(index=None, columns=None)
    frame.columns = pd.Index([str(s) for s in frame.columns])
    return frame


def fastq(
    species: str,
    fastq: str | os.PathLike | Sequence[str | os.PathLike],
    release: str | int = "latest",
    t: int = 8,
    overwrite: bool = False,
    return_type: str = "transcript",
    identifier: str = "symbol",
) -> pd.Series:
    """Quantify one sample (one file: single-end; two: paired-end) like archs4py.

    Returns
    -------
    pandas.Series
        Indexed by versionless transcript id (``return_type="transcript"``: kallisto's
        estimated counts, float; ``"tpm"``), or by gene symbol / Ensembl gene id
        (``"gene"``: rounded sums, uint64).

    Examples
    --------
    >>> fastq("human", ["a.fq", "b.fq", "c.fq"])
    Traceback (most recent call last):
    ...
    ValueError: fastq() takes one sample: one (single-end) or two (paired-end) files, got 3; ...
    """
    from ..align import fastq as _fastq
    from ..align import fastq_samples

    samples = fastq_samples(fastq)  # the files first: no download for a typo
    opts = _options(species, release, t, overwrite, return_type, identifier)
    ds = _fastq(opts.pop("ref"), samples[0].files, name=samples[0].name, **opts)
    if return_type == "transcript":  # archs4py's "reads": kallisto's exact estimates
        est = ds["est_counts"]
        series = pd.Series(np.asarray(est.values[:, 0]), index=pd.Index(
            np.asarray(ds.indexes["transcript"], dtype=object)), name="reads")  # fmt: skip
        return series
    frame = _frame(ds, return_type)
    return frame.iloc[:, 0].rename("tpm" if return_type == "tpm" else "counts")


def folder(
    species: str,
    folder: str | os.PathLike,
    return_type: str = "transcript",
    release: str | int = "latest",
    overwrite: bool = False,
    t: int = 8,
    identifier: str = "symbol",
) -> pd.DataFrame:
    """Quantify every sample of a folder (mates paired by name), as archs4py.

    Returns
    -------
    pandas.DataFrame
        Features x samples: rounded transcript counts (``"transcript"``), gene counts by
        symbol or Ensembl id (``"gene"``, uint64), or transcript TPM (``"tpm"``).

    Examples
    --------
    >>> folder("human", "/no/such/folder")
    Traceback (most recent call last):
    ...
    FileNotFoundError: no such folder: /no/such/folder
    """
    from ..align import quantify, run_quantification
    from ..align.fastq import find_samples

    samples = find_samples(folder)
    opts = _options(species, release, t, overwrite, return_type, identifier)
    ds = run_quantification(quantify(opts.pop("ref"), samples, **opts), progress=False)
    return _frame(ds, return_type)


def load(sras: str | Sequence[str], outfolder: str | os.PathLike) -> dict[str, list[Path]]:
    """Download the reads of SRA runs into ``outfolder`` (fasterq-dump, else ENA).

    Returns
    -------
    dict
        ``{run: [FASTQ paths]}`` (archs4py returns nothing), ready for :func:`folder`.

    Examples
    --------
    >>> load(["SRR1; rm -rf /"], "/tmp/x")
    Traceback (most recent call last):
    ...
    ValueError: 'SRR1; rm -rf /' is not an SRA/ENA accession (e.g. SRR14457464, ...)
    """
    from ..align import load as _load

    got = _load([sras] if isinstance(sras, str) else list(sras), outfolder)
    print("download complete")
    return got
