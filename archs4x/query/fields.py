"""Typed sample fields: what ``filter`` and ``facets`` compare and count.

A field name resolves, in this order, to

1. a sample coordinate of the Dataset (stored names work: ``geo_accession``, ``sample``;
   ``readsaligned`` and ``alignedreads`` stand for each other, the name differs between
   ARCHS4 releases);
2. a key parsed from ``characteristics_ch1`` (:mod:`archs4x.query.characteristics`), by
   its canonical name (``cell_type``) or any spelling of it (``"Cell types"``, ``gender``);
   ``characteristics.<key>`` names one explicitly when a coordinate has the same name.

and has one of four kinds:

- ``number``: numeric fields and :data:`NUMBER_FIELDS` stored as text (``channel_count``,
  ``taxid_ch1``), ages; text that is not a number is missing;
- ``date``: :data:`DATE_FIELDS`, stored as ``"Jan 01 2020"`` text, compared as dates;
- ``multi``: :data:`MULTI_FIELDS` (``series_id``: ``"GSE1,GSE2"`` holds two values);
- ``text``: everything else.

Columns are read by sample position from the metadata cache (a file's full column is
coded once per process, :class:`~archs4x.query.coded.Coded`), never by asking Dask to
compute.  Missing values: null, NaN, or text that is empty or blank.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import Any

import numpy as np
import pyarrow as pa
import xarray as xr

from ..backends.positions import sample_positions
from ..dims import SAMPLE
from ..storage.caches import LRUCache
from ..storage.layout import SAMPLE_ID_FIELD
from .characteristics import canonical_key
from .charcache import (
    CHARACTERISTICS_FIELD,
    characteristics_source,
    file_characteristic,
    parsed_characteristics,
)
from .coded import Coded
from .columns import FIELD_ENCODING, resolve_sample_name, sample_column, sample_fields
from .metacache import MetaCache

__all__ = [
    "CHARACTERISTIC_ENCODING",
    "DATE",
    "DATE_FIELDS",
    "MULTI",
    "MULTI_FIELDS",
    "NUMBER",
    "NUMBER_FIELDS",
    "TEXT",
    "TypedColumn",
    "field_names",
    "parse_date",
    "typed_column",
]

NUMBER, DATE, MULTI, TEXT = "number", "date", "multi", "text"
#: Stored fields holding numbers, as numbers or as text.
NUMBER_FIELDS = frozenset({"readsaligned", "alignedreads", "singlecellprobability",
                           "channel_count", "taxid_ch1"})  # fmt: skip
#: Stored fields holding dates as ``"Jan 01 2020"`` text.
DATE_FIELDS = frozenset({"submission_date", "last_update_date"})
#: Stored fields holding several comma-separated values.
MULTI_FIELDS = frozenset({"series_id"})
_ALIASES = {"readsaligned": "alignedreads", "alignedreads": "readsaligned"}
_PREFIX = "characteristics."
#: Encoding key marking a coordinate as a parsed characteristic (its value: the key).
CHARACTERISTIC_ENCODING = "archs4x_characteristic"
_EPOCH = date(1970, 1, 1)
_MONTHS = {m: i + 1 for i, m in enumerate(("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul",
                                             "Aug", "Sep", "Oct", "Nov", "Dec"))}  # fmt: skip
_ARCHS4_DATE = re.compile(r"([A-Z][a-z]{2}) (\d{1,2}) (\d{4})")
_DATE_FORMATS = ("%b %d %Y", "%Y-%m-%d", "%Y-%m", "%Y", "%d %b %Y", "%B %d %Y")
_NUMBER = re.compile(r"\s*[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?\s*")

# whole-file typed columns, by file version and field: bounded by their size in bytes
_full: LRUCache[TypedColumn] = LRUCache("typed-columns", capacity=lambda: 512 * 2**20,
                                        cost=lambda col: col.nbytes)  # fmt: skip


@dataclass(frozen=True)
class Members:
    """The values inside each distinct text of a multi-valued field, flattened.

    ``of[i]`` is the distinct text the ``i``-th member belongs to and ``codes[i]`` its
    index in ``values`` (the distinct members).
    """

    of: np.ndarray
    codes: np.ndarray
    values: pa.Array

    @classmethod
    def split(cls, texts: list) -> Members:
        lists = [_members(t) for t in texts]
        of = np.repeat(np.arange(len(lists)), [len(m) for m in lists])
        coded = Coded.encode(pa.array([m for ms in lists for m in ms], pa.large_string()))
        return cls(of, coded.codes, coded.values)

    def any(self, per_member: np.ndarray, n_texts: int) -> np.ndarray:
        """Per distinct text: whether any of its members passes."""
        hit = np.zeros(n_texts, dtype=bool)
        hit[self.of[np.asarray(per_member, dtype=bool)[self.codes]]] = True
        return hit


@dataclass(frozen=True)
class TypedColumn:
    """One field over the samples of a Dataset, typed.

    ``numbers`` (float64, NaN missing; dates as days since 1970-01-01) for numbers and
    dates; ``coded`` (distinct values and a code per sample) for text and multi-valued
    fields, with ``blank`` (per distinct value: missing) and, for the latter, ``members``.
    """

    name: str
    kind: str
    numbers: np.ndarray | None = None
    coded: Coded | None = None
    blank: np.ndarray | None = None
    members: Members | None = None

    @classmethod
    def of_text(cls, name: str, kind: str, coded: Coded) -> TypedColumn:
        """A text (or multi-valued) column; missing and member values worked out once."""
        values = coded.values.to_pylist()
        if kind == MULTI:
            members = Members.split(values)
            sizes = np.bincount(members.of, minlength=len(values))
            return cls(name, kind, coded=coded, blank=sizes == 0, members=members)
        blank = np.fromiter((v is None or not str(v).strip() for v in values), bool,
                            len(values))  # fmt: skip
        return cls(name, kind, coded=coded, blank=blank)

    def require_coded(self) -> Coded:
        """``coded`` of a text or multi-valued column (TypeError for numbers and dates)."""
        if self.coded is None:
            raise TypeError(f"{self.name!r} is a {self.kind} column: it holds no coded text")
        return self.coded

    def require_blank(self) -> np.ndarray:
        """``blank`` of a text or multi-valued column (TypeError for numbers and dates)."""
        if self.blank is None:
            raise TypeError(f"{self.name!r} is a {self.kind} column: it holds no text")
        return self.blank

    def require_members(self) -> Members:
        """``members`` of a multi-valued column (TypeError for any other kind)."""
        if self.members is None:
            raise TypeError(f"{self.name!r} is a {self.kind} column, not a multi-valued one")
        return self.members

    def __len__(self) -> int:
        return int(self.numbers.size if self.numbers is not None else len(self.require_coded()))

    @property
    def nbytes(self) -> int:
        """Memory held (the per-sample arrays and the distinct values)."""
        if self.numbers is not None:
            return int(self.numbers.nbytes)
        coded = self.require_coded()
        held = coded.codes.nbytes + coded.values.nbytes
        if self.members is not None:
            held += self.members.of.nbytes + self.members.codes.nbytes
            held += self.members.values.nbytes
        return int(held)

    def take(self, positions: np.ndarray | None) -> TypedColumn:
        if positions is None:
            return self
        if self.numbers is not None:
            return replace(self, numbers=self.numbers[positions])
        return replace(self, coded=self.require_coded().take(positions))

    def missing(self) -> np.ndarray:
        """True where the value is missing (null, blank text; multi: no value at all)."""
        if self.numbers is not None:
            return np.isnan(self.numbers)
        return ~self.require_coded().mask(~self.require_blank())


def parse_date(text: Any) -> float:
    """Days since 1970-01-01 of a date written as ARCHS4 does or in ISO form (NaN if not).

    Examples
    --------
    >>> parse_date("Jan 02 1970"), parse_date("2019-01-01"), parse_date("2019")
    (1.0, 17897.0, 17897.0)
    >>> parse_date("soon")
    nan
    """
    if isinstance(text, datetime):
        text = text.date()
    if isinstance(text, date):
        return float((text - _EPOCH).days)
    if not isinstance(text, str):
        return float("nan")
    text = text.strip()
    m = _ARCHS4_DATE.fullmatch(text)  # the stored form, without strptime's cost
    if m is not None and m[1] in _MONTHS:
        try:
            return float((date(int(m[3]), _MONTHS[m[1]], int(m[2])) - _EPOCH).days)
        except ValueError:
            return float("nan")
    for fmt in _DATE_FORMATS:
        try:
            return float((datetime.strptime(text, fmt).date() - _EPOCH).days)
        except ValueError:
            continue
    return float("nan")


def _number(value: Any) -> float:
    if value is None:
        return float("nan")
    if isinstance(value, int | float | np.number) and not isinstance(value, bool):
        return float(value)
    text = str(value)
    return float(text) if _NUMBER.fullmatch(text) else float("nan")


def _members(text: Any) -> tuple[str, ...]:
    if text is None:
        return ()
    return tuple(dict.fromkeys(p.strip() for p in str(text).split(",") if p.strip()))


def _kind_of(name: str, col: pa.Array | pa.ChunkedArray) -> str:
    if name in DATE_FIELDS:
        return DATE
    if name in MULTI_FIELDS:
        return MULTI
    if name in NUMBER_FIELDS:
        return NUMBER
    t = col.type
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t):
        return NUMBER
    if pa.types.is_date(t) or pa.types.is_timestamp(t):
        return DATE
    return TEXT


def _typed(name: str, kind: str, col: pa.Array | pa.ChunkedArray) -> TypedColumn:
    """Type an Arrow column (aligned with the samples) as ``kind``."""
    is_numeric = pa.types.is_integer(col.type) or pa.types.is_floating(col.type)
    if kind == NUMBER and (is_numeric or pa.types.is_boolean(col.type)):
        values = col.to_numpy(zero_copy_only=False) if len(col) else np.zeros(0)
        return TypedColumn(name, kind, numbers=np.asarray(values, dtype=np.float64))
    if kind == DATE and (pa.types.is_date(col.type) or pa.types.is_timestamp(col.type)):
        days = col.cast(pa.date32()).cast(pa.int32()).to_numpy(zero_copy_only=False)
        return TypedColumn(name, kind, numbers=np.asarray(days, dtype=np.float64))
    if not (pa.types.is_string(col.type) or pa.types.is_large_string(col.type)):
        col = col.cast(pa.large_string())
    coded = Coded.encode(col)
    values = coded.values.to_pylist()
    if kind == NUMBER:
        return TypedColumn(name, kind, numbers=coded.lookup([_number(v) for v in values]))
    if kind == DATE:
        return TypedColumn(name, kind, numbers=coded.lookup([parse_date(v) for v in values]))
    return TypedColumn.of_text(name, kind, coded)


def _from_values(name: str, var: xr.DataArray) -> TypedColumn:
    """Type a coordinate from its own values (no file to read it from)."""
    values = np.asarray(var.values)
    if values.dtype.kind == "M":
        days = values.astype("datetime64[D]").astype(np.int64).astype(np.float64)
        days[np.isnat(values)] = np.nan
        return TypedColumn(name, DATE, numbers=days)
    if values.dtype.kind in "biuf":
        return TypedColumn(name, NUMBER, numbers=values.astype(np.float64))
    arr = pa.array([None if v is None else str(v) for v in values.astype(object)],
                   pa.large_string())  # fmt: skip
    kind = DATE if name in DATE_FIELDS else MULTI if name in MULTI_FIELDS else (
        NUMBER if name in NUMBER_FIELDS else TEXT)  # fmt: skip
    return _typed(name, kind, arr)


def _stored(ds: xr.Dataset, coord: str) -> tuple[Any, bool, str, np.ndarray] | None:
    """``(source, repair, field, positions)`` when ``coord`` is read from ``ds``'s file."""
    located = sample_positions(ds)
    if located is None:
        return None
    positions, source = located
    enc = ds.coords[coord].encoding
    field_key, source_key, repair_key = FIELD_ENCODING
    field = enc.get(field_key)
    if field is None or enc.get(source_key) != source:
        return None
    return source, bool(enc.get(repair_key, False)), str(field), positions


def _characteristic(ds: xr.Dataset, key: str) -> TypedColumn:
    """Characteristic ``key`` over ``ds``'s samples (KeyError if no sample has it)."""
    located = characteristics_source(ds)
    positions: np.ndarray | None
    if located is not None:
        source, repair, positions = located
        column = file_characteristic(source, repair, key)
    else:
        parsed, positions = parsed_characteristics(ds)
        column = parsed.field(key)
    if isinstance(column, Coded):
        typed = _text_column(key, column)
    else:  # NUMERIC_KEYS come as float64 (NaN: missing)
        typed = TypedColumn(key, NUMBER, numbers=column)
    return typed.take(positions)


# text characteristic columns with their per-value facts, by column identity
_texts: LRUCache[TypedColumn] = LRUCache("typed-characteristics", capacity=lambda: 256 * 2**20,
                                         cost=lambda col: col.nbytes)  # fmt: skip


def _text_column(key: str, column: Coded) -> TypedColumn:
    memo_key = (id(column), key)
    hit = _texts.get(memo_key)
    if hit is not None and hit.coded is column:
        return hit
    return _texts.put(memo_key, TypedColumn.of_text(key, TEXT, column))


def _characteristic_keys(ds: xr.Dataset) -> list[str]:
    if CHARACTERISTICS_FIELD not in ds.coords:
        return []
    parsed, _ = parsed_characteristics(ds)
    return parsed.keys


def _coordinate(ds: xr.Dataset, name: str) -> str | None:
    try:
        return resolve_sample_name(ds, name)
    except KeyError:
        alias = _ALIASES.get(name)
        return alias if alias is not None and alias in ds.coords else None


def field_names(ds: xr.Dataset) -> list[str]:
    """Every field name ``ds`` can be filtered or faceted by: sample fields, then keys.

    Examples
    --------
    >>> import archs4x
    >>> names = field_names(archs4x.open_dataset(archs4x.datasets.example_file()))
    >>> "submission_date" in names, "tissue" in names, "cell_type" in names
    (True, True, True)
    """
    names = [SAMPLE_ID_FIELD, *sample_fields(ds)]
    return names + [k for k in _characteristic_keys(ds) if k not in names]


def typed_column(ds: xr.Dataset, name: str) -> TypedColumn:
    """Field ``name`` over the samples of ``ds``, typed (see the module docs).

    Raises
    ------
    KeyError
        No such field; the message lists close matches.

    Examples
    --------
    >>> import archs4x
    >>> ds = archs4x.open_dataset(archs4x.datasets.example_file())
    >>> typed_column(ds, "submission_date").kind, typed_column(ds, "series_id").kind
    ('date', 'multi')
    >>> col = typed_column(ds.archs4.samples(["GSM1482938"]), "age")
    >>> col.kind, col.numbers.tolist()
    ('number', [54.0])
    """
    if not isinstance(name, str):
        raise TypeError(f"field names are strings, got {type(name).__name__}")
    explicit = name.startswith(_PREFIX)
    coord = None if explicit else _coordinate(ds, name)
    if coord is not None:
        col = _column(ds, coord, name)
        return col if col.name == name else replace(col, name=name)
    key = name[len(_PREFIX) :] if explicit else name
    keys = _characteristic_keys(ds)
    if key not in keys:  # a spelling of a key: "cell type", "Gender", "age (years)"
        key = canonical_key(key)[0]
    if key in keys:
        return _characteristic(ds, key)
    raise KeyError(_unknown(ds, name))


def _column(ds: xr.Dataset, coord: str, name: str) -> TypedColumn:
    if coord == SAMPLE:
        return _typed(name, TEXT, sample_column(ds, SAMPLE_ID_FIELD))
    var = ds.coords[coord]
    key = var.encoding.get(CHARACTERISTIC_ENCODING)
    located = None if key is None else characteristics_source(ds)
    if located is not None and (var.encoding.get(FIELD_ENCODING[1]), bool(
            var.encoding.get(FIELD_ENCODING[2], False))) == located[:2]:  # fmt: skip
        return _characteristic(ds, str(key))  # with_characteristics's: read by position
    stored = _stored(ds, coord)
    if stored is None:  # the user's own coordinate, or samples relabelled
        return _from_values(coord, var)
    source, repair, field, positions = stored
    cache = MetaCache(source, repair=repair)
    cache.source.check()

    def make() -> TypedColumn:
        col = cache.column(field)
        return _typed(field, _kind_of(field, col), col)

    full = _full.get_or_make((cache.source.cache_key, repair, field), make)
    if positions.size == len(full) and np.array_equal(positions, np.arange(len(full))):
        return full
    return full.take(positions)


def _unknown(ds: xr.Dataset, name: str) -> str:
    names = field_names(ds)
    close = difflib.get_close_matches(name, names, n=5, cutoff=0.6)
    hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
    return (f"{name!r} is not a sample field or characteristic of this Dataset{hint} "
            f"(fields: {len(names)}; list them with archs4x.query.field_names(ds))")  # fmt: skip
