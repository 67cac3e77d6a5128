r"""``filter``: select samples with a typed expression over their metadata.

The expression language (in the style of cellxgene-census ``value_filter``) is read by a
tokenizer and a recursive-descent parser, never ``eval``::

    expr    := or
    or      := and ("or" and)*
    and     := unary ("and" unary)*
    unary   := "not" unary | "(" expr ")" | clause
    clause  := field ("==" | "!=" | "<" | "<=" | ">" | ">=") value
             | field ["not"] "in" "[" [value ("," value)* [","]] "]"
             | field ("contains" | "startswith" | "matches") string
             | field "is" ["not"] "null"
    field   := name | `any text in backquotes`
    value   := string | number

- Keywords are case-insensitive.  Strings take single or double quotes; ``\'``, ``\"``,
  ``\\``, ``\n`` and ``\t`` are escapes, any other backslash is kept (``'day \d'``).
  Numbers may use ``_`` and exponents (``5_000_000``, ``5e6``).
- Fields are typed (:mod:`archs4x.query.fields`): numbers compare with numbers;
  dates (``submission_date``, ``last_update_date``) with ISO dates (``'2019-01-01'``,
  ``'2019-06'``, ``'2019'``); ``series_id`` holds several series, and ``==`` / ``in``
  test membership (``series_id == 'GSE1'`` is true for ``"GSE1,GSE2"``); every key
  parsed from ``characteristics_ch1`` is a field (``tissue``, ``cell_type``, ``age`` in
  years...).  ``==`` on text is exact; ``<`` ... on text compare code points.
- ``contains``, ``startswith`` and ``matches`` work on text and multi-valued fields with
  the semantics of :func:`~archs4x.query.search`: case-insensitive, ``matches`` a
  Python-syntax regular expression (:func:`~archs4x.query.match`).
- A missing value (null, NaN, empty text) fails every test except ``!=``, ``not in``
  and ``is null``: ``a != b`` is ``not (a == b)``.

Errors: an unknown field raises ``KeyError`` naming close matches; a value of the wrong
type (``readsaligned > 'abc'``) raises ``TypeError``; a syntax error raises
``ValueError`` showing the expression with a caret under the position.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import xarray as xr

from ..dims import SAMPLE
from .fields import DATE, MULTI, NUMBER, TEXT, TypedColumn, parse_date, typed_column
from .matching import match

__all__ = [
    "And",
    "Clause",
    "Not",
    "Or",
    "filter",
    "parse_filter",
    "tokenize",
]

KEYWORDS = frozenset({"and", "or", "not", "in", "is", "null", "contains", "startswith",
                      "matches"})  # fmt: skip
COMPARISONS = ("==", "!=", "<", "<=", ">", ">=")
TESTS = ("contains", "startswith", "matches")

_TOKEN = re.compile(
    r"""(?P<ws>\s+)
      | (?P<string>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
      | (?P<number>[-+]?(?:\d[\d_]*(?:\.[\d_]*)?|\.\d[\d_]*)(?:[eE][-+]?\d+)?)
      | (?P<quoted>`[^`]*`)
      | (?P<name>[^\W\d]\w*(?:\.[^\W\d]\w*)*)
      | (?P<op>==|!=|<=|>=|<|>)
      | (?P<punct>[()\[\],])
    """,
    re.VERBOSE | re.DOTALL,
)
_ESCAPES = {"\\": "\\", "'": "'", '"': '"', "n": "\n", "t": "\t"}


@dataclass(frozen=True)
class Token:
    """One token: ``kind`` (string, number, name, keyword, op, punct, end), its value, span."""

    kind: str
    value: Any
    start: int
    end: int


def _caret(expr: str, pos: int, message: str) -> ValueError:
    shown = re.sub(r"\s", " ", expr)
    return ValueError(f"{message}\n    {shown}\n    {' ' * pos}^")


def _unescape(body: str) -> str:
    out, i = [], 0
    while i < len(body):
        ch = body[i]
        if ch == "\\" and i + 1 < len(body):
            nxt = body[i + 1]
            out.append(_ESCAPES.get(nxt, "\\" + nxt))
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def tokenize(expr: str) -> list[Token]:
    """The tokens of ``expr``, ending with an ``end`` token.

    Raises
    ------
    ValueError
        An unexpected character, an unterminated string or a malformed number (the
        message shows a caret under it).

    Examples
    --------
    >>> [(t.kind, t.value) for t in tokenize("age >= 5_000 AND `cell type` in ['T cell']")]
    ... # doctest: +NORMALIZE_WHITESPACE
    [('name', 'age'), ('op', '>='), ('number', 5000), ('keyword', 'and'), ('name', 'cell type'),
     ('keyword', 'in'), ('punct', '['), ('string', 'T cell'), ('punct', ']'), ('end', None)]
    """
    tokens, pos = [], 0
    while pos < len(expr):
        m = _TOKEN.match(expr, pos)
        if m is None:
            ch = expr[pos]
            if ch in "'\"":
                raise _caret(expr, pos, "invalid filter expression: unterminated string")
            hint = "; compare with ==" if ch == "=" else ""
            raise _caret(expr, pos, f"invalid filter expression: unexpected {ch!r}{hint}")
        kind, text = m.lastgroup, m.group()
        assert kind is not None  # every alternative of _TOKEN is a named group
        start, pos = m.start(), m.end()
        if kind == "ws":
            continue
        if kind == "number":
            if pos < len(expr) and (expr[pos].isalnum() or expr[pos] == "_"):
                raise _caret(expr, start, f"invalid filter expression: malformed number "
                                          f"{expr[start:pos + 1]!r}...")  # fmt: skip
            try:
                value: Any = float(text) if any(c in text for c in ".eE") else int(text)
            except ValueError:
                raise _caret(expr, start, f"invalid filter expression: malformed number "
                                          f"{text!r}") from None  # fmt: skip
        elif kind == "string":
            value = _unescape(text[1:-1])
        elif kind == "quoted":
            kind, value = "name", text[1:-1]
        elif kind == "name" and text.lower() in KEYWORDS:
            kind, value = "keyword", text.lower()
        else:
            value = text
        tokens.append(Token(kind, value, start, pos))
    tokens.append(Token("end", None, len(expr), len(expr)))
    return tokens


# --------------------------------------------------------------------------------------
# The syntax tree
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Clause:
    """One test of one field: ``op`` is a comparison, ``in``, ``not in``, a string test,
    ``is null`` or ``is not null``; ``value`` its literal (a tuple for lists)."""

    field: str
    op: str
    value: Any
    start: int
    end: int

    def fields(self) -> Iterator[str]:
        yield self.field


@dataclass(frozen=True)
class Not:
    item: Node

    def fields(self) -> Iterator[str]:
        yield from self.item.fields()


@dataclass(frozen=True)
class And:
    items: tuple[Node, ...]

    def fields(self) -> Iterator[str]:
        for item in self.items:
            yield from item.fields()


@dataclass(frozen=True)
class Or:
    items: tuple[Node, ...]

    def fields(self) -> Iterator[str]:
        for item in self.items:
            yield from item.fields()


Node = Clause | Not | And | Or


class _Parser:
    def __init__(self, expr: str) -> None:
        self.expr = expr
        self.tokens = tokenize(expr)
        self.i = 0

    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def error(self, message: str, token: Token | None = None) -> ValueError:
        token = token or self.tok
        found = "the end" if token.kind == "end" else repr(self.expr[token.start : token.end])
        return _caret(self.expr, token.start,
                      f"invalid filter expression: {message}, found {found}")  # fmt: skip

    def keyword(self, *words: str) -> bool:
        if self.tok.kind == "keyword" and self.tok.value in words:
            self.i += 1
            return True
        return False

    def punct(self, ch: str) -> bool:
        if self.tok.kind == "punct" and self.tok.value == ch:
            self.i += 1
            return True
        return False

    def parse(self) -> Node:
        if self.tok.kind == "end":
            raise self.error("empty expression")
        node = self.or_()
        if self.tok.kind != "end":
            raise self.error("expected 'and', 'or' or the end of the expression")
        return node

    def or_(self) -> Node:
        items = [self.and_()]
        while self.keyword("or"):
            items.append(self.and_())
        return items[0] if len(items) == 1 else Or(tuple(items))

    def and_(self) -> Node:
        items = [self.unary()]
        while self.keyword("and"):
            items.append(self.unary())
        return items[0] if len(items) == 1 else And(tuple(items))

    def unary(self) -> Node:
        if self.keyword("not"):
            return Not(self.unary())
        if self.punct("("):
            node = self.or_()
            if not self.punct(")"):
                raise self.error("expected ')'")
            return node
        return self.clause()

    def value(self) -> Any:
        tok = self.tok
        if tok.kind in ("string", "number"):
            self.i += 1
            return tok.value
        raise self.error("expected a value (a 'string' or a number)")

    def clause(self) -> Clause:
        tok = self.tok
        if tok.kind != "name":
            what = (
                "a field name"
                if tok.kind != "keyword"
                else ("a field name (quote field names that are keywords in backquotes: `in`)")
            )
            raise self.error(f"expected {what}")  # fmt: skip
        self.i += 1
        field, start = tok.value, tok.start
        op_tok = self.tok
        if op_tok.kind == "op":
            self.i += 1
            value = self.value()
            return Clause(field, op_tok.value, value, start, self.tokens[self.i - 1].end)
        if self.keyword(*TESTS):
            op = op_tok.value
            if self.tok.kind != "string":
                raise self.error(f"expected a 'string' after {op!r}")
            self.i += 1
            return Clause(
                field, op, self.tokens[self.i - 1].value, start, self.tokens[self.i - 1].end
            )
        if self.keyword("is"):
            negate = self.keyword("not")
            if not self.keyword("null"):
                raise self.error("expected 'null' after 'is'")
            op = "is not null" if negate else "is null"
            return Clause(field, op, None, start, self.tokens[self.i - 1].end)
        negate = self.keyword("not")
        if self.keyword("in"):
            values = self.list_()
            op = "not in" if negate else "in"
            return Clause(field, op, values, start, self.tokens[self.i - 1].end)
        if negate:
            raise self.error("expected 'in' after 'not'")
        raise self.error(f"expected an operator after {field!r} (==, !=, <, <=, >, >=, in, "
                         "not in, contains, startswith, matches, is null)")  # fmt: skip

    def list_(self) -> tuple[Any, ...]:
        if not self.punct("["):
            raise self.error("expected '[' to start a list")
        values: list[Any] = []
        while not self.punct("]"):
            values.append(self.value())
            if not self.punct(","):
                if not self.punct("]"):
                    raise self.error("expected ',' or ']' in the list")
                break
        return tuple(values)


def parse_filter(expr: str) -> Node:
    """The syntax tree of a filter expression.

    Raises
    ------
    ValueError
        A syntax error; the message shows the expression and a caret at the position.

    Examples
    --------
    >>> parse_filter("tissue == 'liver' and not age < 18")  # doctest: +NORMALIZE_WHITESPACE
    And(items=(Clause(field='tissue', op='==', value='liver', start=0, end=17),
               Not(item=Clause(field='age', op='<', value=18, start=26, end=34))))
    >>> parse_filter("tissue = 'liver'")
    Traceback (most recent call last):
    ...
    ValueError: invalid filter expression: unexpected '='; compare with ==
        tissue = 'liver'
               ^
    """
    if not isinstance(expr, str):
        raise TypeError(f"a filter expression is a str, got {type(expr).__name__}")
    return _Parser(expr).parse()


# --------------------------------------------------------------------------------------
# Types and evaluation
# --------------------------------------------------------------------------------------
def _describe(value: Any) -> str:
    return repr(value) if isinstance(value, str) else f"the number {value!r}"


def _literal(col: TypedColumn, value: Any, clause: str) -> Any:
    """``value`` as ``col`` compares it, or TypeError."""
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    if col.kind == NUMBER:
        if not is_number:
            raise TypeError(f"{col.name} is a number field: compare it with a number, not "
                            f"{_describe(value)} (in: {clause})")  # fmt: skip
        return float(value)
    if col.kind == DATE:
        days = parse_date(value) if isinstance(value, str) else float("nan")
        if np.isnan(days):
            raise TypeError(f"{col.name} is a date field: compare it with a date such as "
                            f"'2019-01-01', not {_describe(value)} (in: {clause})")  # fmt: skip
        return days
    if not isinstance(value, str):
        kind = "multi-valued text" if col.kind == MULTI else "text"
        raise TypeError(f"{col.name} is a {kind} field: compare it with a 'string', not "
                        f"{_describe(value)} (in: {clause})")  # fmt: skip
    return value


def _per_value(col: TypedColumn, test: Callable[[pa.Array], np.ndarray]) -> np.ndarray:
    """Rows where ``test`` holds for the value (multi: for any of the values)."""
    coded = col.require_coded()
    if col.kind != MULTI:
        return coded.mask(test(coded.values))
    members = col.require_members()
    per_member = test(members.values) if len(members.values) else np.zeros(0, bool)
    return coded.mask(members.any(per_member, len(coded.values)))


def _python_test(func: Callable[[Any], bool]) -> Callable[[pa.Array], np.ndarray]:
    def run(values: pa.Array) -> np.ndarray:
        return np.fromiter((v is not None and func(v) for v in values.to_pylist()), bool,
                           len(values))  # fmt: skip

    return run


_ORDER = {
    "<": lambda a, b: a < b, "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b, ">=": lambda a, b: a >= b,
}  # fmt: skip


def _clause_mask(clause: Clause, col: TypedColumn, text: str) -> np.ndarray:
    op = clause.op
    if op in ("is null", "is not null"):
        missing = col.missing()
        return ~missing if op == "is not null" else missing
    if op == "!=":
        return ~_clause_mask(Clause(clause.field, "==", clause.value, 0, 0), col, text)
    if op == "not in":
        return ~_clause_mask(Clause(clause.field, "in", clause.value, 0, 0), col, text)
    if op in TESTS:
        if col.kind not in (TEXT, MULTI):
            raise TypeError(f"{op!r} tests text, and {col.name} is a {col.kind} field "
                            f"(in: {text})")  # fmt: skip
        term = _literal(col, clause.value, text)
        try:
            if op == "contains":
                matcher = match(term, regex=False)
            elif op == "startswith":
                matcher = match("^" + re.escape(term))
            else:
                matcher = match(term)
        except ValueError as exc:
            raise ValueError(f"{exc} (in: {text})") from None
        return _per_value(col, matcher)
    if op == "in":
        wanted = [_literal(col, v, text) for v in clause.value]
        if col.numbers is not None:
            return np.isin(col.numbers, np.asarray(wanted, dtype=np.float64))
        members = set(wanted)
        return _per_value(col, _python_test(lambda v: v in members))
    value = _literal(col, clause.value, text)
    if col.numbers is not None:
        with np.errstate(invalid="ignore"):
            return col.numbers == value if op == "==" else _ORDER[op](col.numbers, value)
    if op == "==":
        return _per_value(col, _python_test(lambda v: v == value))
    if col.kind == MULTI:
        raise TypeError(f"{col.name} holds several values: compare it with ==, !=, in or a "
                        f"string test, not {op!r} (in: {text})")  # fmt: skip
    order = _ORDER[op]
    return _per_value(col, _python_test(lambda v: order(v, value)))


def _evaluate(node: Node, columns: dict[str, TypedColumn], expr: str) -> np.ndarray:
    if isinstance(node, Clause):
        return _clause_mask(node, columns[node.field], expr[node.start : node.end])
    if isinstance(node, Not):
        return ~_evaluate(node.item, columns, expr)
    masks = [_evaluate(item, columns, expr) for item in node.items]
    combine = np.logical_and if isinstance(node, And) else np.logical_or
    return combine.reduce(masks)


def _check(node: Node, columns: dict[str, TypedColumn], expr: str) -> None:
    """Raise TypeError for any clause whose value does not fit its field, before work."""
    if isinstance(node, Clause):
        col, text = columns[node.field], expr[node.start : node.end]
        if node.op in TESTS and col.kind not in (TEXT, MULTI):
            raise TypeError(f"{node.op!r} tests text, and {col.name} is a {col.kind} field "
                            f"(in: {text})")  # fmt: skip
        if node.op in ("<", "<=", ">", ">=") and col.kind == MULTI:
            raise TypeError(f"{col.name} holds several values: compare it with ==, !=, in "
                            f"or a string test, not {node.op!r} (in: {text})")  # fmt: skip
        values = node.value if node.op in ("in", "not in") else (
            () if node.value is None else (node.value,))  # fmt: skip
        for value in values:
            _literal(col, value, text)
        return
    for item in (node.item,) if isinstance(node, Not) else node.items:
        _check(item, columns, expr)


def filter(ds: xr.Dataset, expr: str) -> xr.Dataset:
    """Samples whose metadata satisfies ``expr`` (lazy counts, Dataset order).

    See the module documentation for the expression language.  The result is made with
    ``ds.isel``, so ``counts`` stays lazy and reads only these samples; nothing asks
    Dask to compute.  Chains with every other query.

    Parameters
    ----------
    ds : xarray.Dataset
    expr : str
        E.g. ``"tissue == 'liver' and singlecellprobability < 0.5 and
        submission_date >= '2019-01-01'"``.

    Raises
    ------
    ValueError
        Syntax error (the message shows a caret at the position), or an invalid regular
        expression after ``matches``.
    KeyError
        Unknown field (the message lists close matches).
    TypeError
        A value of the wrong type for its field.

    Examples
    --------
    >>> import archs4x
    >>> ds = archs4x.open_dataset(archs4x.datasets.example_file())
    >>> liver = filter(ds, "tissue == 'liver' and submission_date >= '2016-01-01'")
    >>> sorted(set(liver.archs4.meta(["submission_date"])["submission_date"].str[-4:]))[0]
    '2016'
    >>> filter(ds, "series_id == 'GSE64016' and cell_cycle_phase in ['G1', 'S']").sizes
    Frozen({'gene': 4500, 'sample': 6})
    >>> filter(ds, "tisue == 'liver'")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    KeyError: "'tisue' is not a sample field or characteristic ...; did you mean 'tissue', ..."
    >>> filter(ds, "singlecellprobability > 'high'")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    TypeError: singlecellprobability is a number field: compare it with a number, ...
    """
    tree = parse_filter(expr)
    names = list(dict.fromkeys(tree.fields()))
    columns = {name: typed_column(ds, name) for name in names}
    _check(tree, columns, expr)
    mask = _evaluate(tree, columns, expr)
    return ds.isel({SAMPLE: np.flatnonzero(mask)})
