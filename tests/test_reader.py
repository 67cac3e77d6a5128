"""The chunk reader equals h5py on every selection, reads each chunk once, never zeros."""

from __future__ import annotations

import os

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import archs4x
from archs4x.datasets import write_archs4_file
from archs4x.storage import open_source
from archs4x.storage.codecs import filter_plan

from ._hypothesis import examples
from ._reads import get_reader

N_GENES, N_SAMPLES = 4500, 400

indices = st.lists(st.integers(0, N_SAMPLES - 1), min_size=0, max_size=40)
rows = st.one_of(
    st.just(slice(None)),
    st.builds(slice, st.integers(0, 3000), st.integers(3000, N_GENES)),
    st.lists(st.integers(0, N_GENES - 1), min_size=1, max_size=30),
)


@settings(
    max_examples=examples(60),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(cols=indices, rsel=rows)
def test_reader_equals_h5py(gene_file, gene_matrix, cols, rsel):
    reader = get_reader(str(gene_file))
    got = reader.read(rsel, cols)
    r = np.arange(N_GENES)[rsel] if isinstance(rsel, slice) else np.asarray(rsel)
    expected = gene_matrix[np.ix_(r, np.asarray(cols, dtype=int))]
    assert got.shape == expected.shape
    np.testing.assert_array_equal(got, expected)


@settings(
    max_examples=examples(25),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(cols=indices, chunk=st.sampled_from([1, 7, 64, 400]))
def test_dataset_selection_equals_h5py(gene_file, gene_matrix, cols, chunk):
    ds = archs4x.open_dataset(gene_file, sample_chunk=chunk)
    got = ds.counts.isel(sample=cols).values
    np.testing.assert_array_equal(got, gene_matrix[:, np.asarray(cols, dtype=int)])
    ids = ds.sample.values[np.asarray(cols, dtype=int)]
    np.testing.assert_array_equal(ds.sel(sample=list(ids)).counts.values, got)


def test_each_chunk_read_once(gene_file):
    reader = get_reader(str(gene_file))
    reader.stats.chunks = 0
    reader.read(slice(None), [3, 3, 3, 10, 3])
    assert reader.stats.chunks == 2 * 3


def test_negative_and_out_of_range(gene_file, gene_matrix):
    reader = get_reader(str(gene_file))
    np.testing.assert_array_equal(reader.read(slice(None), [-1]), gene_matrix[:, [-1]])
    with pytest.raises(IndexError):
        reader.read(slice(None), [N_SAMPLES])


@pytest.mark.parametrize(
    "kw",
    [
        dict(compression="gzip", shuffle=True),
        dict(compression="lzf"),  # not deflate: the h5py fallback
        dict(compression=None),
        dict(compression="gzip", chunk_rows=700),
    ],
    ids=["shuffle+deflate", "lzf-fallback", "uncompressed", "odd-chunks"],
)
def test_filter_pipelines(tmp_path, kw):
    p = write_archs4_file(tmp_path / "f.h5", n_genes=1500, n_samples=30, seed=5, **kw)
    with h5py.File(p) as f:
        ref = f["data/expression"][:]
        plan = filter_plan(f["data/expression"])
    assert plan.direct == (kw.get("compression") != "lzf")  # raw chunks we can decode
    ds = archs4x.open_dataset(p, sample_chunk=8)
    cols = [29, 0, 13, 13, 7]
    np.testing.assert_array_equal(ds.counts.isel(sample=cols).values, ref[:, cols])
    np.testing.assert_array_equal(ds.counts.isel(gene=[5, 1400], sample=cols).values,
                                  ref[np.ix_([5, 1400], cols)])  # fmt: skip


def test_filter_mask_is_honoured(tmp_path):
    """A chunk stored with deflate skipped (mask bit 0) must not be inflated."""
    p = write_archs4_file(tmp_path / "m.h5", n_genes=100, n_samples=4, seed=1)
    col = np.arange(100, dtype="<u4") * 3
    with h5py.File(p, "r+") as f:
        f["data/expression"].id.write_direct_chunk((0, 2), col.tobytes(), filter_mask=1)
    with h5py.File(p) as f:
        expected = f["data/expression"][:]
    archs4x.clear_caches()
    np.testing.assert_array_equal(expected[:, 2], col)
    got = open_source(p).counts_reader().read(slice(None), [0, 2, 3])
    np.testing.assert_array_equal(got, expected[:, [0, 2, 3]])


def test_unallocated_chunks_read_as_fill_value(tmp_path):
    p = tmp_path / "sparse.h5"
    write_archs4_file(p, n_genes=50, n_samples=6, seed=2)
    with h5py.File(p, "r+") as f:  # grow along samples without writing: unallocated chunks
        f["data/expression"].resize((50, 8))
    reader = open_source(p).counts_reader()
    got = reader.read(slice(None), [7, 1])
    with h5py.File(p) as f:
        np.testing.assert_array_equal(got, f["data/expression"][:, [1, 7]][:, ::-1])
    assert (got[:, 0] == 0).all()


def test_btree_and_chunk_list_locate_every_chunk_as_hdf5_does(tmp_path):
    """The B-tree walker (and the chunk_iter list) agree with HDF5 on every chunk."""
    from archs4x.storage.btree import ChunkBTree, btree_root
    from archs4x.storage.chunktable import ChunkTable, table_from_btree, table_from_chunk_iter

    p = write_archs4_file(tmp_path / "t.h5", n_genes=4100, n_samples=700, seed=8)
    src = open_source(p)
    with h5py.File(p) as f:
        dset = f["data/expression"]
        address = f.id.links.get_info(b"/data/expression").u
        want = {}
        dset.id.chunk_iter(
            lambda i: want.__setitem__(
                (i.chunk_offset[0] // 2000, i.chunk_offset[1]), (i.byte_offset, i.size)
            )
        )
        listed = ChunkTable(table_from_chunk_iter(dset))
    root = btree_root(src.fetch, address, p.stat().st_size)
    tree = ChunkBTree(src.fetch, root, (4100, 700), (2000, 1), "test", str(p))
    coords = np.array(sorted(want))
    rng = np.random.default_rng(0)
    order = rng.permutation(len(coords))  # any order, with repeats
    query = np.concatenate([coords[order], coords[:5]])
    walked = ChunkTable(table_from_btree(tree))
    for locate in (tree.locate, listed.locate, walked.locate):
        off, size, _ = locate(query)
        assert [(int(a), int(b)) for a, b in zip(off, size, strict=False)] == [
            want[tuple(c)] for c in query
        ]
    # chunks outside the tree are reported as never written
    off, _, _ = tree.locate(np.array([[0, 10_000], [9, 0]]))
    assert off.tolist() == [-1, -1]


@pytest.mark.parametrize("path", ["btree", "table", "chunk_iter"])
def test_every_locator_reads_equal_h5py(gene_file, gene_matrix, path, monkeypatch, tmp_path):
    """The B-tree walk, the in-memory table and the chunk_iter table give the same."""
    import shutil

    from archs4x.storage import btree, sources

    gene_file = shutil.copy(gene_file, tmp_path / "copy.h5")  # its own tables
    if path == "chunk_iter":  # as for a file whose chunk index is not a v1 B-tree

        def unsupported(*args, **kwargs):
            raise btree.UnsupportedLayout("test")

        monkeypatch.setattr(sources, "btree_root", unsupported)
    if path == "btree":  # as for a large file: no table, the tree is walked per read
        monkeypatch.setattr(sources, "SMALL_FILE_CHUNKS", 0)
    archs4x.clear_caches()
    reader = open_source(gene_file).counts_reader()
    cols = [399, 0, 17, 17, 250]
    np.testing.assert_array_equal(reader.read(slice(None), cols), gene_matrix[:, cols])
    np.testing.assert_array_equal(reader.read([4499, 3, 2000], [5, 1]),
                                  gene_matrix[np.ix_([4499, 3, 2000], [5, 1])])  # fmt: skip
    archs4x.clear_caches()


def test_large_files_are_indexed_in_the_background(tmp_path, small_file, monkeypatch):
    """A large file's first read starts its chunk table; reads never wait for it."""
    import shutil
    import threading

    from archs4x.storage import sources
    from archs4x.storage.chunktable import table_path

    p = shutil.copy(small_file, tmp_path / "large.h5")
    monkeypatch.setattr(sources, "SMALL_FILE_CHUNKS", 0)  # as for a 34M-chunk file
    monkeypatch.setenv("ARCHS4X_CACHE_DIR", str(tmp_path / "cache"))
    archs4x.clear_caches()
    src = open_source(p)
    target = table_path(src.cache_key, "data/expression")
    with h5py.File(p) as f:
        want = f["data/expression"][:, [1, 7]][:, ::-1]
    np.testing.assert_array_equal(src.counts_reader().read(slice(None), [7, 1]), want)
    for t in threading.enumerate():
        if t.name == "archs4x-index":
            t.join(timeout=60)
    assert target.exists()
    table = np.load(target)
    with h5py.File(p) as f:
        info = f["data/expression"].id.get_chunk_info_by_coord((0, 33))
    assert (int(table["offset"][0, 33]), int(table["size"][0, 33])) == (info.byte_offset,
                                                                        info.size)  # fmt: skip
    np.testing.assert_array_equal(src.counts_reader().read(slice(None), [7, 1]), want)
    with archs4x.set_options(index_in_background=False):  # the option turns it off
        archs4x.clear_caches()
        other = shutil.copy(small_file, tmp_path / "other.h5")
        osrc = open_source(other)
        osrc.counts_reader().read(slice(None), [0])
        assert not any(t.name == "archs4x-index" for t in threading.enumerate())
        assert not table_path(osrc.cache_key, "data/expression").exists()
    archs4x.clear_caches()


def test_orphan_tables_of_dead_processes_only_are_removed(tmp_path):
    """A temporary table is removed only when the process named in its name is gone; the
    random part of the name (which can be all digits) is never read as a process id."""
    import subprocess
    import sys

    from archs4x.storage.chunktable import _remove_orphans

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    dead_pid = int(dead.stdout)
    alive = os.getppid()  # the shell or pytest's parent: alive while we run
    gone = tmp_path / f".k-data%expression-v3.npy.{dead_pid}.ab12cd34.tmp"
    mine = tmp_path / f".k-data%expression-v3.npy.{alive}.{dead_pid}.tmp"  # digits at random
    for p in (gone, mine):
        p.write_bytes(b"x")
    _remove_orphans(tmp_path)
    assert not gone.exists() and mine.exists()
