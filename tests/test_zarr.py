"""Round trips through Zarr: both layouts, gene and transcript files, selections."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import xarray as xr
import zarr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import archs4x
from archs4x import IncompleteZarrError, open_zarr, to_zarr
from archs4x.write.plan import plan_conversion

from ._hypothesis import examples
from ._laziness import raise_if_dask_computes
from ._reads import get_reader


def assert_same(z: xr.Dataset, src: xr.Dataset) -> None:
    """Counts, every coordinate (values and dtype) and attrs equal the source."""
    xr.testing.assert_identical(z.compute(), src.compute())
    assert z.attrs == src.attrs
    for name in src.coords:
        assert z[name].dtype == src[name].dtype, name
    assert z.counts.dtype == src.counts.dtype


@pytest.fixture(scope="module")
def gene_ds(gene_file):
    return archs4x.open_dataset(gene_file)


@pytest.mark.parametrize("layout", ["sample", "gene"])
@pytest.mark.parametrize("level", ["gene", "transcript"])
def test_round_trip_exact(tmp_path, gene_file, transcript_file, layout, level):
    src = archs4x.open_dataset(gene_file if level == "gene" else transcript_file)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no unspecified Zarr v3 data types, nothing else
        out = to_zarr(src, tmp_path / "x.zarr", layout=layout)
        z = open_zarr(out)
        assert_same(z, src)
    assert z.counts.encoding["archs4x_layout"] == layout
    assert isinstance(z.counts.data, type(src.counts.data))  # Dask-backed
    arr = zarr.open_array(out, path="counts", mode="r")
    assert arr.metadata.data_type.to_json(zarr_format=3) == "uint32"
    meta = zarr.open_array(out, path="title", mode="r").metadata
    assert meta.data_type.to_json(zarr_format=3) == "string"  # the Zarr v3 string type


@pytest.mark.parametrize("layout", ["sample", "gene"])
def test_round_trip_of_a_selection(tmp_path, gene_ds, layout):
    sel = gene_ds.isel(sample=[7, 3, 399, 3, 120], gene=slice(100, 2600))
    z = open_zarr(to_zarr(sel, tmp_path / "s.zarr", layout=layout))
    assert_same(z, sel)


def test_gene_layout_chunks_are_gene_major(tmp_path, gene_ds):
    out = to_zarr(gene_ds, tmp_path / "g.zarr", layout="gene")
    arr = zarr.open_array(out, path="counts", mode="r")
    assert arr.chunks == (16, 400)
    assert arr.shards[1] == 400 and arr.shards[0] % 16 == 0
    z = open_zarr(out)
    i = 1234
    assert (z.counts.isel(gene=i).values == gene_ds.counts.isel(gene=i).values).all()


def test_sample_layout_defaults(tmp_path, gene_ds):
    out = to_zarr(gene_ds, tmp_path / "s.zarr")
    arr = zarr.open_array(out, path="counts", mode="r")
    assert arr.chunks == (4500, 1) and arr.shards == (4500, 256)
    assert arr.compressors[0].cname.value == "lz4"
    assert [type(c).__name__ for c in arr.compressors] == ["BloscCodec", "Crc32cCodec"]
    for name in ("title", "gene", "sample"):  # coordinates carry checksums too
        meta = zarr.open_array(out, path=name, mode="r")
        assert type(meta.compressors[-1]).__name__ == "Crc32cCodec"


def test_zarr_python_and_plain_xarray_read_the_store(tmp_path, gene_ds):
    """An independent reader (zarr-python, through xarray) sees the same data, no warning."""
    sel = gene_ds.isel(sample=[9, 2, 301, 7], gene=slice(0, 3000))
    out = to_zarr(sel, tmp_path / "s.zarr", chunks=(3000, 1), shards=(3000, 2))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plain = xr.open_zarr(out)
        loaded = plain.compute()
    np.testing.assert_array_equal(loaded.counts.values, sel.counts.values)
    assert loaded.title.values.tolist() == sel.title.values.tolist()
    assert loaded.gene.values.tolist() == sel.gene.values.tolist()
    assert "archs4x_zarr" in plain.attrs and plain.attrs["version"] == sel.attrs["version"]


def test_reads_a_store_zarr_python_wrote(tmp_path, gene_ds):
    """Our chunk reader against zarr-python's own writer (sharded, crc32c, Blosc)."""
    from zarr.codecs import BloscCodec, Crc32cCodec

    from archs4x.storage.zarrstore import ArrayReader, StoreIO, read_meta

    values = gene_ds.counts.values[:, :37]
    path = str(tmp_path / "zp.zarr")
    arr = zarr.create_array(path, name="x", shape=values.shape, dtype="uint32", chunks=(900, 1),
                            shards=(1800, 4), fill_value=0, zarr_format=3,
                            compressors=[BloscCodec(cname="zstd", clevel=1), Crc32cCodec()])  # fmt: skip
    arr[:] = values
    io = StoreIO(path)
    reader = ArrayReader(io, read_meta(io, "x"))
    rows, cols = [4499, 0, 1799, 1800], [36, 0, 3, 4, 36]
    np.testing.assert_array_equal(reader.read(rows, cols), values[np.ix_(rows, cols)])
    np.testing.assert_array_equal(reader.read(slice(None), slice(None)), values)


def test_open_zarr_is_lazy_and_selection_reads_only_needed(tmp_path, gene_ds):
    out = to_zarr(gene_ds, tmp_path / "s.zarr", layout="sample")
    with raise_if_dask_computes():
        z = open_zarr(out)
        sel = z.sel(sample=["GSM1000003", "GSM1000000"])
    assert sel.counts.shape == (4500, 2)
    np.testing.assert_array_equal(
        sel.counts.values, gene_ds.sel(sample=["GSM1000003", "GSM1000000"]).counts.values
    )


def test_incomplete_store_is_refused(tmp_path, gene_ds):
    out = str(tmp_path / "s.zarr")
    to_zarr(gene_ds, out, layout="sample")
    root = zarr.open_group(out, mode="r+")
    state = dict(root.attrs["archs4x_zarr"])
    root.attrs.update({"archs4x_zarr": {**state, "complete": False}})
    with pytest.raises(IncompleteZarrError, match="did not finish.*resume"):
        open_zarr(out)


def test_existing_store_rules(tmp_path, gene_ds, small_file):
    out = tmp_path / "s.zarr"
    to_zarr(gene_ds, out)
    to_zarr(gene_ds, out)  # same call on a complete store: nothing to do
    other = archs4x.open_dataset(small_file)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        to_zarr(other, out)
    to_zarr(other, out, overwrite=True)
    assert_same(open_zarr(out), other)
    (tmp_path / "notzarr").mkdir()
    (tmp_path / "notzarr" / "precious.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not a Zarr store"):
        to_zarr(other, tmp_path / "notzarr", overwrite=True)
    assert (tmp_path / "notzarr" / "precious.txt").exists()


def test_bad_input(tmp_path, gene_ds):
    with pytest.raises(ValueError, match="layout"):
        to_zarr(gene_ds, tmp_path / "a.zarr", layout="rows")
    with pytest.raises(ValueError, match="counts"):
        to_zarr(gene_ds.drop_vars("counts"), tmp_path / "b.zarr")
    with pytest.raises(ValueError, match="empty"):
        to_zarr(gene_ds.isel(sample=[]), tmp_path / "c.zarr")
    with pytest.raises(ValueError, match="multiples"):
        to_zarr(gene_ds, tmp_path / "d.zarr", chunks=(100, 3), shards=(100, 4))
    with pytest.raises(TypeError, match="BloscCodec, ZstdCodec or GzipCodec"):
        to_zarr(gene_ds, tmp_path / "e.zarr", compressor="zstd")
    with pytest.raises(ValueError, match="max_memory"):
        to_zarr(gene_ds, tmp_path / "f.zarr", max_memory="1MB")
    with pytest.raises(FileNotFoundError):
        open_zarr(tmp_path / "missing.zarr")
    zarr.open_group(str(tmp_path / "plain.zarr"), mode="w")
    with pytest.raises(ValueError, match="not written by archs4x"):
        open_zarr(tmp_path / "plain.zarr")


def test_gene_layout_reads_each_source_chunk_once(tmp_path, gene_file, gene_ds):
    reader = get_reader(gene_file)
    reader.stats.chunks = 0
    to_zarr(gene_ds, tmp_path / "g.zarr", layout="gene", workers=1)
    assert reader.stats.chunks == 3 * 400  # ceil(4500 / 2000) row chunks x 400 samples


def test_two_pass_plan_for_sources_that_cannot_read_rows(tmp_path, gene_ds):
    """A sample-major store read back and converted gene-major goes via an intermediate."""
    s = open_zarr(to_zarr(gene_ds, tmp_path / "s.zarr", layout="sample"))
    out = to_zarr(s, tmp_path / "g.zarr", layout="gene", max_memory="64MiB")
    root = zarr.open_group(out, mode="r")
    passes = [p["name"] for p in root.attrs["archs4x_zarr"]["passes"]]
    assert passes == ["band", "write"]
    assert "archs4x_tmp" not in root  # the intermediate is removed at the end
    assert_same(open_zarr(out), gene_ds)


def test_fsspec_url_store(gene_ds):
    src = gene_ds.isel(sample=slice(0, 40))
    url = "memory://archs4x-test/s.zarr"
    to_zarr(src, url, layout="gene")
    assert_same(open_zarr(url), src)
    with pytest.raises(ValueError, match="storage_options"):
        to_zarr(src, "/tmp/local.zarr", storage_options={"anon": True})


def test_on_a_distributed_cluster(tmp_path, gene_ds, cluster):
    from distributed import get_task_stream

    src = gene_ds.isel(sample=slice(0, 120))
    sel = gene_ds.isel(sample=[5, 1, 300])
    with cluster.as_current(), get_task_stream(client=cluster) as stream:
        out = to_zarr(src, tmp_path / "d.zarr", layout="gene", chunks=(500, 40),
                      shards=(1000, 40))  # fmt: skip
        out2 = to_zarr(sel, tmp_path / "d2.zarr", layout="sample")
    assert len(stream.data) >= 5 + 1  # the units ran as tasks on the workers
    assert_same(open_zarr(out), src)
    assert_same(open_zarr(out2), sel)


@settings(max_examples=examples(25), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n_f=st.integers(1, 5000),
    n_s=st.integers(1, 3000),
    layout=st.sampled_from(["sample", "gene"]),
    rows_cheap=st.booleans(),
    mem=st.sampled_from(["16MiB", "256MiB", "1.5GiB"]),
)
def test_plan_units_tile_the_matrix(n_f, n_s, layout, rows_cheap, mem):
    try:
        plan = plan_conversion((n_f, n_s), layout, rows_cheap=rows_cheap, max_memory=mem)
    except ValueError as exc:  # a unit that cannot fit the budget is refused, not shrunk
        assert "max_memory" in str(exc)
        return
    for p in plan.passes:
        cover = np.zeros((n_f, n_s), dtype=np.int8)
        for _, (r, c) in p.regions():
            cover[r, c] += 1
        assert (cover == 1).all()
        unit = p.unit
        written = plan.write_unit if p.target == "final" else plan.intermediate_chunks
        assert all(u % w == 0 or u >= n for u, w, n in zip(unit, written, p.shape, strict=True))
    assert plan.in_flight >= 1
