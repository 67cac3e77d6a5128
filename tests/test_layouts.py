"""Every version variant of the ARCHS4 layout opens with the same schema."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

import archs4x


@pytest.mark.parametrize("version", ["2.1.2", "2.2", "2.5", "2.6"])
@pytest.mark.parametrize("string_kind", ["vlen", "fixed"])
def test_versions(tmp_path, version, string_kind):
    p = archs4x.datasets.write_archs4_file(
        tmp_path / "v.h5", n_genes=300, n_samples=12, version=version, string_kind=string_kind
    )
    ds = archs4x.open_dataset(p)
    assert ds.counts.dims == ("gene", "sample")
    assert ds.symbol.dims == ("gene",) and isinstance(ds.symbol.values[0], str)
    assert ds.gene.values[0].startswith("ENSG")
    assert all(isinstance(s, str) for s in ds.sample.values)
    assert isinstance(ds.characteristics_ch1.values[0], str)
    if version in ("2.1.2", "2.2"):
        assert ds.readsaligned.dtype == np.uint32
    if version == "2.6":
        assert ds.alignedreads.dtype == np.float64
    if version == "2.5":
        assert "readsaligned" not in ds.coords and "alignedreads" not in ds.coords
    with h5py.File(p) as f:
        np.testing.assert_array_equal(ds.counts.values, f["data/expression"][:])
        sym = "gene_symbol" if version == "2.1.2" else "symbol"
        raw = f[f"meta/genes/{sym}"][:]
    np.testing.assert_array_equal(ds.symbol.values, [bytes(x).decode() for x in raw])


def test_mouse(tmp_path):
    p = archs4x.datasets.write_archs4_file(tmp_path / "m.h5", n_genes=100, n_samples=5,
                                           species="mouse")  # fmt: skip
    ds = archs4x.open_dataset(p)
    assert ds.gene.values[0].startswith("ENSMUSG")
    assert set(ds.organism_ch1.values) == {"Mus musculus"}


def test_generator_is_deterministic(tmp_path):
    a = archs4x.datasets.write_archs4_file(tmp_path / "a.h5", n_genes=200, n_samples=20, seed=9)
    b = archs4x.datasets.write_archs4_file(tmp_path / "b.h5", n_genes=200, n_samples=20, seed=9)
    c = archs4x.datasets.write_archs4_file(tmp_path / "c.h5", n_genes=200, n_samples=20, seed=8)
    with h5py.File(a) as fa, h5py.File(b) as fb, h5py.File(c) as fc:
        np.testing.assert_array_equal(fa["data/expression"][:], fb["data/expression"][:])
        np.testing.assert_array_equal(fa["meta/samples/title"][:], fb["meta/samples/title"][:])
        assert not np.array_equal(fa["data/expression"][:], fc["data/expression"][:])


def test_generated_layout_matches_archs4(gene_file):
    with h5py.File(gene_file) as f:
        d = f["data/expression"]
        assert d.dtype == np.dtype("<u4") and d.chunks == (2000, 1)
        assert d.maxshape == (4500, None) and d.compression == "gzip"
        assert h5py.check_string_dtype(f["meta/samples/title"].dtype).encoding == "utf-8"
        assert len(f["meta/samples"]) == 29
        assert f["meta/samples/singlecellprobability"].dtype == np.float64
        assert set(f["meta/info"]) == {"author", "contact", "creation-date", "laboratory",
                                       "version"}  # fmt: skip
        sym = f["meta/genes/symbol"].asstr()[:]
        dup_frac = 1 - len(set(sym)) / len(sym)
        assert 0.015 < dup_frac < 0.05
        series = f["meta/samples/series_id"].asstr()[:]
        assert any("," in s for s in series)
        counts = d[:, :100]
        assert (counts == 0).mean() > 0.1 and counts.max() > 100_000
