"""A file with the real ARCHS4 file's structure, written in minutes, for benchmarks.

The human gene file holds 67,186 x ~1,000,000 counts in chunks of (2000, 1): 34 million
chunks.  What makes reads slow or fast at that scale is the structure (the chunk B-tree,
chunk placement, metadata of a million samples), not the values.  :func:`write_realscale_file`
writes that structure: real counts (from the synthetic count model) for a few thousand
samples, one pre-compressed zero chunk at every other position (``write_direct_chunk``,
a few microseconds a chunk), some columns never written (they read as the fill value),
and every sample metadata field for every sample.  67,186 x 1,000,000 takes a few minutes
and about 5 GB.

Where the real and the never-written samples are is saved next to the file, in
``<file>.json``, so benchmarks can pick them.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import deflate
import h5py
import numpy as np

from .synthetic import (
    _SPECIES,
    SAMPLE_FIELDS,
    _compress_column,
    _CountModel,
    _gene_table,
    _sample_field,
    _SampleLatents,
    _string_dataset,
    _write_features,
)

__all__ = ["realscale_layout", "write_realscale_file"]


def realscale_layout(path: str | os.PathLike) -> dict:
    """The sidecar of a real-scale file: its real and never-written sample columns.

    Examples
    --------
    >>> import tempfile, os
    >>> p = write_realscale_file(os.path.join(tempfile.mkdtemp(), "r.h5"), n_genes=4100,
    ...                          n_samples=300, n_real=20, n_unwritten=5)
    >>> info = realscale_layout(p)
    >>> len(info["real_columns"]), len(info["unwritten_columns"]), info["chunks"]
    (20, 5, 885)
    """
    return json.loads(Path(f"{path}.json").read_text())


def write_realscale_file(
    path: str | os.PathLike,
    *,
    n_genes: int = 67_186,
    n_samples: int = 1_000_000,
    n_real: int = 3_000,
    n_unwritten: int = 500,
    seed: int = 0,
    chunk_rows: int = 2000,
    progress: Callable[[str, int, int], None] | None = None,
) -> Path:
    """Write a file with the real ARCHS4 chunk structure and return its path.

    Parameters
    ----------
    path : path-like
        Where to write; the file appears only when complete (temporary name, then
        rename), with its sidecar ``<path>.json``.
    n_genes, n_samples : int
        Shape of ``data/expression``; the defaults are the human gene file's scale.
    n_real : int
        Samples with real counts from the synthetic count model, at random columns.
    n_unwritten : int
        Samples whose chunks are never written (they read as the fill value, 0).
    seed : int
        Output is a deterministic function of all arguments.
    progress : callable, optional
        ``progress(stage, done, total)`` during the long stages.

    Returns
    -------
    pathlib.Path
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if n_real + n_unwritten > n_samples:
        raise ValueError("n_real + n_unwritten must not exceed n_samples")
    rng = np.random.default_rng([seed, n_genes, n_samples, 91])
    picked = rng.permutation(n_samples)[: n_real + n_unwritten]
    real_cols = np.sort(picked[:n_real])
    unwritten = np.sort(picked[n_real:])
    spec = _SPECIES["human"]
    ids, symbols, biotypes, dup_rows, dup_source = _gene_table(n_genes, spec, rng)
    model = _CountModel(n_genes, rng, dup_rows, dup_source, seed)
    lat = _SampleLatents(n_samples, rng)
    chunk_r = min(chunk_rows, n_genes)
    n_row_chunks = -(-n_genes // chunk_r)
    zero = bytes(deflate.zlib_compress(np.zeros(chunk_r, "<u4").tobytes(), 4))
    real_at = {int(c): i for i, c in enumerate(real_cols)}
    skip = np.zeros(n_samples, dtype=bool)
    skip[unwritten] = True
    t0 = time.perf_counter()

    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        with h5py.File(tmp, "w") as f:
            dset = f.create_dataset(
                "data/expression", shape=(n_genes, n_samples), maxshape=(n_genes, None),
                dtype="<u4", chunks=(chunk_r, 1), compression="gzip", compression_opts=4,
            )  # fmt: skip
            block = 512
            real_chunks: dict[int, list[bytes]] = {}
            for s0 in range(0, n_real, block):
                cols = real_cols[s0 : s0 + block]
                counts = model.block(np.random.default_rng([seed, 5, s0]), lat.single_cell[cols],
                                     lat.tissue[cols], lat.series[cols])  # fmt: skip
                for j, c in enumerate(cols):
                    real_chunks[int(c)] = _compress_column(counts[:, j], chunk_r, 4, False)
            write = dset.id.write_direct_chunk
            step = max(1, n_samples // 100)
            for c in range(n_samples):
                if skip[c]:
                    continue
                pieces = real_chunks.get(c) if c in real_at else None
                for k in range(n_row_chunks):
                    write((k * chunk_r, c), zero if pieces is None else pieces[k])
                if progress is not None and (c % step == 0 or c == n_samples - 1):
                    progress("chunks", c + 1, n_samples)
            _write_features(f, "gene", "2.5", spec, ids, symbols, biotypes, "vlen")
            samples = f.create_group("meta/samples")
            for i, name in enumerate(SAMPLE_FIELDS):
                values = _sample_field(name, lat, spec, "human")
                if name == "singlecellprobability":
                    samples.create_dataset(name, data=values)
                else:
                    _string_dataset(samples, name, values, "vlen")
                if progress is not None:
                    progress("metadata", i + 1, len(SAMPLE_FIELDS))
            info = f.create_group("meta/info")
            for key, val in (("author", "archs4x real-scale structure"),
                             ("version", "2.5"), ("creation-date", "2026-12-03")):  # fmt: skip
                info.create_dataset(key, data=val, dtype=h5py.string_dtype("utf-8"))
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    sidecar = {
        "shape": [n_genes, n_samples],
        "chunks": int(n_row_chunks * (n_samples - unwritten.size)),
        "real_columns": real_cols.tolist(),
        "unwritten_columns": unwritten.tolist(),
        "seconds": round(time.perf_counter() - t0, 1),
    }
    Path(f"{path}.json").write_text(json.dumps(sidecar))
    return path
