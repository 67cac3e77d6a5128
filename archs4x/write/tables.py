"""Counts tables written block by block: any number of samples in bounded memory.

Rows are samples, so a selection streams: each block of samples read from the lazy counts
is appended to the file and dropped.  (Genes as rows would need every sample of a gene
before its row could be written: the whole selection in memory.)

* ``.csv`` / ``.tsv``: two header lines, the Ensembl gene ids and the gene symbols (first
  cells ``geo_accession`` and ``symbol``), then one line per sample: its GSM id and its
  counts.  ``pandas.read_csv(path, header=[0, 1], index_col=0)`` reads it back.
* ``.parquet``: one row per sample, columns ``geo_accession`` (string) and ``counts``
  (``fixed_size_list<uint32>`` of the genes, in file order); the gene ids and symbols are
  in the schema metadata (``archs4x.gene``, ``archs4x.symbol``, JSON lists).  One row
  group per block: a wide table with one column per gene would need ~60 MB of Parquet
  metadata per row group for 67,186 genes.  :func:`read_parquet_counts` reads it back.

Numbers are formatted by Arrow (C++, no Python object per value); the file is written under a
temporary name and renamed into place when complete.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

__all__ = ["SUFFIXES", "CountsTableWriter", "format_rows", "read_parquet_counts"]

SUFFIXES = (".csv", ".tsv", ".parquet")
_VALUES_PER_PASS = 2**20  # numbers formatted per call to Arrow


def format_rows(labels: list[str], values: np.ndarray, sep: str = ",") -> bytes:
    r"""Lines ``label<sep>v1<sep>v2...`` of an integer matrix, formatted by Arrow (C++).

    Examples
    --------
    >>> format_rows(["GSM1", "GSM2"], np.array([[0, 17, 4294967295], [10, 0, 7]], "uint32"))
    b'GSM1,0,17,4294967295\nGSM2,10,0,7\n'
    """
    values = np.asarray(values)
    if values.ndim != 2 or len(labels) != values.shape[0]:
        raise ValueError("one label per row of a 2-D array")
    n_rows, n_cols = values.shape
    if n_rows == 0:
        return b""
    lines = pa.array([str(x) for x in labels], pa.large_string())
    between = pa.scalar(sep, pa.large_string())
    if n_cols:
        cells = pc.cast(pa.array(np.ascontiguousarray(values).ravel()), pa.large_string())
        offsets = pa.array(np.arange(0, n_rows * n_cols + 1, n_cols, dtype=np.int64))
        rows = pc.binary_join(pa.LargeListArray.from_arrays(offsets, cells), between)
        lines = pc.binary_join_element_wise(lines, rows, between)
    newline = pa.scalar("\n", pa.large_string())
    one = pa.LargeListArray.from_arrays(pa.array([0, n_rows], pa.int64()), lines)
    whole = pc.binary_join(one, newline)
    return whole[0].as_buffer().to_pybytes() + b"\n"


def _cell(text: object, sep: str) -> str:
    """A header cell, quoted (CSV style) if it holds the separator, a quote or a newline."""
    s = "" if text is None else str(text)
    if sep in s or '"' in s or "\n" in s:
        return '"' + s.replace('"', '""') + '"'
    return s


def _metadata(genes: list[str], symbols: list[str] | None) -> dict[bytes, bytes]:
    meta = {b"archs4x.gene": json.dumps(genes).encode()}
    if symbols is not None:
        meta[b"archs4x.symbol"] = json.dumps(symbols).encode()
    return meta


class CountsTableWriter:
    """Append blocks of samples (``ids``, ``samples x genes`` uint32) to a table file.

    The file is ``<path>.part`` until :meth:`close` renames it (local paths); fsspec URLs
    (``s3://...``) are written in place (an object appears only when complete).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "x.csv"
    >>> with CountsTableWriter(out, ["ENSG1", "ENSG2"], ["A", "B"]) as w:
    ...     w.write(["GSM1"], np.array([[3, 0]], "uint32"))
    >>> print(out.read_text(), end="")
    geo_accession,ENSG1,ENSG2
    symbol,A,B
    GSM1,3,0
    """

    def __init__(
        self, path: str | os.PathLike, genes: list[str], symbols: list[str] | None
    ) -> None:
        self.target = str(path)
        self.suffix = Path(self.target.rstrip("/")).suffix.lower()
        if self.suffix not in SUFFIXES:
            raise ValueError(f"{self.target!r}: a counts table is .csv, .tsv or .parquet")
        self.genes = [str(g) for g in genes]
        self.local = "://" not in self.target
        self.temp = self.target + ".part" if self.local else self.target
        self._file: Any = self._open()
        self._parquet: pq.ParquetWriter | None = None
        if self.suffix == ".parquet":
            schema = pa.schema(
                [("geo_accession", pa.string()),
                 ("counts", pa.list_(pa.uint32(), len(self.genes)))],
                metadata=_metadata(self.genes, symbols),
            )  # fmt: skip
            self._schema = schema
            self._parquet = pq.ParquetWriter(self._file, schema, compression="zstd")
        else:
            self.sep = "\t" if self.suffix == ".tsv" else ","
            header = [["geo_accession", *self.genes]]
            if symbols is not None:
                header.append(["symbol", *symbols])
            lines = (self.sep.join(_cell(x, self.sep) for x in h) + "\n" for h in header)
            self._file.write("".join(lines).encode())

    def _open(self) -> Any:
        if self.local:
            return open(self.temp, "wb")
        import fsspec

        return fsspec.open(self.target, "wb").open()

    def write(self, ids: list[str], block: np.ndarray) -> None:
        """Append samples ``ids`` with their counts (``len(ids) x n_genes``)."""
        block = np.asarray(block)
        if block.shape != (len(ids), len(self.genes)):
            raise ValueError(
                f"block of shape {block.shape}, expected ({len(ids)}, {len(self.genes)})"
            )
        if self._parquet is not None:
            flat = pa.array(np.ascontiguousarray(block, dtype=np.uint32).ravel())
            counts = pa.FixedSizeListArray.from_arrays(flat, len(self.genes))
            self._parquet.write_table(
                pa.Table.from_arrays([pa.array(ids, pa.string()), counts], schema=self._schema)
            )
        else:  # ~1M values at a time: Arrow's temporaries stay a few tens of MB
            step = max(1, _VALUES_PER_PASS // max(1, len(self.genes)))
            for r0 in range(0, len(ids), step):
                rows = [str(i) for i in ids[r0 : r0 + step]]
                self._file.write(format_rows(rows, block[r0 : r0 + step], self.sep))

    def close(self, *, complete: bool = True) -> None:
        """Finish the file (rename it into place), or delete it (``complete=False``)."""
        try:
            if self._parquet is not None:
                self._parquet.close()
        finally:
            self._file.close()
        if not self.local:
            return
        if complete:
            os.replace(self.temp, self.target)
        else:
            Path(self.temp).unlink(missing_ok=True)

    def __enter__(self) -> CountsTableWriter:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        self.close(complete=exc_type is None)


def read_parquet_counts(path: str | os.PathLike) -> pd.DataFrame:
    """A counts Parquet file written by archs4x as a samples x genes DataFrame.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "x.parquet"
    >>> with CountsTableWriter(out, ["ENSG1", "ENSG2"], ["A", "B"]) as w:
    ...     w.write(["GSM1", "GSM2"], np.array([[3, 0], [1, 2]], "uint32"))
    >>> read_parquet_counts(out)
                   ENSG1  ENSG2
    geo_accession
    GSM1               3      0
    GSM2               1      2
    """
    table = pq.read_table(path)
    genes = json.loads(table.schema.metadata[b"archs4x.gene"])
    counts = table.column("counts").combine_chunks()
    values = counts.flatten().to_numpy().reshape(len(table), len(genes))
    index = pd.Index(table.column("geo_accession").to_pylist(), name="geo_accession")
    return pd.DataFrame(values, index=index, columns=genes)
