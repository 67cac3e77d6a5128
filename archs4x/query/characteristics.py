"""Parse GEO ``characteristics_ch1`` text into ``key -> value`` fields.

GEO stores a sample's characteristics as ``key: value`` pairs, and ARCHS4 joins them with
``","`` into one text: ``"tissue: liver,cell line: HepG2,treatment: TNF-α, 10 ng/ml"``.
Values may hold commas and colons, keys are spelt many ways.  This module is the parser:

- **Pairs.** The text is cut at every comma; a piece *starts a pair* when it reads
  ``key: value`` (a key of 1-60 characters that starts with a letter and holds no colon,
  then a colon followed by a space or the end of the piece).  Any other piece belongs
  to the value before it, comma included (``"TNF-α, 10 ng/ml"``, ``"ratio 1:10"``).
  Empty pieces (``",,"``, a trailing comma) are dropped; text before the first key is
  kept under the key ``unlabelled``.
- **Keys** are normalised (:func:`key_form`: Unicode NFKC, case, whitespace, punctuation
  and a plural ``s`` ignored, so "Cell type", "cell_type", "celltype" and "cell types" are
  one key) and mapped through :data:`SYNONYMS` to a canonical name (:func:`canonical_key`).
  A key not in the table is named by its spelling in snake case (``"cell cycle phase"``
  -> ``cell_cycle_phase``).
- **Values** are trimmed; :data:`MISSING_VALUES` ("NA", "unknown", "", ...) are missing
  (``None``).  Ages (:data:`NUMERIC_KEYS`) become numbers in years, the unit taken from
  the value (``"34 yrs"``, ``"8 weeks"``, ``"P7"``) or the key (``"age (years): 34"``);
  ranges and stages (``"40-50"``, ``"E14.5"``) are missing.
- A key given twice in one text keeps both values, joined by ``"; "``.

The raw text is never changed: the parsed fields are read next to it.

Examples
--------
>>> parse_characteristics("Tissue: liver,cell types: hepatocyte, periportal,Age (years): 54")
{'tissue': 'liver', 'cell_type': 'hepatocyte, periportal', 'age': 54.0}
>>> parse_characteristics("genotype: Cre:ERT2,time: ZT 12:00,sex: NA")
{'genotype': 'Cre:ERT2', 'time': 'ZT 12:00', 'sex': None}
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Iterable
from typing import overload

__all__ = [
    "BLANK",
    "MISSING_VALUES",
    "NUMERIC_KEYS",
    "PAIR",
    "SYNONYMS",
    "TEXT",
    "UNLABELLED",
    "canonical_key",
    "classify_piece",
    "extend_value",
    "is_missing",
    "join_values",
    "key_form",
    "key_names",
    "parse_age",
    "parse_characteristics",
    "parse_value",
    "split_pairs",
]

#: Canonical key -> the spellings GEO submitters use for it.  Spellings are compared by
#: :func:`key_form` (case, spaces, punctuation and a plural "s" do not matter), so
#: "Cell Types", "cell_type" and "celltype" need no entry of their own.
SYNONYMS: dict[str, tuple[str, ...]] = {
    "tissue": ("tissue", "organ", "tissue type", "tissue source", "source tissue",
               "tissue/organ", "organ/tissue", "body site"),
    "cell_type": ("cell type", "cell population", "cell subtype"),
    "cell_line": ("cell line", "cell line name", "cell-line name"),
    "sex": ("sex", "gender", "sex (gender)"),
    "age": ("age", "donor age", "patient age", "age at collection"),
    "disease": ("disease", "disease state", "disease status", "diagnosis"),
    "treatment": ("treatment", "agent", "treated with", "drug treatment"),
    "genotype": ("genotype", "genotype/variation", "genotype variation"),
    "time": ("time", "time point", "timepoint"),
    "donor": ("donor", "donor id", "individual", "subject", "subject id", "patient",
              "patient id"),
    "strain": ("strain", "mouse strain", "strain background"),
    "development_stage": ("developmental stage", "development stage", "stage"),
}  # fmt: skip

#: Keys whose values are numbers: key -> unit of the number (ages in years).
NUMERIC_KEYS: dict[str, str] = {"age": "years"}

#: Values (compared case-insensitively, trimmed) that mean "not given".
MISSING_VALUES = frozenset(
    {"", "na", "n/a", "n.a.", "nan", "null", "none given", "unknown", "unk", "not known",
     "not applicable", "not available", "not specified", "not determined", "not collected",
     "missing", "-", "--", "?"}
)  # fmt: skip

#: Key of text found before the first ``key:`` of a characteristics text.
UNLABELLED = "unlabelled"

# a piece that starts a pair: key (letter first, no colon, <= 60 chars), ":", space or end
_PAIR = re.compile(r"\s*(?P<key>[^\W\d_][^:]{0,59}?)\s*:(?:\s(?P<value>.*))?\s*", re.DOTALL)
_NOT_KEY_CHARS = re.compile(r"[\W_]+")
_PLURAL_KEEP = ("ss", "us", "is", "ies")  # class, status, diagnosis, species
_PLURAL_WORDS = frozenset({"species", "series", "diabetes", "sepsis", "mets", "days"})
# "age (years)", "age [yrs]", "age_years", "age in weeks": a unit carried by the key
_UNIT_WORDS = r"years?|yrs?|y|months?|mos?|weeks?|wks?|w|days?|d|hours?|hrs?|h"
_KEY_UNIT = re.compile(
    rf"^(?P<base>.*?)[\s_\-,]*[\(\[]?\s*(?:in\s+)?(?P<unit>{_UNIT_WORDS})\s*[\)\]]?\s*$",
    re.IGNORECASE,
)
_AGE = re.compile(
    rf"^\s*(?P<n>\d+(?:\.\d+)?)\s*(?P<unit>{_UNIT_WORDS}|m)?\.?\s*(?:old)?\s*$", re.IGNORECASE
)
_POSTNATAL = re.compile(r"^\s*P(?P<n>\d+(?:\.\d+)?)\s*$", re.IGNORECASE)
_YEARS_PER = {"y": 1.0, "m": 1 / 12, "w": 7 / 365.25, "d": 1 / 365.25, "h": 1 / 8766}


def _singular(form: str) -> str:
    if (
        len(form) > 3
        and form.endswith("s")
        and not form.endswith(_PLURAL_KEEP)
        and form not in _PLURAL_WORDS
    ):
        return form[:-1]
    return form


def key_form(key: str) -> str:
    """The comparison form of a key: NFKC, case-folded, letters and digits only, singular.

    Examples
    --------
    >>> {key_form(k) for k in ("Cell type", "cell_type", "celltype", "cell types", "CELL-TYPE")}
    {'celltype'}
    >>> key_form("Diagnosis"), key_form("status")
    ('diagnosis', 'status')
    """
    folded = unicodedata.normalize("NFKC", key).casefold()
    return _singular(_NOT_KEY_CHARS.sub("", folded))


_SYNONYM_FORMS: dict[str, str] = {
    key_form(spelling): canonical
    for canonical, spellings in SYNONYMS.items()
    for spelling in (canonical, *spellings)
}


def _snake(key: str) -> str:
    words = _NOT_KEY_CHARS.sub(" ", unicodedata.normalize("NFKC", key).casefold()).split()
    if not words:
        return UNLABELLED
    words[-1] = _singular(words[-1])
    name = "_".join(words)
    return name if name[0].isalpha() else f"k_{name}"


def canonical_key(key: str) -> tuple[str, str | None]:
    """``(canonical name, unit)`` of a raw key; ``unit`` is the unit the key names, if any.

    Examples
    --------
    >>> canonical_key("Gender"), canonical_key("age (years)"), canonical_key("Age_weeks")
    (('sex', None), ('age', 'years'), ('age', 'weeks'))
    >>> canonical_key("Cell Cycle Phases")
    ('cell_cycle_phase', None)
    """
    key = key.strip()
    if not key:
        return UNLABELLED, None
    known = _SYNONYM_FORMS.get(key_form(key))
    if known is not None:
        return known, None
    m = _KEY_UNIT.match(key)
    if m and m["base"]:
        base = _SYNONYM_FORMS.get(key_form(m["base"]))
        if base in NUMERIC_KEYS:
            return base, m["unit"].lower()
    return _snake(key), None


#: Kinds of the comma-separated pieces of a characteristics text.
BLANK, PAIR, TEXT = 0, 1, 2


def classify_piece(piece: str) -> tuple[int, str, str]:
    """``(kind, key, value)`` of one comma-separated piece: a ``PAIR`` (``key: value``),
    ``BLANK`` (nothing but spaces) or ``TEXT`` (part of the value before it).

    Examples
    --------
    >>> classify_piece(" Cell type: T cell "), classify_piece(" 10 ng/ml"), classify_piece(" ")
    ((1, 'Cell type', 'T cell'), (2, '', '10 ng/ml'), (0, '', ''))
    """
    m = _PAIR.fullmatch(piece)
    if m is not None:
        return PAIR, m["key"], (m["value"] or "").strip()
    if not piece.strip():
        return BLANK, "", ""
    return TEXT, "", piece.strip()


def extend_value(value: str, piece: str) -> str:
    """A value continued by the next piece of text (the comma between them kept)."""
    return f"{value},{piece}".strip() if value else piece.strip()


def split_pairs(text: str) -> list[tuple[str, str]]:
    """The ``(raw key, raw value)`` pairs of one characteristics text, in order.

    Examples
    --------
    >>> split_pairs("cell line: HepG2,treatment: TNF-α, 10 ng/ml,,time: 12:00")
    [('cell line', 'HepG2'), ('treatment', 'TNF-α, 10 ng/ml'), ('time', '12:00')]
    >>> split_pairs("HepG2 cells, passage 4,sex: F")
    [('', 'HepG2 cells, passage 4'), ('sex', 'F')]
    """
    pairs: list[list[str]] = []
    for piece in text.split(","):
        kind, key, value = classify_piece(piece)
        if kind == PAIR:
            pairs.append([key, value])
        elif kind == TEXT:
            if pairs:
                pairs[-1][1] = extend_value(pairs[-1][1], piece)
            else:
                pairs.append(["", value])
    return [(k, v) for k, v in pairs]


def is_missing(value: str) -> bool:
    """Whether a (trimmed) value means "not given" (:data:`MISSING_VALUES`)."""
    return value.casefold() in MISSING_VALUES


def parse_age(value: str, unit: str | None = None) -> float | None:
    """An age in years from text such as ``"34"``, ``"34 yrs"``, ``"8 weeks"``, ``"P7"``.

    ``unit`` is the unit the key names (``"age (weeks)"``), used when the value has none;
    without either, years.  Ranges, stages and words give ``None``.

    Examples
    --------
    >>> parse_age("34 years old"), parse_age("6 mo"), parse_age("8", "weeks")
    (34.0, 0.5, 0.15331964407939766)
    >>> parse_age("P7") == 7 / 365.25, parse_age("40-50"), parse_age("E14.5")
    (True, None, None)
    """
    m = _AGE.match(value)
    if m is not None:
        number, word = float(m["n"]), (m["unit"] or unit or "y").lower()
    else:
        m = _POSTNATAL.match(value)
        if m is None:
            return None
        number, word = float(m["n"]), "d"
    factor = _YEARS_PER.get("m" if word.startswith("mo") or word == "m" else word[0])
    if factor is None or not math.isfinite(number):  # pragma: no cover - regex bounds it
        return None
    return number * factor


def parse_value(canonical: str, value: str, unit: str | None = None) -> str | float | None:
    """A parsed value: ``None`` if missing, a number for :data:`NUMERIC_KEYS`, else text.

    Examples
    --------
    >>> parse_value("sex", " N/A "), parse_value("sex", " male "), parse_value("age", "54")
    (None, 'male', 54.0)
    """
    value = value.strip()
    if is_missing(value):
        return None
    if canonical in NUMERIC_KEYS:
        return parse_age(value, unit)
    return value


def parse_characteristics(text: str | None) -> dict[str, str | float | None]:
    """One characteristics text as ``{canonical key: value}`` (see the module docs).

    Examples
    --------
    >>> parse_characteristics("treatment: DMSO,Treatment: 24 h,gender: female")
    {'treatment': 'DMSO; 24 h', 'sex': 'female'}
    >>> parse_characteristics(None), parse_characteristics("")
    ({}, {})
    """
    pairs = split_pairs(text or "")
    counts: dict[str, int] = {}
    for raw_key, _ in pairs:
        counts[raw_key] = counts.get(raw_key, 0) + 1
    names = key_names(counts.items())  # spellings of one unknown key are one key
    out: dict[str, str | float | None] = {}
    for raw_key, raw_value in pairs:
        key = names[raw_key]
        value = parse_value(key, raw_value, canonical_key(raw_key)[1])
        out[key] = join_values(out[key], value) if key in out else value
    return out


@overload
def join_values(first: str | None, second: str | None) -> str | None: ...
@overload
def join_values(first: str | float | None, second: str | float | None) -> str | float | None: ...
def join_values(first: str | float | None, second: str | float | None) -> str | float | None:
    """The value of a key given twice: both texts joined by ``"; "`` (a number: the first).

    Examples
    --------
    >>> join_values("DMSO", "24 h"), join_values(None, "24 h"), join_values(34.0, 35.0)
    ('DMSO; 24 h', '24 h', 34.0)
    """
    if first is None:
        return second
    if second is None or not isinstance(first, str) or not isinstance(second, str):
        return first
    return f"{first}; {second}"


def key_names(spellings: Iterable[tuple[str, int]]) -> dict[str, str]:
    """Canonical name of every raw key, given ``(raw key, samples)`` counts of a column.

    Keys of :data:`SYNONYMS` keep their canonical name; other keys that share a
    :func:`key_form` are one key, named after their most common spelling (ties: the
    alphabetically first), so names do not depend on which spelling a sample used.

    Examples
    --------
    >>> key_names([("Cell Cycle Phase", 3), ("cellcyclephase", 1), ("Gender", 2)])
    {'Cell Cycle Phase': 'cell_cycle_phase', 'cellcyclephase': 'cell_cycle_phase', 'Gender': 'sex'}
    """
    counted = list(spellings)
    best: dict[str, tuple[int, str]] = {}
    for raw, n in counted:
        name, _ = canonical_key(raw)
        if name in SYNONYMS or name == UNLABELLED:
            continue
        form = key_form(raw)
        old = best.get(form)
        if old is None or (-n, raw) < (-old[0], old[1]):
            best[form] = (n, raw)
    out = {}
    for raw, _ in counted:
        name, _ = canonical_key(raw)
        if name not in SYNONYMS and name != UNLABELLED:
            name = _snake(best[key_form(raw)][1])
        out[raw] = name
    return out
