"""The chunk reader equals h5py on every selection, reads each chunk once, never zeros."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import archs4x
from archs4x.backend import get_reader
from archs4x.chunks import ChunkReader, filter_plan
from archs4x.datasets import write_archs4_file

N_GENES, N_SAMPLES = 4500, 400

indices = st.lists(st.integers(0, N_SAMPLES - 1), min_size=0, max_size=40)
rows = st.one_of(
    st.just(slice(None)),
    st.builds(slice, st.integers(0, 3000), st.integers(3000, N_GENES)),
    st.lists(st.integers(0, N_GENES - 1), min_size=1, max_size=30),
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
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
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
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
    reader.chunks_read = 0
    reader.read(slice(None), [3, 3, 3, 10, 3])
    assert reader.chunks_read == 2 * 3


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
    archs4x.files.clear_cache()
    np.testing.assert_array_equal(expected[:, 2], col)
    got = ChunkReader(archs4x.files.open_h5(p)["data/expression"]).read(slice(None), [0, 2, 3])
    np.testing.assert_array_equal(got, expected[:, [0, 2, 3]])


def test_unallocated_chunks_read_as_fill_value(tmp_path):
    p = tmp_path / "sparse.h5"
    write_archs4_file(p, n_genes=50, n_samples=6, seed=2)
    with h5py.File(p, "r+") as f:  # grow along samples without writing: unallocated chunks
        f["data/expression"].resize((50, 8))
    reader = ChunkReader(archs4x.files.open_h5(p)["data/expression"])
    got = reader.read(slice(None), [7, 1])
    with h5py.File(p) as f:
        np.testing.assert_array_equal(got, f["data/expression"][:, [1, 7]][:, ::-1])
    assert (got[:, 0] == 0).all()


def test_chunk_index_matches_hdf5(gene_file):
    from archs4x.chunkindex import build_index, cached_index
    from archs4x.files import open_h5

    dset = open_h5(gene_file)["data/expression"]
    index = build_index(dset)
    for r0, c0 in [(0, 0), (2000, 7), (4000, 399), (0, 123)]:
        info = dset.id.get_chunk_info_by_coord((r0, c0))
        assert index.locate(r0, c0) == (info.byte_offset, info.size, info.filter_mask)
    again = cached_index(str(gene_file), dset)  # from the disk cache, memory-mapped
    np.testing.assert_array_equal(np.asarray(again.table), index.table)


@pytest.mark.parametrize("use_index", [True, False], ids=["pread-index", "read_direct_chunk"])
def test_both_read_paths_equal_h5py(gene_file, gene_matrix, use_index):
    """The byte-offset (os.pread) path and the HDF5 direct-chunk path give the same."""
    reader = ChunkReader(archs4x.files.open_h5(gene_file)["data/expression"])
    if not use_index:  # as for a file that is not a plain local file
        reader._local_path = None
    cols = [399, 0, 17, 17, 250]
    got = reader.read(slice(None), cols)
    assert (reader._index is not None) == use_index
    np.testing.assert_array_equal(got, gene_matrix[:, cols])
    np.testing.assert_array_equal(reader.read([4499, 3, 2000], [5, 1]),
                                  gene_matrix[np.ix_([4499, 3, 2000], [5, 1])])  # fmt: skip
