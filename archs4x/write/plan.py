"""Plans for writing a counts matrix into Zarr chunks in bounded memory.

A Zarr conversion is cut into *units*: rectangular regions of the output that are
written in one go, each covering whole output shards (or chunks), so that units never
share a stored object and can run in any order, in parallel, and be redone after an
interruption.  A unit is read from the source, written, and forgotten: memory is
bounded by ``in_flight x unit bytes``, never by the matrix.

The gene-major copy is the hard case.  ARCHS4 files store (2000, 1) chunks (2000 genes
of one sample), so a block of 2000 genes x S samples is read from whole source chunks
and written as whole gene-major chunks: one pass, each source chunk inflated once.
When the source cannot read a few rows cheaply (a sample selection, a sample-major
Zarr, any derived array), :func:`plan_conversion` routes the data through an
intermediate array, as ``rechunker`` does: pass 1 reads all features x a band of
samples and writes (rows x band) chunks; pass 2 reads (rows x S) from them.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

__all__ = [
    "DEFAULT_MAX_MEMORY",
    "MEMORY_FACTOR",
    "ConversionPlan",
    "Pass",
    "default_chunks",
    "parse_bytes",
    "plan_conversion",
]

#: Default memory budget of a conversion (all units in flight together).
DEFAULT_MAX_MEMORY = 3 * 2**29  # 1.5 GiB
#: Bytes held per byte of a unit: the block read, its C-ordered copy, encode buffers.
MEMORY_FACTOR = 3
#: Gene layout: genes per inner chunk; one gene over all samples decodes this many genes.
GENE_CHUNK_ROWS = 16
#: Gene layout: samples per chunk (4 MiB chunks with 16 genes).
GENE_CHUNK_COLS = 65_536
#: Sample layout: samples per inner chunk (all features of one sample, 269 kB for genes):
#: a sample selection decodes exactly the samples it holds.
SAMPLE_CHUNK_COLS = 1
#: Sample layout: samples per shard (the unit of writing; ~69 MB for 67,186 genes).
SAMPLE_SHARD_COLS = 256
#: ARCHS4 files store 2000 features per chunk row: gene-major shards align to it.
SOURCE_ROW_CHUNK = 2000


def parse_bytes(value: int | str) -> int:
    """Parse ``"1.5GiB"``, ``"800MB"`` or an int into a number of bytes.

    Examples
    --------
    >>> parse_bytes("1.5GiB"), parse_bytes("800MB"), parse_bytes(1024)
    (1610612736, 800000000, 1024)
    """
    if isinstance(value, int):
        if value <= 0:
            raise ValueError(f"a memory size must be positive, got {value}")
        return value
    import dask.utils

    try:
        n = int(dask.utils.parse_bytes(str(value)))
    except (ValueError, TypeError) as exc:
        raise ValueError(f"cannot parse memory size {value!r} (try '1.5GiB')") from exc
    if n <= 0:
        raise ValueError(f"a memory size must be positive, got {value!r}")
    return n


def default_chunks(
    layout: str, shape: tuple[int, int], itemsize: int = 4, max_memory: int = DEFAULT_MAX_MEMORY
) -> tuple[tuple[int, int], tuple[int, int]]:
    """Default ``(chunks, shards)`` of a (features x samples) counts array.

    ``layout="sample"``: chunks of all features x 1 sample (269 kB for 67,186 genes) in
    shards of 256 samples.  Reading any set of samples decodes exactly those samples,
    whole-matrix scans stream large shards, and the store holds one object per 256
    samples (3,500 objects for 888,821 samples).

    ``layout="gene"``: chunks of 16 genes x 65,536 samples (4 MiB) in shards of 2000
    genes (the ARCHS4 source row chunk) x 65,536 samples, shrunk to the memory budget.
    One gene over 888,821 samples decodes 14 chunks (57 MB) instead of inflating
    888,821 source chunks.

    Examples
    --------
    >>> default_chunks("sample", (67_186, 20_000))
    ((67186, 1), (67186, 256))
    >>> default_chunks("gene", (67_186, 20_000))
    ((16, 20000), (2000, 20000))
    """
    n_f, n_s = shape
    if layout == "sample":
        chunks = (n_f, max(1, min(SAMPLE_CHUNK_COLS, n_s)))
        shard_cols = min(SAMPLE_SHARD_COLS, n_s)
        shard_cols -= shard_cols % chunks[1]
        return chunks, (n_f, max(chunks[1], shard_cols))
    if layout == "gene":
        cols = max(1, min(GENE_CHUNK_COLS, n_s))
        rows = max(1, min(GENE_CHUNK_ROWS, n_f))
        return (rows, cols), (fit_shard_rows(rows, cols, n_f, itemsize, max_memory), cols)
    raise ValueError(f"layout must be 'sample' or 'gene', got {layout!r}")


def fit_shard_rows(chunk_rows: int, cols: int, n_rows: int, itemsize: int, max_memory: int) -> int:
    """Rows of a gene-major shard: a multiple of ``chunk_rows`` that fits the budget.

    Prefers the ARCHS4 source row chunk (2000) or a divisor of it, so that each source
    chunk is inflated once.

    Examples
    --------
    >>> fit_shard_rows(16, 65_536, 67_186, 4, 3 * 2**29)
    2000
    >>> fit_shard_rows(16, 65_536, 67_186, 4, 2**29)
    400
    """
    cap = math.ceil(n_rows / chunk_rows) * chunk_rows
    limit = max(chunk_rows, max_memory // (MEMORY_FACTOR * cols * itemsize))
    target = min(limit, max(SOURCE_ROW_CHUNK, chunk_rows))
    cands = list(range(chunk_rows, target + 1, chunk_rows))
    aligned = [r for r in cands if SOURCE_ROW_CHUNK % r == 0]
    best = aligned[-1] if aligned and 2 * aligned[-1] > cands[-1] else cands[-1]
    return min(best, cap)


@dataclass(frozen=True)
class Pass:
    """One pass of a conversion: the output is cut into ``unit``-shaped regions.

    ``unit`` divides into whole chunks of the array written, so units never share a
    stored object.  ``target`` is ``"final"`` or ``"intermediate"``.
    """

    name: str
    target: str
    shape: tuple[int, int]
    unit: tuple[int, int]

    @property
    def grid(self) -> tuple[int, int]:
        return math.ceil(self.shape[0] / self.unit[0]), math.ceil(self.shape[1] / self.unit[1])

    @property
    def n_units(self) -> int:
        r, c = self.grid
        return r * c

    def region(self, i: int) -> tuple[slice, slice]:
        """The ``(rows, cols)`` slices of unit ``i`` (row-major over the unit grid)."""
        if not 0 <= i < self.n_units:
            raise IndexError(f"unit {i} out of range for {self.n_units} units")
        _, gc = self.grid
        r, c = divmod(i, gc)
        (ur, uc), (nr, nc) = self.unit, self.shape
        return slice(r * ur, min(nr, (r + 1) * ur)), slice(c * uc, min(nc, (c + 1) * uc))

    def regions(self) -> Iterator[tuple[int, tuple[slice, slice]]]:
        for i in range(self.n_units):
            yield i, self.region(i)


@dataclass(frozen=True)
class ConversionPlan:
    """Passes, chunking and concurrency of one conversion.

    Examples
    --------
    >>> plan = plan_conversion((67_186, 20_000), "gene", rows_cheap=True, workers=2)
    >>> [(p.name, p.unit, p.n_units) for p in plan.passes], plan.in_flight
    ([('write', (2000, 20000), 34)], 2)
    >>> plan = plan_conversion((67_186, 20_000), "gene", rows_cheap=False, workers=2)
    >>> [(p.name, p.target, p.unit) for p in plan.passes]
    [('band', 'intermediate', (67186, 998)), ('write', 'final', (2000, 20000))]
    """

    layout: str
    shape: tuple[int, int]
    chunks: tuple[int, int]
    shards: tuple[int, int] | None
    passes: tuple[Pass, ...]
    intermediate_chunks: tuple[int, int] | None
    in_flight: int
    max_memory: int

    @property
    def write_unit(self) -> tuple[int, int]:
        return self.shards or self.chunks


def plan_conversion(
    shape: tuple[int, int],
    layout: str,
    *,
    chunks: tuple[int, int] | None = None,
    shards: tuple[int, int] | str | None = "auto",
    itemsize: int = 4,
    rows_cheap: bool = True,
    max_memory: int | str = DEFAULT_MAX_MEMORY,
    workers: int | None = None,
) -> ConversionPlan:
    """Plan the conversion of a ``shape`` counts matrix to ``layout`` chunks.

    Parameters
    ----------
    shape : (int, int)
        Features x samples.
    layout : {"sample", "gene"}
    chunks, shards : (int, int), optional
        Output chunks and shards; defaults from :func:`default_chunks`.  ``shards=None``
        writes unsharded chunks.
    itemsize : int
        Bytes per count.
    rows_cheap : bool
        Whether the source reads a block of a few thousand rows without decoding all
        rows (true for ARCHS4 files opened by :func:`archs4x.open_dataset`).  When false,
        a gene-major conversion goes through an intermediate array.
    max_memory : int or str
        Budget for all units in flight (each unit costs ~3x its bytes).
    workers : int, optional
        Upper bound on units in flight (default: the number of CPUs).
    """
    import os

    if layout not in ("sample", "gene"):
        raise ValueError(f"layout must be 'sample' or 'gene', got {layout!r}")
    n_f, n_s = (int(s) for s in shape)
    if n_f < 1 or n_s < 1:
        raise ValueError(f"cannot convert an empty counts matrix of shape {shape}")
    budget = parse_bytes(max_memory)
    d_chunks, d_shards = default_chunks(layout, (n_f, n_s), itemsize, budget)
    if chunks is None:
        chunks = d_chunks
        if shards == "auto":
            shards = d_shards
    chunks = _check_pair(chunks, "chunks", (n_f, n_s))
    if shards == "auto":  # user chunks: shard them like the defaults when it fits
        shards = d_shards if _multiple_of(d_shards, chunks) else None
    if shards is not None:
        shards = _check_pair(shards, "shards", None)
        if not _multiple_of(shards, chunks):
            raise ValueError(f"shards {shards} must be multiples of chunks {chunks}")
        shards = (  # never larger than the chunks that cover the array
            min(shards[0], math.ceil(n_f / chunks[0]) * chunks[0]),
            min(shards[1], math.ceil(n_s / chunks[1]) * chunks[1]),
        )
    unit = shards or chunks
    unit_bytes = unit[0] * unit[1] * itemsize
    if MEMORY_FACTOR * unit_bytes > budget:
        raise ValueError(
            f"a write unit of {unit} counts needs ~{MEMORY_FACTOR * unit_bytes / 2**20:.0f} "
            f"MiB, over max_memory={budget / 2**20:.0f} MiB: use smaller chunks/shards "
            "or raise max_memory"
        )
    cpus = os.cpu_count() or 1
    in_flight = max(1, min(workers or cpus, budget // (MEMORY_FACTOR * unit_bytes)))
    final = Pass("write", "final", (n_f, n_s), unit)
    passes: tuple[Pass, ...] = (final,)
    inter = None
    if layout == "gene" and not rows_cheap and unit[0] < n_f:
        band = max(1, budget // (MEMORY_FACTOR * n_f * itemsize * min(in_flight, 2)))
        band = min(band, n_s, SOURCE_ROW_CHUNK)
        if band >= unit[1]:
            band = unit[1]
        inter = (unit[0], band)
        passes = (Pass("band", "intermediate", (n_f, n_s), (n_f, band)), final)
        in_flight = max(1, min(in_flight, budget // (MEMORY_FACTOR * n_f * band * itemsize)))
    return ConversionPlan(
        layout=layout,
        shape=(n_f, n_s),
        chunks=chunks,
        shards=shards,
        passes=passes,
        intermediate_chunks=inter,
        in_flight=int(in_flight),
        max_memory=budget,
    )


def _check_pair(value, name: str, upper: tuple[int, int] | None) -> tuple[int, int]:
    try:
        pair = tuple(int(v) for v in value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be two positive ints, got {value!r}") from exc
    if len(pair) != 2 or min(pair) < 1:
        raise ValueError(f"{name} must be two positive ints, got {value!r}")
    if upper is None:
        return pair
    return (min(pair[0], upper[0]), min(pair[1], upper[1]))


def _multiple_of(outer: tuple[int, int], inner: tuple[int, int]) -> bool:
    return all(o % i == 0 for o, i in zip(outer, inner, strict=True))
