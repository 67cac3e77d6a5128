"""Every exception and warning archs4x raises, in one place.

Each subclasses the builtin a caller would already catch (``except ValueError``,
``except OSError`` ...), so careful callers can tell archs4x's failures apart without
losing the usual ones.  I/O failures are ``OSError``; data that cannot be decoded or
does not fit is ``ValueError``.
"""

from __future__ import annotations

__all__ = [
    "ChecksumError",
    "ChunkDecodeError",
    "ChunkReadError",
    "DownloadError",
    "EmptyLibraryError",
    "FastqError",
    "FileChangedError",
    "IncompleteZarrError",
    "KallistoError",
    "KallistoNotFound",
    "MissingIdsWarning",
    "NotArchs4Error",
    "RegexTimeoutError",
    "StoreIntegrityError",
    "UnknownAccessionError",
]


# -- files --------------------------------------------------------------------------
class NotArchs4Error(ValueError):
    """The file exists but is not HDF5, is truncated, or lacks the ARCHS4 layout."""


class FileChangedError(OSError):
    """The file a Dataset was opened from was replaced or modified since it was opened.

    archs4x never mixes one file's labels with another file's numbers: open it again.
    """


class ChunkDecodeError(ValueError):
    """A stored chunk could not be decoded (corrupt, or of the wrong size).

    archs4x never substitutes zeros for a chunk that fails to decode.
    """


class ChunkReadError(OSError):
    """The bytes of a chunk could not be read (short read, I/O error, network failure)."""


# -- Zarr stores --------------------------------------------------------------------
class IncompleteZarrError(ValueError):
    """The Zarr store holds a conversion that did not finish (rerun ``to_zarr`` to resume)."""


class StoreIntegrityError(OSError):
    """A Zarr store's content does not match its recorded checksums (damaged or missing)."""


# -- data ---------------------------------------------------------------------------
class EmptyLibraryError(ValueError):
    """A sample has no reads (library size 0), so per-library scaling is undefined."""


class RegexTimeoutError(TimeoutError):
    """A search pattern ran longer than the ``regex_timeout`` option allows."""


class MissingIdsWarning(UserWarning):
    """Some requested ids (samples, series or gene symbols) are not in the Dataset."""


# -- downloads ----------------------------------------------------------------------
class DownloadError(OSError):
    """A download failed for good (HTTP error, retries exhausted, wrong size)."""


class ChecksumError(ValueError):
    """The downloaded bytes do not have the expected checksum (SHA1 or MD5)."""


# -- alignment ----------------------------------------------------------------------
class KallistoNotFound(FileNotFoundError):
    """No kallisto executable (install it, or point archs4x at one)."""


class KallistoError(RuntimeError):
    """kallisto exited with an error; the message carries its stderr."""


class FastqError(ValueError):
    """A FASTQ file is malformed, truncated, or its mates do not match."""


class UnknownAccessionError(ValueError):
    """An SRA/ENA accession is unknown to the archive."""
