"""Exception types raised by archs4x.

They subclass the builtin exception a caller would expect, so ``except ValueError``
keeps working, while letting careful callers tell archs4x's failures apart.
"""

from __future__ import annotations

__all__ = ["ChunkDecodeError", "EmptyLibraryError", "IncompleteZarrError", "NotArchs4Error"]


class NotArchs4Error(ValueError):
    """The file exists and may be HDF5, but it does not have the ARCHS4 layout."""


class ChunkDecodeError(ValueError):
    """A stored chunk could not be decoded (corrupt, truncated or of the wrong size).

    archs4x never substitutes zeros for a chunk that fails to decode.
    """


class IncompleteZarrError(ValueError):
    """The Zarr store holds a conversion that did not finish (rerun ``to_zarr`` to resume)."""


class EmptyLibraryError(ValueError):
    """A sample has no reads (library size 0), so per-library scaling is undefined."""
