"""pandas and AnnData interop, and a readable repr on large files."""

from __future__ import annotations

import h5py
import numpy as np
import pandas as pd
import pytest

import archs4x
from archs4x.write.interop import from_anndata, sample_table, to_anndata, to_pandas


def test_to_pandas(gene_file, gene_matrix):
    ds = archs4x.open_dataset(gene_file)
    df = to_pandas(ds.isel(sample=[5, 2]), index="symbol")
    np.testing.assert_array_equal(df.to_numpy(), gene_matrix[:, [5, 2]])
    assert list(df.columns) == list(ds.sample.values[[5, 2]])
    assert df.index[0] == "ACTB" and df.dtypes.iloc[0] == np.uint32
    by_id = to_pandas(ds.counts.isel(sample=[0]))
    assert by_id.index.name == "gene" and by_id.index[0].startswith("ENSG")


def test_sample_table(gene_file):
    ds = archs4x.open_dataset(gene_file).isel(sample=[7, 3])
    table = sample_table(ds)
    with h5py.File(gene_file) as f:
        titles = f["meta/samples/title"].asstr()[:]
    assert list(table.index) == list(ds.sample.values)
    assert list(table["title"]) == [titles[7], titles[3]]
    assert table["singlecellprobability"].dtype == np.float64


@pytest.mark.parametrize("lazy", [False, True])
def test_anndata_round_trip(gene_file, gene_matrix, lazy):
    ds = archs4x.open_dataset(gene_file).isel(sample=[10, 0, 399])
    ad = to_anndata(ds, lazy=lazy)
    assert ad.shape == (3, 4500)
    assert list(ad.obs_names) == list(ds.sample.values)
    x = ad.X.compute() if lazy else ad.X
    np.testing.assert_array_equal(np.asarray(x), gene_matrix[:, [10, 0, 399]].T)
    assert list(ad.var["symbol"][:2]) == ["ACTB", "GAPDH"]
    back = from_anndata(ad.to_memory() if lazy and hasattr(ad, "to_memory") else ad)
    np.testing.assert_array_equal(back.counts.values, ds.counts.values)
    np.testing.assert_array_equal(back.series_id.values, ds.series_id.values)
    np.testing.assert_array_equal(back.symbol.values, ds.symbol.values)
    assert back.attrs["version"] == "2.5"


def test_repr_does_not_load_metadata(tmp_path, monkeypatch):
    p = archs4x.datasets.write_archs4_file(tmp_path / "wide.h5", n_genes=20, n_samples=30_000)
    from archs4x.backends import arrays as backend

    reads = []
    original = backend.FieldArray._raw_indexing_method
    monkeypatch.setattr(backend.FieldArray, "_raw_indexing_method",
                        lambda self, key: reads.append(self.path) or original(self, key))  # fmt: skip
    ds = archs4x.open_dataset(p)
    html = ds._repr_html_()
    text = repr(ds)
    assert reads == []
    assert "GSM" in html and len(html) < 200_000
    assert len(text) < 20_000
    assert isinstance(sample_table(ds.isel(sample=[0])), pd.DataFrame)
