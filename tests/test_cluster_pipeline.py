"""The whole path on a real cluster (``dask scheduler`` + two ``dask worker`` processes).

open -> search -> remove single-cell -> filter genes -> normalize (every method) ->
to_zarr, plus an alignment of two samples: each result equals the local threaded run
exactly, and the selection and its counts equal the file read with h5py.
"""

from __future__ import annotations

import re

import dask
import h5py
import numpy as np
import pytest
import xarray as xr
from distributed import get_task_stream

import archs4x
from archs4x import align

from ._align_data import fasta, kallisto_bin, ref, simulate_reads, transcriptome, true_counts  # noqa: F401 (fixtures)

pytestmark = pytest.mark.cluster

METHODS = ("quantile", "log_quantile", "cpm", "tmm")


def _pipeline(path, out):
    ds = archs4x.open_dataset(path, sample_chunk=40)
    hits = ds.archs4.search("myoblast|liver|T cell").archs4.remove_single_cell()
    lib = hits.counts.sum("gene").compute()
    hits = hits.isel(sample=np.flatnonzero(lib.values > 0))  # TMM needs reads
    kept = archs4x.filter_genes(hits, read_threshold=20, sample_threshold=0.1)
    normalized = {m: archs4x.normalize(kept, m).compute() for m in METHODS}
    store = archs4x.to_zarr(hits, out, layout="gene")
    return hits, kept.compute(), normalized, archs4x.open_zarr(store).compute()


def test_whole_path_equals_threaded(cluster, gene_file, tmp_path):
    with dask.config.set(scheduler="threads"):
        local = _pipeline(gene_file, tmp_path / "local.zarr")
    with cluster.as_current(), get_task_stream(client=cluster) as stream:
        remote = _pipeline(gene_file, tmp_path / "cluster.zarr")
    # the work really ran on the two worker processes
    assert len({t["worker"] for t in stream.data}) == 2
    hits_l, kept_l, norm_l, zarr_l = local
    hits_c, kept_c, norm_c, zarr_c = remote
    # the selection, restated on the file read with h5py: Python's re on the default fields,
    # single-cell probability < 0.5, at least one read
    fields = ("characteristics_ch1", "extract_protocol_ch1", "source_name_ch1", "title")
    with h5py.File(gene_file, "r") as f:
        gsm = f["meta/samples/geo_accession"].asstr()[:]
        text = {k: f[f"meta/samples/{k}"].asstr()[:] for k in fields}
        scp = f["meta/samples/singlecellprobability"][:]
        counts = f["data/expression"][:]
    rx = re.compile("myoblast|liver|T cell", re.IGNORECASE)
    want = [i for i in range(gsm.size)
            if scp[i] < 0.5 and counts[:, i].sum() > 0 and any(rx.search(text[k][i]) for k in fields)]  # fmt: skip
    assert hits_c.sample.values.tolist() == gsm[want].tolist()
    np.testing.assert_array_equal(zarr_c.counts.values, counts[:, want])
    assert hits_l.sizes["sample"] > 10
    np.testing.assert_array_equal(hits_l.sample.values, hits_c.sample.values)
    xr.testing.assert_identical(kept_l, kept_c)
    assert kept_l.sizes["gene"] < hits_l.sizes["gene"]
    for m in METHODS:
        xr.testing.assert_identical(norm_l[m], norm_c[m])
        assert np.isfinite(norm_l[m].values).all()
    xr.testing.assert_identical(zarr_l, zarr_c)
    np.testing.assert_array_equal(zarr_c.counts.values, hits_l.counts.values)


def test_alignment_of_two_samples_on_cluster(cluster, ref, transcriptome, tmp_path):  # noqa: F811
    reads = tmp_path / "reads"
    reads.mkdir()
    for i, name in enumerate(("s1", "s2")):
        truth = true_counts(transcriptome, 5_000, seed=10 + i)
        simulate_reads(transcriptome, truth, reads / f"{name}.fastq.gz", seed=20 + i)
    with dask.config.set(scheduler="threads"):
        local = align.folder(ref, reads)
    with cluster.as_current(), get_task_stream(client=cluster) as stream:
        remote = align.folder(ref, reads)
    assert stream.data, "the quantification tasks ran on the workers"
    assert list(local.sample.values) == ["s1", "s2"]
    timing = "kallisto_seconds"  # wall time of each run: the one thing allowed to differ
    xr.testing.assert_identical(local.drop_vars(timing), remote.drop_vars(timing))
    assert int(local.counts.sum()) > 8_000
