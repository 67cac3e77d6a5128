"""A Dataset reads the file it was opened from, and metadata follows the samples it holds."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import h5py
import numpy as np
import pytest
import xarray as xr

import archs4x
from archs4x.datasets import write_archs4_file
from archs4x.query.metacache import MetaCache

from ._laziness import raise_if_dask_computes


@pytest.fixture
def own_file(tmp_path, small_file):
    """A copy of the small file that this test may replace or edit."""
    return shutil.copy(small_file, tmp_path / "own.h5")


def _titles(path) -> np.ndarray:
    with h5py.File(path) as f:
        return np.array([t.decode() for t in f["meta/samples/title"][()]], dtype=object)


def test_relabelled_samples_keep_their_own_metadata(small_file):
    ds = archs4x.open_dataset(small_file)
    titles = _titles(small_file)
    relabelled = ds.assign_coords(sample=ds.sample.values[::-1])
    # the labels changed, the samples did not: row i is still file sample i
    assert relabelled.archs4.meta(["title"])["title"].tolist() == titles.tolist()
    term = titles[7].split("_")[0]
    rx = re.compile(re.escape(term), re.IGNORECASE)
    hits = relabelled.archs4.search(term, fields="title")
    want = [i for i, t in enumerate(titles) if rx.search(t)]
    assert hits.title.values.tolist() == titles[want].tolist()
    assert hits.sample.values.tolist() == ds.sample.values[::-1][want].tolist()
    with h5py.File(small_file) as f:
        np.testing.assert_array_equal(hits.counts.values, f["data/expression"][:, want])


def test_a_replaced_file_raises_instead_of_mixing(own_file, tmp_path):
    ds = archs4x.open_dataset(own_file)
    sub = ds.isel(sample=[0, 3])
    before = sub.counts.values
    other = write_archs4_file(tmp_path / "other.h5", n_genes=2500, n_samples=60, seed=77)
    os.replace(other, own_file)
    with pytest.raises(archs4x.FileChangedError, match="replaced"):
        sub.counts.values  # noqa: B018
    with pytest.raises(archs4x.FileChangedError):
        ds.archs4.meta(["title"])
    with pytest.raises(archs4x.FileChangedError):
        ds.title.values  # noqa: B018
    # opened again: the new file, consistently
    again = archs4x.open_dataset(own_file)
    with h5py.File(own_file) as f:
        np.testing.assert_array_equal(
            again.counts[:, [0, 3]].values, f["data/expression"][:, [0, 3]]
        )
    assert not np.array_equal(before, again.counts[:, [0, 3]].values)


def test_an_in_place_edit_with_restored_mtime_is_caught(own_file):
    ds = archs4x.open_dataset(own_file)
    old_titles = ds.archs4.meta(["title"])["title"].tolist()  # cached on disk now
    old = ds.counts[:, [5]].values
    st = os.stat(own_file)
    edit = (  # another process edits the file in place: same size, new values
        "import h5py, sys\n"
        "with h5py.File(sys.argv[1], 'r+') as f:\n"
        "    f['meta/samples/title'][0] = 'edited in place'\n"
        "    e = f['data/expression']\n"
        "    e[:, 5] = e[:, 5] + 1\n"
    )
    env = {**os.environ, "HDF5_USE_FILE_LOCKING": "FALSE"}  # we hold it open for reading
    subprocess.run([sys.executable, "-c", edit, str(own_file)], check=True, env=env)
    os.utime(own_file, ns=(st.st_atime_ns, st.st_mtime_ns))  # mtime restored
    assert os.stat(own_file).st_mtime_ns == st.st_mtime_ns
    with pytest.raises(archs4x.FileChangedError):
        ds.counts[:, [5]].values  # noqa: B018
    with pytest.raises(archs4x.FileChangedError):
        ds.archs4.meta(["title"])
    # a new open sees the edit, in counts and in the (re-keyed) metadata cache
    archs4x.clear_caches()
    fresh = archs4x.open_dataset(own_file)
    assert fresh.archs4.meta(["title"])["title"].iloc[0] == "edited in place"
    assert fresh.archs4.meta(["title"])["title"].tolist()[1:] == old_titles[1:]
    np.testing.assert_array_equal(fresh.counts[:, [5]].values, old + 1)
    assert MetaCache(own_file).column("title")[0].as_py() == "edited in place"


@pytest.mark.parametrize("chunks", [None, {}])
def test_engine_queries_never_compute(gene_file, chunks):
    """The engine path, with or without Dask chunks, runs queries without computing."""
    ref = archs4x.open_dataset(gene_file)
    ds = xr.open_dataset(gene_file, engine="archs4", chunks=chunks)
    with raise_if_dask_computes():
        a = ds.archs4.search("bulk").archs4.remove_single_cell().archs4.rand(7, seed=2)
        b = ref.archs4.search("bulk").archs4.remove_single_cell().archs4.rand(7, seed=2)
        meta_a = a.archs4.meta(["title", "series_id"])
        meta_b = b.archs4.meta(["title", "series_id"])
    assert a.sample.values.tolist() == b.sample.values.tolist()
    assert meta_a.equals(meta_b)
    np.testing.assert_array_equal(a.counts.values, b.counts.values)


def test_engine_without_chunks_reads_exactly(gene_file):
    """Engine path, xarray's lazy indexing: a chain reads the chunks it needs, once."""
    ds = xr.open_dataset(gene_file, engine="archs4")
    reader = archs4x.storage.open_source(gene_file).counts_reader()
    sub = ds.isel(sample=slice(0, 300)).isel(sample=[3, 4, 3]).sortby("title")
    before = reader.stats.chunks
    values = sub.counts.values
    assert reader.stats.chunks - before == 2 * 3
    np.testing.assert_array_equal(values, archs4x.open_dataset(gene_file).counts.values[
        :, sub.xindexes["sample"].positions])  # fmt: skip


def test_the_laziness_guard_catches_a_direct_read(gene_file):
    """``np.asarray`` of counts reads without a scheduler: the guard must still see it."""
    import numpy as np

    from ._laziness import DaskComputed

    ds = archs4x.open_dataset(gene_file)
    with raise_if_dask_computes():
        sel = ds.isel(sample=[0, 2])  # lazy: allowed
        with pytest.raises(DaskComputed, match="read counts directly"):
            np.asarray(sel.counts.data)
        with pytest.raises(DaskComputed, match="compute"):
            sel.counts.sum().compute()
    assert np.asarray(sel.counts.data).shape == (ds.sizes["gene"], 2)
