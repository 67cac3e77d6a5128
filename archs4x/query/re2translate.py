"""Python ``re`` patterns as RE2 patterns that match exactly the same strings, when provable.

RE2 (what ``pyarrow.compute`` runs) and Python's :mod:`re` disagree on many details: RE2's
``\\d``, ``\\w``, ``\\s`` and ``\\b`` are ASCII, its ``$`` is the end of the text (Python's
also matches before a final newline), its case folding differs from Python's (Python also
folds ``ı``/``i`` and ``ſ``/``s``), and ``[[:alpha:]]`` is a POSIX class in RE2 but a
plain set followed by ``]`` in Python.  :func:`translate` therefore never hands a Python
pattern to RE2 as is.  It parses the pattern (Python's grammar, flags included) into the
small subset both engines agree on, and replaces every construct whose meaning differs:

* **Every single-character matcher** (a literal, ``.``, ``\\d``/``\\w``/``\\s`` and their
  negations, ``[...]``), under the flags in force, becomes an explicit RE2 class of
  code point ranges computed *by Python's own engine*: the characters it matches are
  found by running the matcher with :mod:`re` over every code point (or, for a literal
  under ``IGNORECASE``, over every cased code point and the literal).  Case-insensitivity
  and Unicode classes are thus exactly Python's, whatever Unicode version RE2 was built
  with.
* ``^``, ``\\A`` and ``\\Z`` map to RE2's ``\\A``/``\\z`` (``(?m:^)``/``(?m:$)`` under
  ``MULTILINE``); a non-multiline ``$`` at the end of the pattern becomes ``\\n?\\z``
  (the same strings are found; anywhere else it needs look-ahead).
* ``\\b``/``\\B`` only at the start or end of a top-level alternative, next to a matcher
  whose characters are all word characters (or all non-word characters): the neighbour
  is then consumed instead of looked at, which finds the same strings.
* Grouping, alternation and quantifiers (greedy or lazy: only *whether* a string matches
  is asked) are the same in both engines.

Anything else (look-around, back-references, conditionals, atomic groups, possessive
quantifiers, ``\\b`` elsewhere, repeats above RE2's 1000) raises :class:`Untranslatable`:
the caller runs Python's engine instead.
"""

from __future__ import annotations

import functools
import re
import unicodedata
import warnings
from dataclasses import dataclass

import numpy as np

__all__ = ["Untranslatable", "char_ranges", "re2_class", "translate"]

MAX_CODE_POINT = 0x10FFFF
_SURROGATES = (0xD800, 0xDFFF)
_ATOM_FLAGS = re.IGNORECASE | re.ASCII | re.DOTALL | re.UNICODE
_FLAG_LETTERS = {"a": re.ASCII, "i": re.IGNORECASE, "L": re.LOCALE, "m": re.MULTILINE,
                 "s": re.DOTALL, "u": re.UNICODE, "x": re.VERBOSE}  # fmt: skip
_WHITESPACE = frozenset(" \t\n\r\v\f")  # what VERBOSE skips (Python's sre_parse)
_ESCAPES = {"a": "\a", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "\\": "\\"}
_OCTAL = frozenset("01234567")
_DIGITS = frozenset("0123456789")
_HEX = frozenset("0123456789abcdefABCDEF")
RE2_MAX_REPEAT = 1000

Ranges = tuple[tuple[int, int], ...]


class Untranslatable(Exception):
    """The pattern uses a construct RE2 cannot run with Python's meaning."""


# -- single-character matchers, evaluated by Python's engine -----------------------------
@functools.cache
def _every_code_point() -> str:
    """Every code point but the surrogates (which valid UTF-8 text never holds), in order."""
    lo, hi = _SURROGATES
    cps = np.concatenate([np.arange(lo), np.arange(hi + 1, MAX_CODE_POINT + 1)])
    return cps.astype("<u4").tobytes().decode("utf-32-le")


@functools.cache
def _cased_code_points() -> str:
    """Every code point with a case mapping: the only ones that can match another
    character case-insensitively (an uncased character lower-cases to itself)."""
    every, step, out = _every_code_point(), 256, []
    for i in range(0, len(every), step):
        block = every[i : i + step]
        if block.lower() == block and block.upper() == block and block.casefold() == block:
            continue  # every mapping is the identity on this block
        out += [c for c in block if c.lower() != c or c.upper() != c or c.casefold() != c
                or c.title() != c]  # fmt: skip
    return "".join(out)


def _ranges_of(code_points: list[int]) -> Ranges:
    out: list[list[int]] = []
    for cp in sorted(set(code_points)):
        if out and cp == out[-1][1] + 1:
            out[-1][1] = cp
        else:
            out.append([cp, cp])
    return tuple((a, b) for a, b in out)


def _compile_quietly(pattern: str, flags: int) -> re.Pattern:
    with warnings.catch_warnings():  # "possible nested set": Python warned the caller already
        warnings.simplefilter("ignore", FutureWarning)
        return re.compile(pattern, flags)


@functools.lru_cache(maxsize=4096)
def char_ranges(atom: str, flags: int = 0, *, literal: str | None = None) -> Ranges:
    """The code points Python's :mod:`re` matches with the one-character pattern ``atom``.

    Parameters
    ----------
    atom : str
        A pattern that always matches exactly one character: a (escaped) literal, ``.``,
        ``\\d``, ``\\W``, ``[^a-z]``, ...
    flags : int
        ``re`` flags (only IGNORECASE, ASCII, DOTALL and UNICODE matter here).
    literal : str, optional
        The character ``atom`` denotes when it is a literal: under IGNORECASE only the
        cased code points (and the literal) can match it, so only those are tried.

    Returns
    -------
    tuple of (first, last)
        Sorted, disjoint, inclusive code point ranges (surrogates excluded).

    Examples
    --------
    >>> char_ranges("k", re.IGNORECASE, literal="k")   # k, K and the Kelvin sign
    ((75, 75), (107, 107), (8490, 8490))
    >>> len(char_ranges(r"\\d")) > 50                   # Unicode decimal digits
    True
    """
    flags &= _ATOM_FLAGS
    if literal is not None and not flags & re.IGNORECASE:
        return ((ord(literal), ord(literal)),)
    rx = _compile_quietly(f"(?:{atom})", flags)
    if literal is not None:
        universe = _cased_code_points() + literal
        return _ranges_of([ord(c) for c in universe if rx.fullmatch(c)])
    runs = _compile_quietly(f"(?:{atom})+", flags).finditer(_every_code_point())
    out: list[tuple[int, int]] = []
    lo, hi = _SURROGATES
    for m in runs:
        a, b = ord(m.group()[0]), ord(m.group()[-1])
        if a < lo and b > hi:  # a run across the surrogate gap of the string
            out += [(a, lo - 1), (hi + 1, b)]
        else:
            out.append((a, b))
    return tuple(out)


def _complement(ranges: Ranges) -> Ranges:
    out, start = [], 0
    for a, b in ranges:
        if a > start:
            out.append((start, a - 1))
        start = b + 1
    if start <= MAX_CODE_POINT:
        out.append((start, MAX_CODE_POINT))
    lo, hi = _SURROGATES  # surrogates never occur in the text: leave them out
    clipped = []
    for a, b in out:
        if b < lo or a > hi:
            clipped.append((a, b))
        else:
            if a < lo:
                clipped.append((a, lo - 1))
            if b > hi:
                clipped.append((hi + 1, b))
    return tuple(clipped)


def _cp(c: int) -> str:
    ch = chr(c)
    return ch if ch.isascii() and ch.isalnum() else f"\\x{{{c:x}}}"


def re2_class(ranges: Ranges) -> str:
    """An RE2 pattern matching exactly one code point from ``ranges``.

    Examples
    --------
    >>> re2_class(((97, 97),)), re2_class(((48, 57), (97, 102)))
    ('a', '[0-9a-f]')
    >>> re2_class(((0, 9), (11, 0x10FFFF)))
    '[^\\\\x{a}]'
    """
    if not ranges:
        return r"[^\x{0}-\x{10ffff}]"  # matches nothing
    comp = _complement(ranges)
    if not comp:
        return r"[\x{0}-\x{10ffff}]"
    negate = len(comp) < len(ranges)
    body = "".join(
        _cp(a) if a == b else f"{_cp(a)}-{_cp(b)}" for a, b in (comp if negate else ranges)
    )
    if not negate and len(ranges) == 1 and ranges[0][0] == ranges[0][1]:
        return body
    return f"[^{body}]" if negate else f"[{body}]"


# -- the syntax tree ------------------------------------------------------------------
@dataclass(frozen=True)
class _Set:
    ranges: Ranges


@dataclass(frozen=True)
class _Seq:
    items: tuple


@dataclass(frozen=True)
class _Alt:
    branches: tuple


@dataclass(frozen=True)
class _Repeat:
    item: object
    min: int
    max: int | None  # None: unbounded


@dataclass(frozen=True)
class _Anchor:
    kind: str  # "bos", "eos" (\Z), "bol", "eol" (MULTILINE), "dollar", "wordb", "nonwordb"
    word: Ranges = ()  # the word characters, for \b and \B


# -- the parser (Python's grammar, as re/_parser.py reads it) ------------------------------
class _Parser:
    def __init__(self, pattern: str, flags: int) -> None:
        self.p = pattern
        self.i = 0
        self.flags = flags  # global flags (inline global flags are added when met)

    def peek(self, k: int = 0) -> str | None:
        j = self.i + k
        return self.p[j] if j < len(self.p) else None

    def token(self) -> str | None:
        """The next token: one character, or a backslash and the character after it."""
        c = self.peek()
        if c is None:
            return None
        if c == "\\":
            if self.peek(1) is None:
                raise Untranslatable("trailing backslash")
            self.i += 2
            return self.p[self.i - 2 : self.i]
        self.i += 1
        return c

    def expect(self, s: str) -> None:
        if not self.p.startswith(s, self.i):
            raise Untranslatable(f"expected {s!r} at {self.i}")
        self.i += len(s)

    # grammar
    def alternation(self, add: int, drop: int) -> object:
        branches = [self.sequence(add, drop)]
        while self.peek() == "|":
            self.i += 1
            branches.append(self.sequence(add, drop))
        return branches[0] if len(branches) == 1 else _Alt(tuple(branches))

    def sequence(self, add: int, drop: int) -> _Seq:
        items: list = []
        while True:
            flags = (self.flags | add) & ~drop
            c = self.peek()
            if c is None or c in "|)":
                return _Seq(tuple(items))
            if flags & re.VERBOSE:
                if c in _WHITESPACE:
                    self.i += 1
                    continue
                if c == "#":
                    while (t := self.token()) is not None and t != "\n":
                        pass
                    continue
            if c in "*+?{":
                self.quantifier(items)
                continue
            tok = self.token()
            if tok == "(":
                node = self.group(add, drop)
                if node is not None:
                    items.append(node)
            elif tok == "[":
                items.append(self.charset(flags))
            elif tok == ".":
                items.append(_Set(char_ranges(".", flags)))
            elif tok == "^":
                items.append(_Anchor("bol" if flags & re.MULTILINE else "bos"))
            elif tok == "$":
                items.append(_Anchor("eol" if flags & re.MULTILINE else "dollar"))
            elif tok is not None and tok[0] == "\\":
                items.append(self.escape(tok[1], flags))
            elif tok is not None:
                items.append(self.literal(tok, flags))

    def literal(self, ch: str, flags: int) -> _Set:
        return _Set(char_ranges(re.escape(ch), flags, literal=ch))

    def quantifier(self, items: list) -> None:
        start = self.i
        c = self.p[self.i]
        self.i += 1
        if c == "?":
            lo, hi = 0, 1
        elif c == "*":
            lo, hi = 0, None
        elif c == "+":
            lo, hi = 1, None
        else:  # "{": a repeat only if it reads {m}, {m,}, {,n} or {m,n}
            if self.peek() == "}":
                items.append(self.literal("{", self.flags))
                return
            a = self._digits()
            if self.peek() == ",":
                self.i += 1
                b = self._digits()
            else:
                b = a
            if self.peek() != "}":
                self.i = start + 1
                items.append(self.literal("{", self.flags))
                return
            self.i += 1
            lo = int(a) if a else 0
            hi = int(b) if b else None
        if not items or isinstance(items[-1], (_Anchor, _Repeat)):
            raise Untranslatable("nothing to repeat")  # re.compile rejected it already
        if self.peek() == "+":
            raise Untranslatable("possessive quantifier")
        if self.peek() == "?":
            self.i += 1  # lazy: whether a string matches does not depend on it
        if (hi is not None and hi > RE2_MAX_REPEAT) or lo > RE2_MAX_REPEAT:
            raise Untranslatable("repeat count above RE2's limit")
        items.append(_Repeat(items.pop(), lo, hi))

    def _digits(self) -> str:
        start = self.i
        while self.peek() is not None and self.peek() in _DIGITS:
            self.i += 1
        return self.p[start : self.i]

    def charset(self, flags: int) -> _Set:
        """``[...]``: find its end as Python does, and let Python evaluate it."""
        start = self.i - 1
        if self.peek() == "^":
            self.i += 1
        if self.token() is None:  # the first token never closes the set ("[]]")
            raise Untranslatable("unterminated set")
        while True:
            t = self.token()
            if t is None:
                raise Untranslatable("unterminated set")
            if t == "]":
                break
        return _Set(char_ranges(self.p[start : self.i], flags))

    def escape(self, c: str, flags: int) -> object:
        if c == "A":
            return _Anchor("bos")
        if c == "Z":
            return _Anchor("eos")
        if c in "bB":
            word = char_ranges(r"\w", flags & (re.ASCII | re.UNICODE))
            return _Anchor("wordb" if c == "b" else "nonwordb", word)
        if c in "dDsSwW":
            return _Set(char_ranges("\\" + c, flags))
        if c in _ESCAPES:
            return self.literal(_ESCAPES[c], flags)
        if c in "xuU":
            n = {"x": 2, "u": 4, "U": 8}[c]
            digits = self.p[self.i : self.i + n]
            if len(digits) != n or not set(digits) <= _HEX:
                raise Untranslatable("bad hex escape")
            self.i += n
            return self.literal(chr(int(digits, 16)), flags)
        if c == "N":
            end = self.p.find("}", self.i)
            if self.peek() != "{" or end < 0:
                raise Untranslatable("bad \\N escape")
            name = self.p[self.i + 1 : end]
            self.i = end + 1
            return self.literal(unicodedata.lookup(name), flags)
        if c == "0":
            digits = "0"
            while len(digits) < 3 and self.peek() is not None and self.peek() in _OCTAL:
                digits += self.p[self.i]
                self.i += 1
            return self.literal(chr(int(digits, 8)), flags)
        if c in _DIGITS:  # three octal digits are a character, anything else a group
            d1, d2 = self.peek(), self.peek(1)
            if (c in _OCTAL and d1 is not None and d1 in _OCTAL
                    and d2 is not None and d2 in _OCTAL):  # fmt: skip
                self.i += 2
                return self.literal(chr(int(c + d1 + d2, 8)), flags)
            raise Untranslatable("back-reference")
        if c.isascii() and c.isalpha():
            raise Untranslatable(f"escape \\{c}")
        return self.literal(c, flags)

    def group(self, add: int, drop: int) -> object | None:
        if self.peek() != "?":
            return self._close(self.alternation(add, drop))
        self.i += 1
        c = self.peek()
        if c == ":":
            self.i += 1
            return self._close(self.alternation(add, drop))
        if c == "P" and self.peek(1) == "<":
            end = self.p.find(">", self.i)
            if end < 0:
                raise Untranslatable("bad group name")
            self.i = end + 1
            return self._close(self.alternation(add, drop))
        if c == "#":
            end = self.p.find(")", self.i)
            if end < 0:
                raise Untranslatable("unterminated comment")
            self.i = end + 1
            return None
        if c is not None and (c in _FLAG_LETTERS or c == "-"):
            on = off = 0
            while self.peek() is not None and self.peek() in _FLAG_LETTERS:
                on |= _FLAG_LETTERS[self.p[self.i]]
                self.i += 1
            if self.peek() == "-":
                self.i += 1
                while self.peek() is not None and self.peek() in _FLAG_LETTERS:
                    off |= _FLAG_LETTERS[self.p[self.i]]
                    self.i += 1
            if self.peek() == ")" and not off:  # global flags (only at the start)
                self.i += 1
                self.flags |= on
                return None
            self.expect(":")
            return self._close(self.alternation((add | on) & ~off, (drop | off) & ~on))
        raise Untranslatable("look-around, conditional, atomic group or named reference")

    def _close(self, node: object) -> object:
        self.expect(")")
        return node


# -- emitting RE2 -------------------------------------------------------------------------
def _is_word_set(node: object, word: Ranges) -> bool | None:
    """True if ``node`` always consumes first/last a word character, False if always a
    non-word character, None if it may be either (or consumes nothing)."""
    if isinstance(node, _Repeat) and node.min >= 1:
        node = node.item
    if not isinstance(node, _Set) or not node.ranges:
        return None
    inside = set(_intersect(node.ranges, word))
    if inside == set(node.ranges):
        return True
    if not inside:
        return False
    return None


def _intersect(a: Ranges, b: Ranges) -> list[tuple[int, int]]:
    out, i, j = [], 0, 0
    while i < len(a) and j < len(b):
        lo, hi = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if lo <= hi:
            out.append((lo, hi))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return out


def _boundary(anchor: _Anchor, neighbour: object, side: str) -> str:
    """``\\b``/``\\B`` at the start (side "head") or end ("tail") of a top-level branch,
    written as the neighbouring character it requires (or the text's edge)."""
    is_word = _is_word_set(neighbour, anchor.word)
    if is_word is None:
        raise Untranslatable("\\b or \\B next to a mixed class")
    want_word_outside = is_word != (anchor.kind == "wordb")
    if want_word_outside:
        return re2_class(anchor.word)
    edge = r"\A" if side == "head" else r"\z"
    return f"(?:{edge}|{re2_class(_complement(anchor.word))})"


def _emit(node: object, tail: bool) -> str:
    if isinstance(node, _Set):
        return re2_class(node.ranges)
    if isinstance(node, _Seq):
        last = len(node.items) - 1
        return "".join(_emit(x, tail and i == last) for i, x in enumerate(node.items))
    if isinstance(node, _Alt):
        return "(?:" + "|".join(_emit(b, tail) for b in node.branches) + ")"
    if isinstance(node, _Repeat):
        inner = "(?:" + _emit(node.item, tail and node.max is not None and node.max <= 1) + ")"
        if node.max is None:
            return inner + ("*" if node.min == 0 else "+" if node.min == 1 else f"{{{node.min},}}")
        return inner + f"{{{node.min},{node.max}}}"
    assert isinstance(node, _Anchor)
    if node.kind == "bos":
        return r"\A"
    if node.kind == "eos":
        return r"\z"
    if node.kind == "bol":
        return "(?m:^)"
    if node.kind == "eol":
        return "(?m:$)"
    if node.kind == "dollar" and tail:
        return r"(?:\n?\z)"
    raise Untranslatable(f"{node.kind} where RE2 would need look-around")


def _emit_branch(seq: object) -> str:
    items = list(seq.items) if isinstance(seq, _Seq) else [seq]
    head = tail = ""
    if len(items) >= 2 and isinstance(items[0], _Anchor) and items[0].word:
        head = _boundary(items[0], items[1], "head")
        items = items[1:]
    if len(items) >= 2 and isinstance(items[-1], _Anchor) and items[-1].word:
        tail = _boundary(items[-1], items[-2], "tail")
        items = items[:-1]
    return head + _emit(_Seq(tuple(items)), True) + tail


def translate(pattern: str, flags: int = 0) -> str:
    """An RE2 pattern that matches exactly the strings ``re.search(pattern, s, flags)`` does.

    Parameters
    ----------
    pattern : str
        A valid Python regular expression (compile it with :mod:`re` first).
    flags : int
        :mod:`re` flags (inline flags in ``pattern`` are honoured too).

    Raises
    ------
    Untranslatable
        The pattern needs Python's engine (look-around, back-references, ``\\b`` inside
        the pattern, possessive quantifiers, atomic groups, conditionals, huge repeats).

    Examples
    --------
    >>> translate("treated$")
    '(?:treated(?:\\\\n?\\\\z))'
    >>> translate("ab", re.IGNORECASE)
    '(?:[Aa][Bb])'
    >>> translate("(?<=x)y")
    Traceback (most recent call last):
    ...
    archs4x.query.re2translate.Untranslatable: look-around, conditional, atomic group or ...
    """
    parser = _Parser(pattern, flags)
    tree = parser.alternation(0, 0)
    if parser.i != len(pattern):
        raise Untranslatable(f"unparsed text at {parser.i}")
    branches = tree.branches if isinstance(tree, _Alt) else (tree,)
    return "(?:" + "|".join(_emit_branch(b) for b in branches) + ")"
