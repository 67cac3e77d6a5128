"""Extraction on a real cluster: scheduler and workers are separate processes."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

import archs4x

pytestmark = pytest.mark.cluster


def test_extract_on_process_cluster(cluster, gene_file, gene_matrix):
    ds = archs4x.open_dataset(gene_file, sample_chunk=50)
    idx = [399, 3, 150, 151, 3, 260]
    sub = ds.isel(sample=idx)
    got = cluster.compute(sub.counts.data).result()
    np.testing.assert_array_equal(got, gene_matrix[:, idx])
    # a reduction over the whole file, computed by the workers
    total = cluster.compute(ds.counts.sum("gene").data).result()
    np.testing.assert_array_equal(total, gene_matrix.sum(0))
    # the work ran in other processes
    pids = cluster.run(lambda: __import__("os").getpid())
    assert len(pids) == 2 and __import__("os").getpid() not in pids.values()


def test_metadata_on_cluster(cluster, gene_file):
    ds = archs4x.open_dataset(gene_file)
    # metadata coordinates are lazily indexed file arrays; chunked, they run on workers
    series = cluster.compute(ds.series_id.chunk().data).result()
    with h5py.File(gene_file, "r") as f:
        want = f["meta/samples/series_id"].asstr()[:]
    np.testing.assert_array_equal(series, want)
