"""Search semantics: ``archs4x.query.match`` returns exactly what Python ``re`` returns.

The reference is ``re.search(pattern, text, flags)`` itself, on random Unicode text
(non-ASCII digits, letters with unusual case folding, Unicode spaces, newlines) and
patterns drawn from a grammar with ``\\d \\w \\s \\b``, anchors, POSIX-like classes,
groups, quantifiers and case-insensitivity.
"""

from __future__ import annotations

import re
import time
import warnings

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import archs4x
from archs4x.errors import RegexTimeoutError
from archs4x.query import match
from archs4x.query import re2translate as tr
from archs4x.query.pyengine import search_column

from ._hypothesis import examples

# Characters where RE2's and Python's ideas differ: Unicode digits, letters with special
# case folding (Kelvin sign, long s, dotless i, dotted I, micro sign, final sigma, ß, the
# ǅ titlecase), a combining accent, Unicode spaces (NBSP, em space, \x1c, \x85, \u2028),
# newlines, and ASCII.
ALPHABET = list(
    "abkKsSiIxyzM019_-:[]. \t\n\r"
    "\u0663\uff15\u07c0\U0001d7d8"  # ٣ ５ ߀ 𝟘 (decimal digits)
    "\u00e9\u03bc\u00b5\u017f\u212a\u0131\u0130\u00df\u01c5\u03a3\u03c2\u03c3\ufb05\ufb06"
    "\u0301"  # combining acute accent (a mark: not \w in Python)
    "\u00a0\u2003\x1c\x85\u2028\x0b"
)
TEXTS = st.lists(st.text(alphabet=ALPHABET, max_size=10), min_size=1, max_size=12)

LITERALS = ["a", "k", "s", "i", "I", "x", "M", "é", "μ", "ß", "σ", "Σ", "ſ", "K", "ı", "İ",
            "ǅ", "9", "٣", " ", "\u00a0", "_", "-", r"\.", r"\n", r"\x41", r"\u03bc",
            r"\N{KELVIN SIGN}", r"\0", r"\101"]  # fmt: skip
CLASSES = [".", r"\d", r"\D", r"\w", r"\W", r"\s", r"\S", "[a-z]", "[^a-z]", "[[:alpha:]]",
           "[[:digit:]x]", "[:space:]", r"[\d\s]", r"[^\w]", "[]a]", "[^]x]", "[a-]",
           r"[\]k]", "[ſ-ſ]", "[Ä-Ö]", r"[^\S\n]", "[ß]", "[İ]"]  # fmt: skip
ANCHORS = ["^", "$", r"\A", r"\Z", r"\b", r"\B"]
QUANTIFIERS = ["*", "+", "?", "{2}", "{1,3}", "{,2}", "{2,}", "*?", "+?", "??", "{0}"]
PREFIXES = ["", "", "", "(?m)", "(?s)", "(?a)", "(?i)", "(?x)"]


def _atom():
    return st.one_of(st.sampled_from(LITERALS), st.sampled_from(CLASSES))


def _pattern():
    def extend(inner):
        seq = st.lists(inner, min_size=1, max_size=3).map("".join)
        return st.one_of(
            st.tuples(st.sampled_from(["(", "(?:", "(?i:", "(?-i:", "(?P<g>"]), seq).map(
                lambda t: f"{t[0]}{t[1]})"
            ),
            st.tuples(seq, seq).map(lambda t: f"{t[0]}|{t[1]}"),
            st.tuples(seq, st.sampled_from(QUANTIFIERS)).map(lambda t: f"(?:{t[0]}){t[1]}"),
        )

    piece = st.one_of(
        _atom(),
        st.tuples(_atom(), st.sampled_from(QUANTIFIERS)).map("".join),
        st.sampled_from(ANCHORS),
    )
    body = st.recursive(piece, extend, max_leaves=6)
    return st.tuples(st.sampled_from(PREFIXES), st.lists(body, min_size=1, max_size=4)).map(
        lambda t: t[0] + "".join(t[1])
    )


def _reference(pattern: str, texts: list[str], case: bool) -> list[bool] | None:
    flags = 0 if case else re.IGNORECASE
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rx = re.compile(pattern, flags)
    except (re.error, ValueError):
        return None
    return [rx.search(t) is not None for t in texts]


def _check(pattern: str, texts: list[str], case: bool) -> None:
    col = pa.array(texts, pa.large_string())
    want = _reference(pattern, texts, case)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        if want is None:
            with pytest.raises(ValueError, match="regex=False"):
                match(pattern, case=case)
            return
        got = match(pattern, case=case)(col).tolist()
    assert got == want, (pattern, texts)


@settings(max_examples=examples(200), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pattern=_pattern(), texts=TEXTS, case=st.booleans())
def test_match_equals_python_re_on_unicode_text(pattern, texts, case):
    _check(pattern, texts, case)


@settings(max_examples=examples(100), deadline=None)
@given(term=st.text(alphabet=ALPHABET, min_size=1, max_size=4), texts=TEXTS, case=st.booleans())
def test_literal_match_equals_python_re(term, texts, case):
    col = pa.array(texts, pa.large_string())
    flags = 0 if case else re.IGNORECASE
    want = [re.search(re.escape(term), t, flags) is not None for t in texts]
    assert match(term, regex=False, case=case)(col).tolist() == want


@settings(max_examples=examples(50), deadline=None)
@given(term=st.text(alphabet=ALPHABET, min_size=1, max_size=6), texts=TEXTS)
def test_ignore_whitespace_removes_python_whitespace(term, texts):
    col = pa.array(texts, pa.large_string())
    ws = re.compile(r"\s+")
    needle = re.escape(ws.sub("", term))
    want = [re.search(needle, ws.sub("", t), re.IGNORECASE) is not None for t in texts]
    assert match(term, regex=False, ignore_whitespace=True)(col).tolist() == want


# -- the issue's examples, on the vectorised engine ------------------------------------
@pytest.mark.parametrize(
    ("pattern", "text"),
    [(r"\d\s\wM", "5 μM"), (r"day \d", "day ٣"), (r"caf\w\b", "café"),
     ("treated$", "treated\n"), ("[[:alpha:]]", "a]"), (r"\bLPS\b", "(LPS)"),
     ("(?m)^b$", "a\nb\nc"), ("ı", "I"), ("s", "ſ"), (r"[^\W\d_]+", "é")],
)  # fmt: skip
def test_issue_examples_match_as_re_and_run_on_re2(pattern, text):
    assert re.search(pattern, text, re.IGNORECASE)
    tr.translate(pattern, re.IGNORECASE)  # vectorised: no Python engine needed
    col = pa.array([text, "nothing"], pa.large_string())
    want = [re.search(pattern, t, re.IGNORECASE) is not None for t in (text, "nothing")]
    assert match(pattern)(col).tolist() == want


def test_posix_like_class_means_what_python_says():
    col = pa.array(["alpha", "a]", ":]"], pa.large_string())
    assert match("[[:alpha:]]", case=True)(col).tolist() == [False, True, True]


@pytest.mark.parametrize(
    "pattern", [r"(?<=a)b", r"(a)\1", r"(?=x)x", r"a(?!b)", r"x\by", r"(?>a+)b", r"a++b",
                r"(?(1)a|b)", r"a{1001}", "(?P<n>a)(?P=n)"],
)  # fmt: skip
def test_untranslatable_patterns_run_on_python_re(pattern):
    with pytest.raises(tr.Untranslatable):
        tr.translate(pattern)
    texts = ["ab", "aa", "x y", "xy", "aab", "b", "a" * 1001, "", "ac"]
    _check(pattern, texts, case=False)


# -- case folding: the cased-universe shortcut equals a scan of every code point ----------
@pytest.mark.parametrize("ch", list("abcdefghijklmnopqrstuvwxyzKSIΣßµǅİı0 _"))
def test_literal_case_folding_equals_a_full_scan(ch):
    fast = tr.char_ranges(re.escape(ch), re.IGNORECASE, literal=ch)
    full = tr.char_ranges(f"(?:{re.escape(ch)})", re.IGNORECASE)  # no shortcut
    assert fast == full


@settings(max_examples=examples(15), deadline=None)
@given(st.sampled_from(sorted(set(tr._cased_code_points()))))
def test_cased_literal_folding_equals_a_full_scan(ch):
    fast = tr.char_ranges(re.escape(ch), re.IGNORECASE, literal=ch)
    assert fast == tr.char_ranges(f"(?:{re.escape(ch)})", re.IGNORECASE)


def test_classes_equal_python_on_every_code_point():
    every = tr._every_code_point()
    for atom in (r"\d", r"\w", r"\s"):
        ranges = tr.char_ranges(atom)
        got = np.zeros(0x110000, bool)
        for a, b in ranges:
            got[a : b + 1] = True
        want = np.zeros(0x110000, bool)
        want[[ord(c) for c in re.findall(atom, every)]] = True
        assert (got == want).all(), atom


# -- the Python engine is bounded ---------------------------------------------------------
def test_catastrophic_pattern_times_out_with_a_clear_error():
    col = pa.array(["x" * 30, "xxy", "xxyz"], pa.large_string())
    start = time.monotonic()
    with archs4x.set_options(regex_timeout=1.0):
        matcher = match(r"(x+x+)+y(?=z)")
        with pytest.raises(RegexTimeoutError, match=r"ran longer than 1 s.*regex=False"):
            matcher(col)
    assert time.monotonic() - start < 10


def test_python_engine_batches_and_nulls(monkeypatch):
    from archs4x.query import pyengine

    monkeypatch.setattr(pyengine, "BATCH_ROWS", 7)
    monkeypatch.setattr(pyengine, "BATCH_BYTES", 40)
    texts = [None if i % 5 == 0 else f"a{'b' * (i % 4)}é{i}" for i in range(60)]
    chunked = pa.chunked_array([texts[:25], texts[25:25], texts[25:]], pa.string())
    want = [t is not None and re.search(r"(?<=a)b+é\d", t) is not None for t in texts]
    got = search_column(chunked, r"(?<=a)b+é\d", 0)
    assert got.tolist() == want and sum(want) > 10


def test_invalid_pattern_names_regex_false():
    with pytest.raises(ValueError, match=r"invalid regular expression 'a\(': .*regex=False"):
        match("a(")
    with pytest.raises(ValueError, match="regex=False"):
        match("(?L)a")  # LOCALE with a str pattern: re raises ValueError
