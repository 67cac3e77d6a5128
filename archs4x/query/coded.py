"""Dictionary-coded metadata columns: one code per sample into a table of distinct values.

Metadata text repeats a lot (a million samples share a few thousand dates, instruments,
tissues), so typed filters and facets work on the *distinct* values and map the answer
back to the samples with one NumPy ``take``: a test runs once per distinct value, a
value count is one ``bincount``.  A code of ``-1`` is a missing value (null).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["Coded"]


@dataclass(frozen=True)
class Coded:
    """A column as ``codes`` (int64, ``-1`` for missing) into ``values`` (distinct values).

    Examples
    --------
    >>> c = Coded.encode(pa.array(["b", None, "a", "b"]))
    >>> c.codes.tolist(), c.values.to_pylist()
    ([0, -1, 1, 0], ['b', 'a'])
    >>> c.take(np.array([3, 2])).decode().to_pylist()
    ['b', 'a']
    >>> c.counts().tolist()
    [2, 1]
    """

    codes: np.ndarray
    values: pa.Array

    @classmethod
    def encode(cls, col: pa.Array | pa.ChunkedArray) -> Coded:
        """Code an Arrow column (strings or numbers); nulls get code ``-1``."""
        if isinstance(col, pa.ChunkedArray):
            col = col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
        if pa.types.is_string(col.type):
            col = col.cast(pa.large_string())
        if len(col) == 0:
            return cls(np.zeros(0, np.int64), pa.array([], col.type))
        enc = pc.dictionary_encode(col)
        codes = np.asarray(pc.fill_null(enc.indices, -1).to_numpy(zero_copy_only=False),
                           dtype=np.int64)  # fmt: skip
        return cls(codes, enc.dictionary)

    def __len__(self) -> int:
        return int(self.codes.size)

    def take(self, positions: np.ndarray | None) -> Coded:
        """The rows at ``positions`` (all rows, in order, when ``None``)."""
        if positions is None:
            return self
        return Coded(self.codes[positions], self.values)

    def mask(self, per_value: np.ndarray) -> np.ndarray:
        """Per-row booleans from per-value booleans; missing rows are False."""
        extended = np.append(np.asarray(per_value, dtype=bool), False)
        return extended[self.codes]  # code -1 reads the appended False

    def lookup(self, per_value: npt.ArrayLike, missing: float = np.nan) -> np.ndarray:
        """Per-row values from per-value values (``missing`` for missing rows)."""
        extended = np.append(np.asarray(per_value, dtype=np.float64), missing)
        return extended[self.codes]

    def counts(self) -> np.ndarray:
        """Rows holding each value (int64, aligned with ``values``)."""
        present = self.codes[self.codes >= 0]
        return np.bincount(present, minlength=len(self.values)).astype(np.int64)

    def decode(self) -> pa.Array:
        """The column itself, as an Arrow array."""
        idx = pa.array(self.codes, pa.int64(), mask=self.codes < 0)
        return self.values.take(idx)
