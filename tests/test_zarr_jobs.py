"""One store, one job: no writing over its own input, no mixing of jobs, no stale reads.

References: the source Dataset (equal to h5py, ``test_reader.py``), the store's bytes
before and after a refused call, and a second conversion run in another process.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import archs4x
from archs4x import FileChangedError, open_zarr, to_zarr
from archs4x.write.lineage import describe_differences, job_identity

SMALL = {"layout": "sample", "chunks": (4500, 1), "shards": (4500, 4)}


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}  # fmt: skip


@pytest.fixture(scope="module")
def ds(gene_file):
    return archs4x.open_dataset(gene_file)


def test_in_place_relayout_is_refused_before_anything_is_touched(tmp_path, ds, small_file):
    """Was: accepted; the store was marked complete with 0 non-zero counts."""
    p = tmp_path / "s.zarr"
    to_zarr(ds, p, layout="sample")
    before = _snapshot(p)
    z = open_zarr(p)
    folder = tmp_path / "files"
    folder.mkdir()
    h5 = folder / "small.h5"
    h5.write_bytes(Path(small_file).read_bytes())
    attempts = [
        lambda: to_zarr(z, p, layout="gene", overwrite=True),
        lambda: to_zarr(z.isel(sample=[3, 1]), p, overwrite=True),
        lambda: to_zarr(archs4x.normalize(z, "cpm"), p, overwrite=True),
        lambda: to_zarr(z, p / "inner.zarr"),
        # a folder holding the H5 file read: overwrite would delete it first
        lambda: to_zarr(archs4x.open_dataset(h5), folder, overwrite=True),
    ]
    for attempt in attempts:
        with pytest.raises(ValueError, match="reads its values from"):
            attempt()
    assert _snapshot(p) == before
    assert h5.read_bytes() == Path(small_file).read_bytes()
    np.testing.assert_array_equal(open_zarr(p).counts.values, ds.counts.values)
    # the same data, written elsewhere, is fine
    out = to_zarr(z, tmp_path / "g.zarr", layout="gene")
    assert int(np.count_nonzero(open_zarr(out).counts.values)) == int(
        np.count_nonzero(ds.counts.values))  # fmt: skip


def _interrupted(store: Path, keep_units: int) -> None:
    """Make a finished store look like a conversion killed after ``keep_units`` units."""
    root = json.loads((store / "zarr.json").read_text())
    state = root["attributes"]["archs4x_zarr"]
    state["complete"] = False
    root.pop("consolidated_metadata")
    (store / "zarr.json").write_text(json.dumps(root))
    records = store / "archs4x_progress" / "write" / "c"
    for rec in records.iterdir():
        if int(rec.name) >= keep_units:
            rec.unlink()


def test_resume_refuses_another_job_naming_what_differs(tmp_path, ds, small_file):
    """Was: a CPM conversion resumed with TMM gave a store of 320 CPM and 671 TMM samples."""
    sel = ds.isel(sample=slice(0, 40))
    out = tmp_path / "cpm.zarr"
    to_zarr(archs4x.normalize(sel, "cpm"), out, **SMALL)
    _interrupted(out, keep_units=4)
    before = _snapshot(out)
    cases = {
        "transformation": archs4x.normalize(sel, "tmm"),
        "selection": archs4x.normalize(ds.isel(sample=slice(1, 41)), "cpm"),
        "attributes": archs4x.normalize(sel, "cpm").assign_attrs(note="other"),
        "source": archs4x.normalize(archs4x.open_dataset(small_file).isel(sample=slice(0, 40))
                                    .reindex(gene=sel.gene.values, fill_value=0), "cpm"),
    }  # fmt: skip
    for part, other in cases.items():
        with pytest.raises(FileExistsError, match=rf"the {part} differ.*overwrite=True") as info:
            to_zarr(other, out, **SMALL)
        assert "mix the two jobs" in str(info.value)
    with pytest.raises(FileExistsError, match="layout differs"):
        to_zarr(archs4x.normalize(sel, "cpm"), out, layout="gene")
    assert _snapshot(out) == before
    to_zarr(archs4x.normalize(sel, "cpm"), out, **SMALL)  # the same job resumes
    want = archs4x.normalize(sel, "cpm").values
    np.testing.assert_array_equal(open_zarr(out).counts.values, want)
    assert archs4x.verify_zarr(out).ok


def test_job_identity_is_the_same_in_another_process(ds, gene_file):
    """A resume runs in a new process: the fingerprint must not depend on the process.

    TMM's graph is built with random keys (``dask.graph_manipulation.clone``), so only its
    token differs; ``to_zarr`` then compares recomputed units (``test_zarr_resume.py``).
    """
    code = (
        "import json, sys, archs4x\n"
        "from archs4x.write.lineage import job_identity\n"
        "ds = archs4x.open_dataset(sys.argv[1]).isel(sample=slice(0, 40))\n"
        "for m in ('read', 'cpm', 'tmm'):\n"
        "    x = ds if m == 'read' else archs4x.normalize(ds, m).to_dataset(name='counts')\n"
        "    print(json.dumps(job_identity(x, {'l': 1})))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(gene_file)], capture_output=True,
                          text=True, check=True)  # fmt: skip
    there = [json.loads(line) for line in proc.stdout.splitlines()]
    sel = ds.isel(sample=slice(0, 40))
    here = [job_identity(x, {"l": 1}) for x in (
        sel, *(archs4x.normalize(sel, m).to_dataset(name="counts") for m in ("cpm", "tmm")))]  # fmt: skip
    assert [h["fingerprint"] for h in here[:2]] == [t["fingerprint"] for t in there[:2]]
    assert [p for p in here[2]["parts"] if here[2]["parts"][p] != there[2]["parts"][p]] in (
        [], ["transformation"])  # fmt: skip
    assert describe_differences(here[1]["parts"], here[2]["parts"])[:2] == [
        "the transformation differs (other operations or parameters applied to the counts, "
        "e.g. another normalization)",
        "the operations differ (other functions applied to the counts)",
    ]


def test_a_rewritten_store_is_never_read_stale(tmp_path, ds):
    """Was: after re-conversion with other chunks, sample 1 summed to 7,159,218 (old grid)."""
    out = tmp_path / "s.zarr"
    to_zarr(ds, out, chunks=(4500, 4), shards=None, overwrite=True)
    old = open_zarr(out)
    assert int(old.counts[:, 1].sum()) == int(ds.counts[:, 1].sum())
    flipped = ds.isel(sample=slice(None, None, -1))
    to_zarr(flipped, out, chunks=(2250, 8), shards=None, overwrite=True)
    new = open_zarr(out)
    np.testing.assert_array_equal(new.counts.values, flipped.counts.values)
    assert int(new.counts[:, 1].sum()) == int(flipped.counts[:, 1].sum())
    with pytest.raises(FileChangedError, match="rewritten"):
        old.counts[:, 1].values  # noqa: B018
    # the same job written again: a new write, so the old Dataset is refused too
    to_zarr(flipped, out, chunks=(2250, 8), shards=None, overwrite=True)
    with pytest.raises(FileChangedError):
        new.counts[:, :2].values  # noqa: B018


@pytest.mark.cluster
def test_every_worker_process_sees_the_rewrite(tmp_path, ds, cluster):
    from distributed import get_task_stream

    out = tmp_path / "c.zarr"
    a = ds.isel(sample=slice(0, 60))
    b = ds.isel(sample=slice(100, 160))
    with cluster.as_current(), get_task_stream(client=cluster) as stream:
        to_zarr(a, out, **SMALL)  # units written by the workers
        z = open_zarr(out, chunks={"sample": 8})
        assert int(z.counts.sum().compute()) == int(a.counts.values.sum())  # workers read it
        to_zarr(b, out, overwrite=True, **SMALL)
        z2 = open_zarr(out, chunks={"sample": 8})
        np.testing.assert_array_equal(z2.counts.compute().values, b.counts.values)
        with pytest.raises(FileChangedError):
            z.counts.sum().compute()
    assert {t["worker"] for t in stream.data} == set(cluster.scheduler_info()["workers"])
