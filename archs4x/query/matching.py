"""Matching search terms against metadata columns: exactly Python ``re``, vectorised, bounded.

:func:`match` compiles a term once and returns a function that matches an Arrow column
(regular expression or literal text, case-insensitive by default, whitespace-insensitive
on request) into a boolean NumPy mask.  The result is, for every pattern and every text,
what ``re.search(term, text, flags)`` says (archs4py's search):

* patterns :func:`archs4x.query.re2translate.translate` can rewrite with Python's
  meaning (Unicode ``\\d \\w \\s``, Python's case folding, ``$``, ...) run on RE2
  through ``pyarrow.compute``, vectorised;
* the others (look-around, back-references, ``\\b`` inside a pattern, ...) run on
  Python's own :mod:`re` in a child process bounded by the ``regex_timeout`` option
  (:mod:`archs4x.query.pyengine`).
"""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .pyengine import search_column
from .re2translate import Untranslatable, char_ranges, re2_class, translate

__all__ = ["match"]

_WS = re.compile(r"\s+")


def _re2_compiles(pattern: str) -> bool:
    try:
        pc.match_substring_regex(pa.array([""], pa.large_string()), pattern)
        return True
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return False


def _as_strings(col: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
        return col
    return pc.cast(col, pa.large_string())


def _mask(hit: pa.Array | pa.ChunkedArray) -> np.ndarray:
    return np.asarray(pc.fill_null(hit, False).to_numpy(zero_copy_only=False), dtype=bool)


def match(
    term: str, *, regex: bool = True, case: bool = False, ignore_whitespace: bool = False
) -> Callable[[pa.Array | pa.ChunkedArray], np.ndarray]:
    r"""A vectorised matcher: ``match(term)(column)`` -> boolean NumPy mask.

    Every text matches exactly when ``re.search(term, text, flags)`` finds a match, with
    ``flags = re.IGNORECASE`` unless ``case=True`` (``regex=False``: the term is
    :func:`re.escape`-d).  Patterns run on RE2 (``pyarrow.compute``, vectorised) after an
    exact translation of their Unicode classes, case folding and anchors; the few RE2
    cannot express (look-around, back-references, ``\b`` inside a pattern, ...) run
    on Python's :mod:`re` in a child process, for at most the ``regex_timeout`` option's
    seconds.

    Parameters
    ----------
    term : str
        A regular expression (``regex=True``) or a literal substring.
    regex : bool, default True
    case : bool, default False
        Match case-sensitively.
    ignore_whitespace : bool, default False
        Remove whitespace (Python's ``\s``, Unicode) from both the text and the term
        before matching, so ``"skeletal muscle"`` matches ``"skeletalmuscle"`` and the
        reverse.

    Raises
    ------
    ValueError
        ``term`` is not a valid regular expression (the message says why and suggests
        ``regex=False``).
    archs4x.errors.RegexTimeoutError
        (When the matcher runs) Python's engine ran longer than ``regex_timeout``.
    TypeError
        ``term`` is not a string.

    Examples
    --------
    >>> import pyarrow as pa
    >>> col = pa.array(["Skeletal muscle", "liver", "muscle (leg)", "5 μM", "day ٣"])
    >>> match("MUSCLE")(col)
    array([ True, False,  True, False, False])
    >>> match("muscle (", regex=False)(col)
    array([False, False,  True, False, False])
    >>> match("skeletalmuscle", ignore_whitespace=True)(col)
    array([ True, False, False, False, False])
    >>> match(r"\d\s\wM|day \d$")(col)      # Unicode digits and letters, as in re
    array([False, False, False,  True,  True])
    >>> match("muscle (")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: invalid regular expression 'muscle (': missing ), ... pass regex=False ...
    """
    if not isinstance(term, str):
        raise TypeError(f"search term must be a str, got {type(term).__name__}")
    if ignore_whitespace:
        term = _WS.sub("", term)
    flags = 0 if case else re.IGNORECASE
    if regex:
        try:
            re.compile(term, flags)
        except (re.error, ValueError, OverflowError) as exc:
            raise ValueError(
                f"invalid regular expression {term!r}: {exc}; "
                "pass regex=False to match the text literally"
            ) from None
        pattern = term
    else:
        pattern = re.escape(term)
    literal_fast = not regex and case  # a plain byte substring search is exact
    re2 = None
    if not literal_fast:
        try:
            re2 = translate(pattern, flags)
        except Untranslatable:
            re2 = None
        if re2 is not None and not _re2_compiles(re2):
            re2 = None
    spaces = re2_class(char_ranges(r"\s")) + "+" if ignore_whitespace else None

    def run(col: pa.Array | pa.ChunkedArray) -> np.ndarray:
        col = _as_strings(col)
        if spaces is not None:
            col = pc.replace_substring_regex(col, spaces, "")
        if literal_fast:
            return _mask(pc.match_substring(col, term))
        if re2 is not None:
            return _mask(pc.match_substring_regex(col, re2))
        return search_column(col, pattern, flags)

    return run
