"""Interrupted conversions: kill a real writer process, refuse the store, resume it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import archs4x
from archs4x import IncompleteZarrError, open_zarr, to_zarr

OPTS = {"layout": "sample", "chunks": (4500, 1), "shards": (4500, 1), "workers": 1}
WRITER = """
import sys, archs4x
from archs4x import to_zarr
to_zarr(archs4x.open_dataset(sys.argv[1]), sys.argv[2], **eval(sys.argv[3]))
"""


def _files(root: Path) -> dict[str, object]:
    """Every file of a store: bytes, or parsed JSON for metadata documents."""
    out: dict[str, object] = {}
    for p in sorted(root.rglob("*")):
        if p.is_file():
            raw = p.read_bytes()
            out[str(p.relative_to(root))] = json.loads(raw) if p.name == "zarr.json" else raw
    return out


def _recorded(out: Path) -> int:
    c = out / "archs4x_progress" / "write" / "c"
    return len(list(c.iterdir())) if c.exists() else 0


def _kill_partway(gene_file, out: Path) -> int:
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(gene_file), str(out), repr(OPTS)])
    deadline = time.monotonic() + 60
    try:
        while _recorded(out) < 20:
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail("the writer finished (or hung) before it could be interrupted")
            time.sleep(0.005)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    return _recorded(out)


def test_killed_writer_resumes_to_an_identical_store(tmp_path, gene_file):
    ds = archs4x.open_dataset(gene_file)
    ref = Path(to_zarr(ds, tmp_path / "ref.zarr", **OPTS))
    out = tmp_path / "killed.zarr"
    done = _kill_partway(gene_file, out)
    assert 20 <= done < 400
    with pytest.raises(IncompleteZarrError, match=r"\d+/400 units.*resume"):
        open_zarr(out)
    to_zarr(ds, out, **OPTS)  # the same call resumes
    z = open_zarr(out)
    xr.testing.assert_identical(z.compute(), ds.compute())
    a, b = _files(ref), _files(out)
    assert a.keys() == b.keys()
    assert [k for k in a if a[k] != b[k]] == []  # byte-identical chunks and records


def test_resume_rewrites_a_damaged_unit(tmp_path, gene_file):
    ds = archs4x.open_dataset(gene_file)
    out = tmp_path / "s.zarr"
    _kill_partway(gene_file, out)
    chunk = out / "counts" / "c" / "0" / "3"  # unit 3 was recorded before the kill
    assert chunk.exists()
    chunk.write_bytes(chunk.read_bytes()[:100])  # damaged after it was recorded
    to_zarr(ds, out, **OPTS)
    z = open_zarr(out)
    np.testing.assert_array_equal(z.counts.values, ds.counts.values)


def test_overwrite_starts_over(tmp_path, gene_file):
    ds = archs4x.open_dataset(gene_file)
    out = tmp_path / "s.zarr"
    _kill_partway(gene_file, out)
    to_zarr(ds.isel(sample=slice(0, 10)), out, layout="gene", overwrite=True)
    assert open_zarr(out).sizes["sample"] == 10
