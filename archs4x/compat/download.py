"""archs4py ``download``: fetch an ARCHS4 counts file, verified, and return its path.

``counts(species, path="", type="GENE_COUNTS", version="latest")`` as in archs4py, on
top of :func:`archs4x.download.counts`: resumable, size and SHA1 checked when published,
the file checked to be an ARCHS4 file of the right level, renamed into place only when
complete.  ``version="latest"`` is the newest fixed release (archs4py downloads the
site's moving ``v2.latest.h5`` file, which cannot be verified); ``TRANSCRIPT_COUNTS``
gets transcript files (archs4py's human transcript URLs point at the gene file).
"""

from __future__ import annotations

__all__ = ["counts"]

#: archs4py's ``type`` names and the archs4x levels they mean.
TYPES = {"GENE_COUNTS": "gene", "TRANSCRIPT_COUNTS": "transcript"}


def counts(species: str, path: str = "", type: str = "GENE_COUNTS", version: str = "latest") -> str:
    """Download the counts file of ``species`` into the folder ``path``; return its path.

    Parameters
    ----------
    species : {"human", "mouse"}
    path : str, default ""
        Folder to save into ("" is the current folder), created if needed.
    type : {"GENE_COUNTS", "TRANSCRIPT_COUNTS"}
    version : str, default "latest"
        As listed by :func:`archs4x.compat.versions`.

    Returns
    -------
    str
        The path of the verified file (archs4py prints it; this returns it too).

    Raises
    ------
    ValueError
        Unknown species, type or version.
    archs4x.errors.DownloadError, archs4x.errors.ChecksumError
        The download failed, or the file is not the release's (nothing is left behind
        under the final name).

    Examples
    --------
    >>> counts("human", type="EXON_COUNTS")
    Traceback (most recent call last):
    ...
    ValueError: unknown type 'EXON_COUNTS': choose GENE_COUNTS or TRANSCRIPT_COUNTS
    """
    from ..download import counts as _counts

    level = TYPES.get(str(type).upper())
    if level is None:
        raise ValueError(f"unknown type {type!r}: choose GENE_COUNTS or TRANSCRIPT_COUNTS")
    out = _counts(species.lower(), path or ".", level=level, version=version)
    print("file downloaded to", out)
    return str(out)
