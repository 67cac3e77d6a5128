"""Interrupted conversions: SIGKILL a real writer anywhere, then resume or refuse cleanly.

The writer is a forked copy of this process (importing archs4x anew costs seconds on a
loaded machine) that kills itself with SIGKILL at a seeded random ``os.replace``: every
key of a store is written to a temporary file and renamed, so those are the points where
a store changes.  Kill points fall in each phase: the skeleton (root state, metadata),
the coordinates, the counts shards, their progress records and the final metadata, and
are taken just before or just after the rename.  The reference is the same conversion
run without interruption: the resumed store must equal it byte for byte in its arrays.
"""

from __future__ import annotations

import json
import os
import signal
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import pytest

import archs4x
from archs4x import IncompleteZarrError, open_zarr, to_zarr, verify_zarr

OPTS = {"layout": "sample", "chunks": (4500, 1), "shards": (4500, 4), "workers": 1}
PHASES = ("skeleton", "coordinates", "counts", "records", "final")


@pytest.fixture(scope="module")
def ds(gene_file):
    return archs4x.open_dataset(gene_file).isel(sample=slice(0, 24))


def _files(root: Path) -> dict[str, object]:
    """Every file of a store: bytes, or parsed JSON (the root without its write id)."""
    out: dict[str, object] = {}
    for p in sorted(root.rglob("*")):
        if p.is_file():
            raw = p.read_bytes()
            key = str(p.relative_to(root))
            if key == "zarr.json":
                doc = json.loads(raw)
                doc["attributes"]["archs4x_zarr"].pop("write_id")
                out[key] = doc
            else:
                out[key] = raw
    return out


def _phase(key: str, i: int, n: int) -> str:
    if key == "zarr.json":
        return "final" if i == n - 1 else "skeleton"
    if key.startswith("counts/c/"):
        return "counts"
    if key.startswith("archs4x_progress/") and "/c/" in key:
        return "records"
    if key.startswith(("counts/", "archs4x_progress/")):
        return "skeleton"
    return "coordinates"


def _renames(ds, store: Path, monkeypatch, **opts) -> list[str]:
    """The keys an uninterrupted conversion renames into place, in order."""
    seen: list[str] = []
    real = os.replace

    def spy(a, b, *args, **kwargs):
        seen.append(os.path.relpath(os.fspath(b), store))
        return real(a, b, *args, **kwargs)

    with monkeypatch.context() as m:
        m.setattr(os, "replace", spy)
        to_zarr(ds, store, **opts)
    return seen


def _killed_at(data, store: Path, n: int, after: bool, **opts) -> None:
    """Run ``to_zarr`` in a forked child that SIGKILLs itself at the n-th rename."""
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        try:
            archs4x.clear_caches()  # the parent's reader threads do not exist here
            real, count = os.replace, [0]

            def hook(a, b, *args, **kwargs):
                count[0] += 1
                if count[0] == n and not after:
                    os.kill(os.getpid(), signal.SIGKILL)
                real(a, b, *args, **kwargs)
                if count[0] == n:
                    os.kill(os.getpid(), signal.SIGKILL)

            os.replace = hook
            to_zarr(data, store, **opts)
        finally:
            os._exit(3)  # finished (or failed) without being killed
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, status


@pytest.fixture(scope="module")
def reference(ds, tmp_path_factory):
    ref = tmp_path_factory.mktemp("ref") / "ref.zarr"
    mp = pytest.MonkeyPatch()
    try:
        keys = _renames(ds, ref, mp, **OPTS)
    finally:
        mp.undo()
    return ref, keys


@pytest.mark.parametrize("seed", range(10))
def test_killed_writer_resumes_to_an_identical_store(tmp_path, ds, reference, seed):
    ref, keys = reference
    rng = np.random.default_rng(seed)
    phase = PHASES[seed % len(PHASES)]
    where = [i for i, k in enumerate(keys) if _phase(k, i, len(keys)) == phase]
    n = int(rng.choice(where)) + 1
    after = bool(rng.integers(0, 2))
    out = tmp_path / "killed.zarr"
    _killed_at(ds, out, n, after, **OPTS)
    if (out / "zarr.json").exists():
        finished = phase == "final" and after
        with nullcontext() if finished else pytest.raises(IncompleteZarrError, match="resume"):
            open_zarr(out)
    to_zarr(ds, out, **OPTS)  # the same call resumes
    assert not list(out.rglob("*.partial"))  # a killed writer's temporary files are gone
    a, b = _files(ref), _files(out)
    assert a.keys() == b.keys(), (phase, n, after)
    assert [k for k in a if a[k] != b[k]] == [], (phase, n, after)
    np.testing.assert_array_equal(open_zarr(out).counts.values, ds.counts.values)


def test_resume_rewrites_a_damaged_unit(tmp_path, ds, reference):
    ref, keys = reference
    out = tmp_path / "s.zarr"
    records = [i for i, k in enumerate(keys) if _phase(k, i, len(keys)) == "records"]
    _killed_at(ds, out, records[3] + 1, True, **OPTS)  # after 4 of 6 units
    chunk = out / "counts" / "c" / "0" / "1"  # unit 1 was recorded before the kill
    chunk.write_bytes(chunk.read_bytes()[:100])  # damaged after it was recorded
    to_zarr(ds, out, **OPTS)
    assert verify_zarr(out).ok
    np.testing.assert_array_equal(open_zarr(out).counts.values, ds.counts.values)
    assert _files(out) == _files(ref)


def test_a_killed_cpm_job_refuses_tmm_and_resumes_cpm(tmp_path, ds, monkeypatch):
    """Was: resumed with TMM, the store held 320 CPM and 671 TMM samples, marked complete."""
    cpm, tmm = archs4x.normalize(ds, "cpm"), archs4x.normalize(ds, "tmm")
    keys = _renames(cpm, tmp_path / "ref.zarr", monkeypatch, **OPTS)
    records = [i for i, k in enumerate(keys) if _phase(k, i, len(keys)) == "records"]
    out = tmp_path / "cpm.zarr"
    _killed_at(cpm, out, records[2] + 1, True, **OPTS)
    with pytest.raises(FileExistsError, match="transformation differs.*overwrite=True"):
        to_zarr(tmm, out, **OPTS)
    to_zarr(archs4x.normalize(ds, "cpm"), out, **OPTS)
    np.testing.assert_array_equal(open_zarr(out).counts.values, cpm.values)
    assert _files(out) == _files(tmp_path / "ref.zarr")


def test_a_killed_tmm_job_resumes_with_a_new_graph(tmp_path, ds, monkeypatch):
    """TMM's graph gets random keys each time it is built: recomputed units decide."""
    keys = _renames(archs4x.normalize(ds, "tmm"), tmp_path / "ref.zarr", monkeypatch, **OPTS)
    records = [i for i, k in enumerate(keys) if _phase(k, i, len(keys)) == "records"]
    out = tmp_path / "tmm.zarr"
    _killed_at(archs4x.normalize(ds, "tmm"), out, records[2] + 1, True, **OPTS)
    again = archs4x.normalize(ds, "tmm")  # built anew, as in a new process
    to_zarr(again, out, **OPTS)
    np.testing.assert_array_equal(open_zarr(out).counts.values, again.values)
    arrays = {k: v for k, v in _files(out).items() if k != "zarr.json"}  # the root records
    assert arrays == {k: v for k, v in _files(tmp_path / "ref.zarr").items()  # the new token
                      if k != "zarr.json"}  # fmt: skip
    with pytest.raises(FileExistsError, match="transformation differs"):
        to_zarr(archs4x.normalize(ds, "tmm", log=True), out, **OPTS)


def test_overwrite_starts_over(tmp_path, ds, reference):
    _ref, keys = reference
    out = tmp_path / "s.zarr"
    _killed_at(ds, out, len(keys) // 2, False, **OPTS)
    to_zarr(ds.isel(sample=slice(0, 10)), out, layout="gene", overwrite=True)
    assert open_zarr(out).sizes["sample"] == 10
    assert verify_zarr(out).ok
