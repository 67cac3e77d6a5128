"""open_dataset / engine="archs4": schema, labels, laziness, pushdown, pickling."""

from __future__ import annotations

import pickle

import dask.array
import h5py
import numpy as np
import pytest
import xarray as xr

import archs4x
from archs4x.backends.counts import default_sample_chunk
from archs4x.datasets import SAMPLE_FIELDS

from ._laziness import DaskComputed, raise_if_dask_computes
from ._reads import get_reader


def test_schema(gene_file):
    ds = archs4x.open_dataset(gene_file)
    assert ds.counts.dims == ("gene", "sample")
    assert ds.counts.dtype == np.uint32
    assert isinstance(ds.counts.data, dask.array.Array)  # Dask-backed
    assert ds.sizes == {"gene": 4500, "sample": 400}
    # every gene in one chunk; 128 MiB / (4,500 genes x 4 bytes) = 7,456 samples > 400
    assert ds.counts.chunks == ((4500,), (400,))
    sixty_four = archs4x.open_dataset(gene_file, sample_chunk=64).counts.chunks
    assert sixty_four == ((4500,), (64, 64, 64, 64, 64, 64, 16))
    with h5py.File(gene_file) as f:
        gsm = f["meta/samples/geo_accession"].asstr()[:]
        ens = f["meta/genes/ensembl_gene"].asstr()[:]
        sym = f["meta/genes/symbol"].asstr()[:]
        series = f["meta/samples/series_id"].asstr()[:]
        scp = f["meta/samples/singlecellprobability"][:]
    np.testing.assert_array_equal(ds.sample.values, gsm)
    np.testing.assert_array_equal(ds.gene.values, ens)
    np.testing.assert_array_equal(ds.symbol.values, sym)
    np.testing.assert_array_equal(ds.series_id.values, series)
    np.testing.assert_array_equal(ds.singlecellprobability.values, scp)
    expected = {f for f in SAMPLE_FIELDS if f not in ("geo_accession", "sample")} | {"sample_name"}
    assert expected <= set(ds.coords)
    assert ds.attrs["version"] == "2.5"
    assert ds.attrs["author"] == "archs4x synthetic example"


def test_engine_entrypoint(gene_file):
    ds = xr.open_dataset(gene_file, engine="archs4", chunks={})
    ref = archs4x.open_dataset(gene_file)
    assert ds.counts.chunks == ((4500,), (400,))  # the backend's preferred chunks
    xr.testing.assert_identical(ds.counts.isel(sample=slice(0, 3)).compute(),
                                ref.counts.isel(sample=slice(0, 3)).compute())  # fmt: skip
    # without chunks: xarray's lazy indexing, no Dask at all
    lazy = xr.open_dataset(gene_file, engine="archs4")
    assert lazy.counts.chunks is None
    np.testing.assert_array_equal(lazy.counts[:, [3, 1]].values, ref.counts[:, [3, 1]].values)


def test_guess_engine(gene_file, tmp_path):
    from archs4x.backends import Archs4BackendEntrypoint

    ep = Archs4BackendEntrypoint()
    assert ep.guess_can_open(str(gene_file))
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["x"] = 1
    assert not ep.guess_can_open(str(other))
    assert not ep.guess_can_open(str(tmp_path / "nope.nc"))


def test_default_chunks_fit_a_million_samples():
    k = default_sample_chunk(67_186)
    assert k == 499  # README: 499 samples per chunk for a 67,186-gene file
    assert 67_186 * k * 4 <= 128 * 2**20 < 67_186 * (k + 1) * 4  # the most that fits
    assert -(-1_000_000 // k) == 2_005  # "the whole 1M-sample file is ~2,000 tasks"


def test_sel_reads_only_needed_chunks(gene_file, gene_matrix):
    ds = archs4x.open_dataset(gene_file, sample_chunk=64)
    reader = get_reader(str(gene_file))
    ids = [ds.sample.values[i] for i in (300, 5, 77, 5)]
    reader.stats.chunks = 0
    got = ds.sel(sample=ids).counts.values
    np.testing.assert_array_equal(got, gene_matrix[:, [300, 5, 77, 5]])
    # 3 distinct samples x 3 row chunks (4,500 genes / 2,000), each read once
    assert reader.stats.chunks == 9


def test_isel_slice_and_scalar(gene_file, gene_matrix):
    ds = archs4x.open_dataset(gene_file, sample_chunk=50)
    reader = get_reader(str(gene_file))
    reader.stats.chunks = 0
    np.testing.assert_array_equal(ds.counts.isel(sample=7).values, gene_matrix[:, 7])
    assert reader.stats.chunks == 3
    np.testing.assert_array_equal(ds.counts.isel(sample=slice(48, 53)).values,
                                  gene_matrix[:, 48:53])  # fmt: skip


def test_open_and_select_are_lazy(gene_file, gene_matrix):
    reader = get_reader(str(gene_file))
    reader.stats.chunks = 0
    with raise_if_dask_computes():
        ds = archs4x.open_dataset(gene_file)
        sub = ds.sel(sample=list(ds.sample.values[:3])).isel(gene=slice(0, 10))
        doubled = (sub.counts.astype("f8") * 2).sum("gene")
    assert reader.stats.chunks == 0  # no Dask compute, and no direct read either
    # both ways of reading are seen: a Dask compute raises inside the helper ...
    with pytest.raises(DaskComputed), raise_if_dask_computes():
        doubled.values  # noqa: B018
    # ... and materializing a selection (one direct read, no graph) is counted by the reader
    np.testing.assert_array_equal(sub.counts.values, gene_matrix[:10, :3])
    assert reader.stats.chunks == 3  # 3 samples x the one row chunk holding genes 0-9


def test_metadata_is_not_read_at_open(gene_file, monkeypatch):
    from archs4x.backends import arrays as backend

    reads: list[str] = []
    original = backend.FieldArray._raw_indexing_method

    def spy(self, key):
        reads.append(self.path)
        return original(self, key)

    monkeypatch.setattr(backend.FieldArray, "_raw_indexing_method", spy)
    ds = archs4x.open_dataset(gene_file)
    assert reads == []
    ds.series_id.values  # noqa: B018
    assert reads == ["meta/samples/series_id"]


def test_repair_text(gene_file):
    raw = archs4x.open_dataset(gene_file).characteristics_ch1.values
    fixed = archs4x.open_dataset(gene_file, repair_text=True).characteristics_ch1.values
    broken = [i for i, s in enumerate(raw) if any(m in s for m in ("Î", "â", "Ã", "Â"))]
    assert broken, "the example file contains double-encoded text"
    for i in broken:
        # the repair is exactly the inverse of the upstream defect
        assert fixed[i].encode("utf-8").decode("latin-1") == raw[i]
        assert fixed[i] != raw[i]
    untouched = [i for i in range(len(raw)) if i not in set(broken)]
    np.testing.assert_array_equal(fixed[untouched], raw[untouched])
    assert any("μM" in s for s in fixed)


def test_pickles(gene_file, gene_matrix):
    ds = archs4x.open_dataset(gene_file)
    sub = ds.isel(sample=[3, 9])
    again = pickle.loads(pickle.dumps(sub))
    np.testing.assert_array_equal(again.counts.values, gene_matrix[:, [3, 9]])


def test_transcript_file(transcript_file):
    ds = archs4x.open_dataset(transcript_file)
    assert ds.counts.dims == ("transcript", "sample")
    with h5py.File(transcript_file) as f:
        ids = f["meta/transcripts/ensembl_id"].asstr()[:]
        ref = f["data/expression"][:, [0, 50]]
    np.testing.assert_array_equal(ds.transcript.values, ids)
    assert "ensembl_gene" in ds.coords and ds.ensembl_gene.dims == ("transcript",)
    np.testing.assert_array_equal(ds.counts.isel(sample=[0, 50]).values, ref)


def test_ls(gene_file, capsys):
    archs4x.ls(gene_file)
    out = capsys.readouterr().out
    assert "expression" in out and "uint32" in out and "(4500, 400)" in out
    assert "geo_accession" in out and "singlecellprobability" in out
