"""Matching search terms against metadata columns: Python ``re`` semantics, vectorised.

:func:`match` compiles a term once and returns a function that matches an Arrow column
(regular expression or literal text, case-insensitive by default, whitespace-insensitive
on request) into a boolean NumPy mask.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["match"]

_WS = re.compile(r"\s+")


def match(
    term: str, *, regex: bool = True, case: bool = False, ignore_whitespace: bool = False
) -> Callable[[pa.Array | pa.ChunkedArray], np.ndarray]:
    """A vectorised matcher: ``match(term)(column)`` -> boolean NumPy mask.

    Regular expressions use Python's :mod:`re` syntax and are run with RE2 (through
    ``pyarrow.compute``); patterns RE2 cannot run (look-around, back-references) fall
    back to Python's :mod:`re`, with the same results.

    Parameters
    ----------
    term : str
        A regular expression (``regex=True``) or a literal substring.
    regex : bool, default True
    case : bool, default False
        Match case-sensitively.
    ignore_whitespace : bool, default False
        Remove whitespace from both the text and the term before matching, so
        ``"skeletal muscle"`` matches ``"skeletalmuscle"`` and the reverse.

    Raises
    ------
    ValueError
        ``term`` is not a valid regular expression (the message says why and suggests
        ``regex=False``).
    TypeError
        ``term`` is not a string.

    Examples
    --------
    >>> import pyarrow as pa
    >>> col = pa.array(["Skeletal muscle", "liver", "muscle (leg)"])
    >>> match("MUSCLE")(col)
    array([ True, False,  True])
    >>> match("muscle (", regex=False)(col)
    array([False, False,  True])
    >>> match("skeletalmuscle", ignore_whitespace=True)(col)
    array([ True, False, False])
    >>> match("muscle (")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: invalid regular expression 'muscle (': missing ), ... pass regex=False ...
    """
    if not isinstance(term, str):
        raise TypeError(f"search term must be a str, got {type(term).__name__}")
    if ignore_whitespace:
        term = _WS.sub("", term)
    if regex:
        try:
            compiled = re.compile(term, 0 if case else re.IGNORECASE)
        except re.error as exc:
            raise ValueError(
                f"invalid regular expression {term!r}: {exc}; "
                "pass regex=False to match the text literally"
            ) from None
        try:
            pc.match_substring_regex(pa.array([""], pa.large_string()), term, ignore_case=not case)
            use_re2 = True
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            use_re2 = False
    else:
        compiled, use_re2 = None, True

    def run(col: pa.Array | pa.ChunkedArray) -> np.ndarray:
        if not pa.types.is_string(col.type) and not pa.types.is_large_string(col.type):
            col = pc.cast(col, pa.large_string())
        if ignore_whitespace:
            col = pc.replace_substring_regex(col, r"\s+", "")
        if not regex:
            hit = pc.match_substring(col, term, ignore_case=not case)
        elif use_re2:
            hit = pc.match_substring_regex(col, term, ignore_case=not case)
        else:
            return np.fromiter(
                (s is not None and compiled.search(s) is not None for s in col.to_pylist()),
                dtype=bool,
                count=len(col),
            )
        return np.asarray(pc.fill_null(hit, False).to_numpy(zero_copy_only=False), dtype=bool)

    return run
