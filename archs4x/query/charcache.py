"""``characteristics_ch1`` of a whole file, parsed once and cached next to its metadata.

:class:`ParsedCharacteristics` holds the parse of a column (see
:mod:`archs4x.query.characteristics`) in a form that answers fast at a million samples:

- ``codes``: for every sample, which distinct characteristics text it has;
- one row per (distinct text, key) with the key's spelling, its value (text, ``None`` if
  missing) and, for numeric keys, the number.

Every question (a key as a field, key counts over a selection) is then NumPy work over
the distinct texts plus one ``take`` by sample.  For a file, the parse is stored as two
Arrow IPC files in the file's metadata cache folder (:meth:`MetaCache.directory`, keyed by
the file's identity, so a changed file is never served a stale parse) and memory-mapped
afterwards: :func:`parsed_characteristics` costs the parse once per file version.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import xarray as xr

from ..backends.positions import sample_positions
from ..storage.caches import LRUCache
from .characteristics import (
    BLANK,
    NUMERIC_KEYS,
    PAIR,
    canonical_key,
    classify_piece,
    extend_value,
    is_missing,
    join_values,
    key_names,
    parse_value,
)
from .coded import Coded
from .columns import FIELD_ENCODING, sample_column
from .metacache import MetaCache

__all__ = [
    "CHARACTERISTICS_FIELD",
    "PARSER_VERSION",
    "ParsedCharacteristics",
    "characteristics_source",
    "parsed_characteristics",
]

#: The sample field characteristics are parsed from.
CHARACTERISTICS_FIELD = "characteristics_ch1"
#: Version of the parse stored on disk; bump it when the parser's output changes.
PARSER_VERSION = 2

_parsed: LRUCache[ParsedCharacteristics] = LRUCache("characteristics", capacity=lambda: 8)
_fields: LRUCache[Any] = LRUCache(
    "characteristic-fields",
    capacity=lambda: 256 * 2**20,  # bytes
    cost=lambda f: f.nbytes if isinstance(f, np.ndarray) else f.codes.nbytes + f.values.nbytes,
)


class ParsedCharacteristics:
    """The parsed characteristics of a column of texts (one per sample).

    Parameters
    ----------
    codes : int array
        Per sample, the index of its text among the distinct texts (``-1``: no text).
    table : pyarrow.Table
        One row per (distinct text, key): ``text`` (int32), ``key`` (int32 index into
        ``keys``), ``spelling`` (int32 index into ``spellings``), ``value`` (string or
        null when missing) and ``number`` (float64, numeric keys only).
    keys, spellings : list of str
        Canonical key names and raw key spellings.

    Examples
    --------
    >>> p = ParsedCharacteristics.parse(pa.array(
    ...     ["tissue: liver,Age: 54 y", "Tissue: liver", None, "organ: lung,sex: NA"]))
    >>> p.keys
    ['tissue', 'age', 'sex']
    >>> p.field("tissue").decode().to_pylist(), p.field("age").tolist()
    (['liver', 'liver', None, 'lung'], [54.0, nan, nan, nan])
    """

    def __init__(self, codes: np.ndarray, table: pa.Table, keys: list[str],
                 spellings: list[str]) -> None:  # fmt: skip
        self.codes = np.asarray(codes, dtype=np.int64)
        self.table = table
        self.keys = list(keys)
        self.spellings = list(spellings)
        self._text = table.column("text").to_numpy().astype(np.int64)
        self._key = table.column("key").to_numpy().astype(np.int64)

    def __len__(self) -> int:
        return int(self.codes.size)

    # -- building -------------------------------------------------------------------
    @classmethod
    def parse(cls, col: pa.Array | pa.ChunkedArray) -> ParsedCharacteristics:
        """Parse a column of characteristics texts.

        Exactly :func:`~archs4x.query.characteristics.split_pairs` on every text, done
        column-wise: texts are cut at commas by Arrow, each *distinct* piece is
        classified once (:func:`~archs4x.query.characteristics.classify_piece`), pieces
        are grouped into pairs with NumPy, and only values that span several pieces, the
        keys, and the distinct values are handled one by one in Python.
        """
        coded = Coded.encode(col if len(col) else pa.array([], pa.large_string()))
        n_texts = len(coded.values)
        per_text = np.bincount(coded.codes[coded.codes >= 0], minlength=n_texts)
        parts = pc.split_pattern(coded.values, pattern=",")
        parent = np.asarray(pc.list_parent_indices(parts).to_numpy(), dtype=np.int64)
        pieces = Coded.encode(pc.list_flatten(parts))
        piece_text = pieces.values.to_pylist()
        classified = [classify_piece(p) for p in piece_text]
        kind = np.fromiter((c[0] for c in classified), np.int8, len(classified))
        # the non-blank pieces, in text order; a group (one pair) starts at a key, or at
        # the first piece of a text (text before any key: "unlabelled")
        kept = kind[pieces.codes] != BLANK
        code, text = pieces.codes[kept], parent[kept]
        first = np.ones(code.size, dtype=bool)
        first[1:] = text[1:] != text[:-1]
        starts = np.flatnonzero((kind[code] == PAIR) | first)
        sizes = np.diff(np.append(starts, code.size))
        # spellings (raw keys) of the groups
        spelling_ids: dict[str, int] = {}
        piece_spelling = np.fromiter(
            (spelling_ids.setdefault(c[1], len(spelling_ids)) for c in classified),
            np.int64, len(classified),
        )  # fmt: skip
        values = [c[2] for c in classified]  # value of a one-piece group, by piece
        group_value = code[starts].copy()
        for g in np.flatnonzero(sizes > 1):  # values holding commas: joined in order
            s = starts[g]
            value = values[code[s]]
            for c in code[s + 1 : s + sizes[g]]:
                value = extend_value(value, piece_text[c])
            group_value[g] = len(values)
            values.append(value)
        rows_text = text[starts]
        rows_spelling = piece_spelling[code[starts]]
        spellings = list(spelling_ids)
        # canonical keys, named from the whole column's counts
        samples = np.bincount(rows_spelling, weights=per_text[rows_text],
                              minlength=len(spellings))  # fmt: skip
        names = key_names(zip(spellings, samples.astype(np.int64).tolist(), strict=False))
        used, first_row = np.unique(rows_spelling, return_index=True)
        used = used[np.argsort(first_row)]  # keys in order of first appearance
        keys: dict[str, int] = {}
        key_of = np.full(max(len(spellings), 1), -1, dtype=np.int64)
        for sp in used:
            key_of[sp] = keys.setdefault(names[spellings[sp]], len(keys))
        rows_key = key_of[rows_spelling] if rows_spelling.size else rows_spelling
        # missing values and numbers: once per distinct value
        missing = np.fromiter((is_missing(v) for v in values), bool, len(values))
        number = np.full(rows_text.size, np.nan)
        numeric = np.flatnonzero(np.isin(rows_key, [keys[k] for k in NUMERIC_KEYS if k in keys]))
        pairs = np.stack([rows_spelling[numeric], group_value[numeric]], axis=1)
        distinct, back = np.unique(pairs.reshape(-1, 2), axis=0, return_inverse=True)
        parsed = np.full(len(distinct), np.nan)
        for i, (sp, v) in enumerate(distinct.tolist()):  # once per (spelling, value)
            got = parse_value(names[spellings[sp]], values[v], canonical_key(spellings[sp])[1])
            parsed[i] = np.nan if got is None else got
        number[numeric] = parsed[back.reshape(-1)]
        value_id = np.where(missing[group_value], -1, group_value)
        keep, value_id, number = _merge_repeated_keys(rows_text, rows_key, value_id, number,
                                                      values)  # fmt: skip
        value_array = pa.array(values, pa.large_string()).take(
            pa.array(value_id, pa.int64(), mask=value_id < 0))  # fmt: skip
        table = pa.table({
            "text": pa.array(rows_text[keep], pa.int32()),
            "key": pa.array(rows_key[keep], pa.int32()),
            "spelling": pa.array(rows_spelling[keep], pa.int32()),
            "value": value_array,
            "number": pa.array(number, pa.float64(), mask=np.isnan(number)),
        })  # fmt: skip
        return cls(coded.codes, table, list(keys), spellings)

    # -- storage --------------------------------------------------------------------
    def save(self, directory: Path, stem: str) -> None:
        """Write to ``directory/stem.{table,codes}.arrow`` (each written, then renamed)."""
        meta = {b"keys": json.dumps(self.keys).encode(),
                b"spellings": json.dumps(self.spellings).encode()}  # fmt: skip
        table = self.table.replace_schema_metadata(meta)
        codes = pa.table({"text": pa.array(self.codes.astype(np.int32))})
        for name, content in (("table", table), ("codes", codes)):
            _atomic_ipc(directory / f"{stem}.{name}.arrow", content)

    @classmethod
    def load(cls, directory: Path, stem: str) -> ParsedCharacteristics | None:
        """The parse saved under ``stem``, memory-mapped, or None if there is none."""
        paths = [directory / f"{stem}.{name}.arrow" for name in ("table", "codes")]
        if not all(p.exists() for p in paths):
            return None
        table, codes = (_read_ipc(p) for p in paths)
        meta = table.schema.metadata or {}
        keys, spellings = (json.loads(meta[k]) for k in (b"keys", b"spellings"))
        return cls(codes.column("text").to_numpy(), table.replace_schema_metadata(None), keys,
                   spellings)  # fmt: skip

    # -- questions ------------------------------------------------------------------
    def field(self, key: str) -> Coded | np.ndarray:
        """The values of ``key`` for every sample: a :class:`Coded` text column, or a
        float64 array (NaN: missing) for :data:`NUMERIC_KEYS`.

        Raises
        ------
        KeyError
            No text has ``key``.
        """
        try:
            k = self.keys.index(key)
        except ValueError:
            raise KeyError(key) from None
        rows = np.flatnonzero(self._key == k)
        texts = self._text[rows]
        if key in NUMERIC_KEYS:
            per_text = np.full(self.n_texts + 1, np.nan)
            number = self.table.column("number").take(pa.array(rows)).to_numpy(
                zero_copy_only=False)  # fmt: skip
            per_text[texts] = np.asarray(number, dtype=np.float64)
            return per_text[self.codes]
        values = Coded.encode(self.table.column("value").take(pa.array(rows)))
        per_text = np.full(self.n_texts + 1, -1, dtype=np.int64)
        per_text[texts] = values.codes
        return Coded(per_text[self.codes], values.values)

    @property
    def n_texts(self) -> int:
        """Number of distinct texts (every one is some sample's)."""
        return int(self.codes.max(initial=-1)) + 1

    def summary(self, positions: np.ndarray | None = None, examples: int = 3) -> pd.DataFrame:
        """Keys found in the samples at ``positions`` (all when ``None``), with counts.

        Columns: ``samples`` (samples giving the key), ``missing`` (of those, with a
        missing value), ``distinct`` (distinct values), ``spellings`` (raw spellings, most
        used first) and ``examples`` (most common values); rows sorted by ``samples``.
        """
        codes = self.codes if positions is None else self.codes[positions]
        per_text = np.bincount(codes[codes >= 0], minlength=self.n_texts)
        weight = per_text[self._text] if self._text.size else np.zeros(0, np.int64)
        df = pd.DataFrame({
            "key": self._key, "spelling": self.table.column("spelling").to_numpy(),
            "value": self.table.column("value").to_pandas(), "w": weight,
        })  # fmt: skip
        df = df[df["w"] > 0]
        columns = ["samples", "missing", "distinct", "spellings", "examples"]
        if df.empty:
            return pd.DataFrame(columns=columns, index=pd.Index([], name="key"))
        samples = df.groupby("key")["w"].sum()
        missing = df[df["value"].isna()].groupby("key")["w"].sum()
        given = df[df["value"].notna()]
        by_value = given.groupby(["key", "value"])["w"].sum().reset_index()
        by_value = by_value.sort_values(["key", "w", "value"], ascending=[True, False, True])
        distinct = by_value.groupby("key").size()
        shown = by_value.groupby("key").head(examples).groupby("key")["value"].agg(list)
        by_spelling = df.groupby(["key", "spelling"])["w"].sum().reset_index()
        by_spelling = by_spelling.sort_values(["key", "w", "spelling"],
                                              ascending=[True, False, True])  # fmt: skip
        names = np.asarray(self.spellings, dtype=object)
        spelt = by_spelling.groupby("key")["spelling"].agg(lambda s: list(names[s.to_numpy()]))
        out = pd.DataFrame({
            "samples": samples,
            "missing": missing.reindex(samples.index, fill_value=0),
            "distinct": distinct.reindex(samples.index, fill_value=0),
            "spellings": spelt.reindex(samples.index),
            "examples": shown.reindex(samples.index),
        })  # fmt: skip
        out["examples"] = [v if isinstance(v, list) else [] for v in out["examples"]]
        out = out.astype({"samples": np.int64, "missing": np.int64, "distinct": np.int64})
        out.index = pd.Index(np.asarray(self.keys, dtype=object)[out.index.to_numpy()],
                             name="key")  # fmt: skip
        order = np.lexsort((out.index.to_numpy().astype(str), -out["samples"].to_numpy()))
        return out.iloc[order]


def _merge_repeated_keys(text: np.ndarray, key: np.ndarray, value_id: np.ndarray,
                         number: np.ndarray, values: list[str]):  # fmt: skip
    """Keep one row per (text, key): a key given twice gets its values joined by "; ".

    Returns the rows kept (in order) and their value ids and numbers; joined values are
    appended to ``values``.
    """
    order = np.lexsort((np.arange(text.size), key, text))
    same = (text[order][1:] == text[order][:-1]) & (key[order][1:] == key[order][:-1])
    if not same.any():
        return np.arange(text.size), value_id, number
    drop = np.zeros(text.size, dtype=bool)
    value_id, number = value_id.copy(), number.copy()
    heads = np.flatnonzero(np.append(True, ~same))  # positions in ``order`` starting a run
    ends = np.append(heads[1:], text.size)
    repeated = ends - heads > 1
    for h, e in zip(heads[repeated].tolist(), ends[repeated].tolist(), strict=True):
        rows = order[h:e]
        joined: str | None = None
        first_number: float | None = None
        for r in rows:
            joined = join_values(joined, None if value_id[r] < 0 else values[value_id[r]])
            if first_number is None and not np.isnan(number[r]):
                first_number = float(number[r])
        if joined is None:
            value_id[rows[0]] = -1
        else:
            value_id[rows[0]] = len(values)
            values.append(joined)
        number[rows[0]] = np.nan if first_number is None else first_number
        drop[rows[1:]] = True
    keep = np.flatnonzero(~drop)
    return keep, value_id[keep], number[keep]


def _atomic_ipc(path: Path, table: pa.Table) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        with pa.ipc.new_file(tmp, table.schema) as writer:
            writer.write_table(table)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _read_ipc(path: Path) -> pa.Table:
    with pa.memory_map(str(path), "r") as mapped:
        return pa.ipc.open_file(mapped).read_all()


def _stem(repair: bool) -> str:
    return f"characteristics.p{PARSER_VERSION}.{'repaired' if repair else 'raw'}"


def characteristics_source(ds: xr.Dataset) -> tuple[Any, bool, np.ndarray] | None:
    """``(source, repair, positions)`` when ``ds``'s characteristics are its file's field.

    None when the Dataset is not read by position from a file (in memory, relabelled,
    or with a ``characteristics_ch1`` coordinate of the user's own).
    """
    if CHARACTERISTICS_FIELD not in ds.coords:
        return None
    located = sample_positions(ds)
    enc = ds.coords[CHARACTERISTICS_FIELD].encoding
    field, source_key, repair_key = FIELD_ENCODING
    if located is None or enc.get(field) != CHARACTERISTICS_FIELD:
        return None
    positions, source = located
    if enc.get(source_key) != source:
        return None
    return source, bool(enc.get(repair_key, False)), positions


def file_characteristics(source: Any, repair: bool) -> ParsedCharacteristics:
    """The parse of a file's ``characteristics_ch1`` (memory, disk cache, or parsed now)."""
    cache = MetaCache(source, repair=repair)
    cache.source.check()
    memo_key = (cache.source.cache_key, repair)
    hit = _parsed.get(memo_key)
    if hit is not None:
        return hit
    directory = cache.directory()
    parsed = ParsedCharacteristics.load(directory, _stem(repair))
    if parsed is None:
        parsed = ParsedCharacteristics.parse(cache.column(CHARACTERISTICS_FIELD))
        parsed.save(directory, _stem(repair))
        cache.source.check()  # the file must not have changed while it was parsed
    return _parsed.put(memo_key, parsed)


def file_characteristic(source: Any, repair: bool, key: str) -> Coded | np.ndarray:
    """Key ``key`` over all samples of a file (built once per process)."""
    parsed = file_characteristics(source, repair)
    memo_key = (MetaCache(source, repair=repair).source.cache_key, repair, key)
    return _fields.get_or_make(memo_key, lambda: parsed.field(key))


def parsed_characteristics(ds: xr.Dataset) -> tuple[ParsedCharacteristics, np.ndarray | None]:
    """The parse that holds ``ds``'s samples, and their positions in it (None: in order).

    File-backed Datasets use the file's cached parse at the samples' positions; others
    parse their own ``characteristics_ch1`` values.

    Raises
    ------
    KeyError
        ``ds`` has no ``characteristics_ch1``.

    Examples
    --------
    >>> import archs4x
    >>> ds = archs4x.open_dataset(archs4x.datasets.example_file())
    >>> parsed, positions = parsed_characteristics(ds.isel(sample=[5, 1]))
    >>> positions.tolist(), "tissue" in parsed.keys
    ([5, 1], True)
    """
    located = characteristics_source(ds)
    if located is not None:
        source, repair, positions = located
        return file_characteristics(source, repair), positions
    return ParsedCharacteristics.parse(sample_column(ds, CHARACTERISTICS_FIELD)), None
