"""Decoding of the text stored in ARCHS4 files.

Strings are variable-length UTF-8 (h5py 3 returns ``bytes``) or, in some files,
fixed-length byte strings.  Some GEO text was double-encoded upstream (UTF-8 bytes
read as Latin-1 and encoded again), giving ``"5 Î¼M"`` for ``"5 μM"``.
:func:`repair_mojibake` undoes exactly that and leaves every other string alone.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import numpy as np

__all__ = ["MOJIBAKE_PATTERN", "decode_strings", "repair_mojibake"]

#: A double-encoded multi-byte UTF-8 sequence: a lead byte (0xC2-0xF4) as Latin-1,
#: followed by a continuation byte (0x80-0xBF) as Latin-1 (RE2 and Python syntax).
MOJIBAKE_PATTERN = "[\u00c2-\u00f4][\u0080-\u00bf]"
_MOJIBAKE = re.compile(MOJIBAKE_PATTERN)


def repair_mojibake(s: str) -> str:
    """Undo one level of UTF-8-as-Latin-1 double encoding; never alter correct text.

    The string is re-encoded only when it contains a Latin-1 rendering of a UTF-8
    lead byte followed by a continuation byte, every character fits in Latin-1, and
    the bytes decode as valid UTF-8.  Otherwise it is returned unchanged.

    Examples
    --------
    >>> repair_mojibake("5 Î¼M")
    '5 μM'
    >>> repair_mojibake("manufactureâ\\x80\\x99s protocol")
    'manufacture’s protocol'
    >>> repair_mojibake("café 5 μM")   # correct text stays as it is
    'café 5 μM'
    """
    if not _MOJIBAKE.search(s):
        return s
    try:
        return s.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return s


def decode_strings(values: Iterable | np.ndarray, *, repair: bool = False) -> np.ndarray:
    """Decode raw HDF5 string values to a NumPy object array of ``str``.

    Parameters
    ----------
    values : array-like of bytes or str
        What h5py returned for a string dataset.
    repair : bool, default False
        Apply :func:`repair_mojibake` to each string.

    Examples
    --------
    >>> decode_strings(np.array([b"GSM1", b"5 \\xc3\\x8e\\xc2\\xbcM"], dtype=object), repair=True)
    array(['GSM1', '5 μM'], dtype=object)
    """
    arr = np.asarray(values)
    if arr.dtype.kind == "S":  # fixed-length: numpy already drops the NUL padding
        flat = [bytes(v).decode("utf-8", errors="replace") for v in arr.ravel()]
    else:
        try:  # the common case, vlen UTF-8 bytes: one tight comprehension
            flat = [v.decode("utf-8", errors="replace") for v in arr.ravel()]
        except AttributeError:  # already str, or mixed
            flat = [_to_str(v) for v in arr.ravel()]
    if repair:
        flat = [repair_mojibake(v) for v in flat]
    out = np.empty(len(flat), dtype=object)
    out[:] = flat
    return out.reshape(arr.shape)


def _to_str(v) -> str:
    if isinstance(v, bytes | np.bytes_):
        return bytes(v).rstrip(b"\x00").decode("utf-8", errors="replace")
    return v if isinstance(v, str) else str(v)
