"""aggregate_duplicate_genes / filter_genes against archs4py.utils on the same counts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from archs4py.utils import aggregate_duplicate_genes as a4_aggregate
from archs4py.utils import filter_genes as a4_filter

import archs4x
from archs4x.compute.genes import aggregate_duplicate_genes, expressed_genes, filter_genes

from ._laziness import raise_if_dask_computes


@pytest.fixture(scope="module")
def sub(gene_file):
    return archs4x.open_dataset(gene_file).counts.isel(sample=slice(0, 120))


@pytest.fixture(scope="module")
def frame(sub):
    """archs4py's expression frame: genes indexed by symbol, samples as columns."""
    return pd.DataFrame(sub.values, index=sub.symbol.values, columns=sub.sample.values)


def test_aggregate_matches_archs4py(sub, frame):
    with raise_if_dask_computes():
        agg = aggregate_duplicate_genes(sub)
    theirs = a4_aggregate(frame)
    assert agg.dims == ("gene", "sample") and agg.dtype == np.uint64
    assert (agg.gene.values == theirs.index.values).all()
    assert (agg.symbol.values == agg.gene.values).all()
    np.testing.assert_array_equal(agg.values, theirs.values)
    counts = pd.Series(sub.symbol.values).value_counts()
    assert (agg.n_merged.values == counts.loc[agg.gene.values].values).all()
    assert agg.n_merged.values.sum() == sub.sizes["gene"] and agg.n_merged.values.max() > 1
    assert "series_id" in agg.coords and "biotype" not in agg.coords


@pytest.mark.parametrize(("read", "frac"), [(20, 0.02), (0, 0.5), (100, 0.2), (5, 1.0)])
@pytest.mark.parametrize("aggregate", [True, False])
def test_filter_matches_archs4py(sub, frame, read, frac, aggregate):
    ours = filter_genes(sub, read_threshold=read, sample_threshold=frac, aggregate=aggregate)
    theirs = a4_filter(frame, readThreshold=read, sampleThreshold=frac, aggregate=aggregate)
    assert ours.chunks is not None  # the kept counts stay lazy
    labels = ours.gene.values if aggregate else ours.symbol.values
    assert list(labels) == list(theirs.index)
    np.testing.assert_array_equal(ours.values, theirs.values)


def test_rule_is_strictly_more_reads_in_at_least_the_fraction():
    x = np.array([[21, 0, 0, 0], [20, 20, 20, 20], [21, 21, 0, 0]], dtype=np.uint32)
    arr = xr.DataArray(x, dims=("gene", "sample"), coords={"symbol": ("gene", ["a", "b", "c"])})
    assert expressed_genes(arr, 20, 0.5).values.tolist() == [False, False, True]
    assert expressed_genes(arr, 20, 0.25).values.tolist() == [True, False, True]
    kept = filter_genes(arr, 20, 0.25)
    assert kept.gene.values.tolist() == ["a", "c"]


def test_missing_symbols_are_dropped_and_errors():
    x = np.arange(12, dtype=np.uint32).reshape(4, 3)
    arr = xr.DataArray(
        x, dims=("gene", "sample"), coords={"symbol": ("gene", np.array(["b", None, "a", "b"], dtype=object))}
    ).chunk({"sample": 2})  # fmt: skip
    agg = aggregate_duplicate_genes(arr)
    assert agg.gene.values.tolist() == ["a", "b"]
    np.testing.assert_array_equal(agg.values, [x[2], x[0] + x[3]])
    with pytest.raises(ValueError, match="no 'ensembl' coordinate"):
        aggregate_duplicate_genes(arr, by="ensembl")
    with pytest.raises(ValueError, match="sample_threshold"):
        expressed_genes(arr, 1, 2.0)
    with pytest.raises(TypeError, match="DataArray or Dataset"):
        filter_genes(x)


def test_transcripts_and_dataset_input(transcript_file):
    ds = archs4x.open_dataset(transcript_file).isel(sample=slice(0, 10))
    kept = filter_genes(ds, read_threshold=5, sample_threshold=0.1, aggregate=False)
    assert kept.dims == ("transcript", "sample") and 0 < kept.sizes["transcript"]
    mask = (ds.counts.values > 5).sum(axis=1) >= 10 * 0.1
    assert kept.sizes["transcript"] == int(mask.sum())
