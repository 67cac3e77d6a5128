"""archs4x.embedding.fit / Embedding: exactness against NumPy, laziness, persistence, errors."""

from __future__ import annotations

import dask
import numpy as np
import pytest
import scipy.linalg
import xarray as xr

import archs4x
from archs4x.embedding import (
    EmbeddingMismatchError,
    GeneMismatchError,
    NeighbourIndex,
    exact_search,
    fit,
    load,
)
from archs4x.embedding.model import Embedding
from tests._laziness import raise_if_dask_computes


def planted_counts(n_genes=300, n_samples=200, rank=5, seed=0) -> xr.DataArray:
    """Counts whose log-means have rank-``rank`` structure (log-CPM adds one more direction,
    the composition of the libraries: six components, then a wide gap)."""
    rng = np.random.default_rng(seed)
    base = rng.normal(3.0, 1.0, n_genes)
    u = np.linalg.qr(rng.normal(size=(n_genes, rank)))[0]
    w = rng.normal(size=(rank, n_samples)) * np.array([8, 7, 6, 5, 4.0])[:rank, None]
    mu = np.exp(base[:, None] + u @ w)
    counts = rng.poisson(mu * 200).astype(np.uint32)
    return xr.DataArray(
        counts,
        dims=("gene", "sample"),
        coords={"gene": [f"ENSG{i:011d}" for i in range(n_genes)],
                "sample": [f"S{j}" for j in range(n_samples)]},
    )  # fmt: skip


def reference_matrix(counts: np.ndarray, n_genes: int, prior: float = 2.0):
    """NumPy transcription: edgeR log-CPM, top-variance genes, centred sample x gene matrix."""
    x = counts.astype(np.float64)
    lib = x.sum(axis=0)
    scaled = prior * lib / lib.mean()
    y = np.log2((x + scaled) / (lib + 2 * scaled) * 1e6)
    var = y.var(axis=1, ddof=1)
    rows = np.sort(np.argsort(-var, kind="stable")[:n_genes])
    means = y[rows].mean(axis=1)
    return rows, (y[rows] - means[:, None]).T, means


@pytest.fixture(scope="module")
def example():
    return archs4x.open_dataset(archs4x.datasets.example_file())


@pytest.fixture(scope="module")
def bulk_embedding(example):
    return fit(example.archs4.remove_single_cell(), n_components=20, n_genes=700).compute()


def test_fit_equals_numpy_svd_of_the_centred_matrix():
    """Subspace angles below 1e-6 against numpy.linalg.svd when the spectrum has a gap.

    The randomised SVD's subspace error shrinks like (s[k+p]/s[k])**(2q+1): with a gap of
    the planted structure, n_power_iter=4 and n_oversamples=30 reach round-off.
    """
    arr = planted_counts()
    k = 6
    emb = fit(arr, n_components=k, n_genes=150, n_power_iter=4, n_oversamples=30).compute()
    rows, x, means = reference_matrix(arr.values, 150)
    u, s, vt = np.linalg.svd(x, full_matrices=False)
    assert s[k - 1] / s[k] > 10  # the gap
    assert emb.genes.tolist() == arr.gene.values[rows].tolist()
    np.testing.assert_allclose(emb.gene_mean.values, means, rtol=1e-12)
    angles = scipy.linalg.subspace_angles(vt[:k].T, emb.loadings.values.T)
    assert angles.max() < 1e-6
    np.testing.assert_allclose(emb.singular_values.values, s[:k], rtol=1e-9)
    # coordinates: the centred matrix on the loadings, spanning NumPy's left vectors
    np.testing.assert_allclose(emb.coordinates.values, x @ emb.loadings.values.T, atol=1e-9)
    assert scipy.linalg.subspace_angles(u[:, :k], emb.coordinates.values).max() < 1e-6
    # the explained variance is relative to the total variance of the kept genes
    total = x.var(axis=0, ddof=1).sum()
    np.testing.assert_allclose(emb.explained_variance_ratio.values,
                               s[:k] ** 2 / (x.shape[0] - 1) / total, rtol=1e-9)  # fmt: skip


def test_log_cpm_is_archs4x_cpm_and_gene_means_match(example):
    """The transform is archs4x.cpm(log=True) (tested against edgeR's formula elsewhere)."""
    sub = example.isel(sample=slice(0, 60))
    emb = fit(sub, n_components=4, n_genes=100).compute()
    ref = archs4x.cpm(sub.counts, log=True).values
    np.testing.assert_allclose(emb.gene_mean.values,
                               ref[np.isin(sub.gene.values, emb.genes)].mean(axis=1),
                               rtol=1e-10)  # fmt: skip
    var = ref.var(axis=1, ddof=1)
    assert set(emb.genes) == set(sub.gene.values[np.argsort(-var, kind="stable")[:100]])


def test_transform_of_fitted_samples_reproduces_their_coordinates(example, bulk_embedding):
    emb = bulk_embedding
    bulk = example.archs4.remove_single_cell()
    back = emb.transform(bulk.isel(sample=slice(0, 40)))
    np.testing.assert_allclose(back.values, emb.coordinates.values[:40], rtol=1e-9, atol=1e-9)
    assert back.sample.values.tolist() == emb.samples[:40].tolist()
    # a pandas frame (genes x samples) with versioned Ensembl ids, genes shuffled
    frame = bulk.isel(sample=slice(5, 8)).counts.to_pandas()
    frame.index = [f"{g}.7" for g in frame.index]
    frame = frame.sample(frac=1.0, random_state=1)
    np.testing.assert_allclose(emb.transform(frame).values, emb.coordinates.values[5:8],
                               rtol=1e-9, atol=1e-9)  # fmt: skip


def test_fit_is_lazy_until_computed_and_any_scheduler_agrees(example):
    sub = example.isel(sample=slice(0, 80))
    with raise_if_dask_computes():
        emb = fit(sub, n_components=6, n_genes=200)
        assert emb.lazy
        repr(emb)
    with dask.config.set(scheduler="synchronous"):
        a = fit(sub, n_components=6, n_genes=200).compute()
    b = emb.compute()
    assert not b.lazy and b is emb
    np.testing.assert_allclose(a.coordinates.values, b.coordinates.values, atol=1e-9)
    assert a.fingerprint == b.fingerprint


@pytest.mark.cluster
def test_fit_on_a_distributed_cluster(example, cluster):
    sub = example.isel(sample=slice(0, 80))
    local = fit(sub, n_components=6, n_genes=200).compute()
    with cluster.as_current():
        remote = fit(sub, n_components=6, n_genes=200).compute()
    np.testing.assert_allclose(remote.coordinates.values, local.coordinates.values, atol=1e-9)


def test_save_load_round_trip_and_provenance(example, tmp_path):
    sub = example.isel(sample=slice(0, 50))
    emb = fit(sub, n_components=5, n_genes=150, description="first 50")
    path = emb.save(tmp_path / "e.zarr")
    back = load(path)
    assert back.fingerprint == emb.fingerprint
    for name in ("coordinates", "loadings", "gene_mean", "singular_values"):
        xr.testing.assert_equal(getattr(back, name), getattr(emb, name))
    src = back.source
    assert src["kind"] == "file" and src["release"] == "2.5" and src["level"] == "gene"
    assert src["cache_key"] == example.xindexes["sample"].source.cache_key
    assert back.selection["description"] == "first 50"
    assert back.selection["n_samples"] == 50
    assert back.params["seed"] == 0 and back.params["n_genes"] == 150
    np.testing.assert_allclose(back.transform(sub.isel(sample=[3])).values,
                               emb.coordinates.values[[3]], atol=1e-9)  # fmt: skip
    with pytest.raises(FileNotFoundError, match="no embedding"):
        load(tmp_path / "missing.zarr")


def test_index_is_persisted_and_invalidated_when_the_embedding_changes(example, tmp_path):
    import zarr

    emb = fit(example.isel(sample=slice(0, 120)), n_components=6, n_genes=200)
    path = emb.save(tmp_path / "e.zarr")
    index = emb.neighbours("cosine", method="hnsw")

    def graphs():
        return sorted(zarr.open_group(str(path), mode="r")["neighbours"].array_keys())

    assert graphs() == [f"cosine-{emb.fingerprint}"]
    note = dict(zarr.open_group(str(path), mode="r")[f"neighbours/cosine-{emb.fingerprint}"].attrs)
    assert note["library"] == "faiss" and note["n"] == 120 and note["kind"] == "IndexHNSWFlat"
    # loaded again: the saved graph is used (same answers), not rebuilt
    again = load(path)
    opened = NeighbourIndex.open(path, again.fingerprint, again.coordinates.values, "cosine",
                                 method="hnsw")  # fmt: skip
    assert opened is not None
    q = emb.coordinates.values[:10]
    assert (opened.search(q, 5)[1] == index.search(q, 5)[1]).all()
    # another fit saved over it: the old graph is gone, a stale one is never used
    other = fit(example.isel(sample=slice(0, 120)), n_components=6, n_genes=200, seed=1)
    other.save(path)
    changed = load(path)
    assert changed.fingerprint != emb.fingerprint
    assert NeighbourIndex.open(path, emb.fingerprint, changed.coordinates.values, "cosine",
                               method="hnsw") is None  # fmt: skip
    changed.neighbours("cosine", method="hnsw")
    assert graphs() == [f"cosine-{changed.fingerprint}"]


def test_exact_search_equals_brute_force():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(300, 7))
    q = rng.normal(size=(4, 7))
    for metric in ("euclidean", "cosine"):
        d, i = exact_search(x, q, 12, metric)
        if metric == "euclidean":
            full = np.linalg.norm(x[None] - q[:, None], axis=2)
        else:
            xn = x / np.linalg.norm(x, axis=1, keepdims=True)
            qn = q / np.linalg.norm(q, axis=1, keepdims=True)
            full = 1 - qn @ xn.T
        ref = np.argsort(full, axis=1, kind="stable")[:, :12]
        assert (i == ref).all()
        np.testing.assert_allclose(d, np.take_along_axis(full, ref, 1), atol=1e-12)


def test_errors(example, bulk_embedding):
    with pytest.raises(ValueError, match="n_components=500 is larger"):
        fit(example.isel(sample=slice(0, 30)), n_components=500)
    with pytest.raises(ValueError, match="unsupported transform"):
        fit(example, transform="tpm")  # type: ignore[arg-type]
    # a gene mismatch lists the missing genes
    frame = example.isel(sample=[0]).counts.to_pandas()
    missing = bulk_embedding.genes[:3]
    with pytest.raises(
        GeneMismatchError, match=f"lack 3 of the embedding's 700 genes.*{missing[0]}"
    ):
        bulk_embedding.transform(frame.drop(index=missing))
    # empty libraries: dropped and listed, or an error
    empty = archs4x.open_dataset(archs4x.datasets.example_file(empty_libraries=True))
    sub = empty.isel(sample=slice(195, 215))
    emb = fit(sub, n_components=3, n_genes=50).compute()
    assert emb.dropped and all(g not in emb.samples for g in emb.dropped)
    with pytest.raises(archs4x.EmptyLibraryError, match="empty library"):
        fit(sub, n_components=3, n_genes=50, empty="raise").compute()


def test_embedding_from_another_release_is_refused(example, bulk_embedding, tmp_path):
    from archs4x.datasets import write_archs4_file

    other = write_archs4_file(tmp_path / "v22.h5", n_genes=4500, n_samples=400, version="2.2")
    ds22 = archs4x.open_dataset(other)
    with pytest.raises(EmbeddingMismatchError, match=r"fitted on ARCHS4 v2.5 gene file.*v2.2"):
        ds22.archs4.similar(ds22.sample.values[0], k=3, embedding=bulk_embedding)
    # a copy of the same file (another path and inode) is accepted
    import shutil

    copy = tmp_path / "copy.h5"
    shutil.copy(archs4x.datasets.example_file(), copy)
    same = archs4x.open_dataset(copy)
    assert len(same.archs4.similar("GSM1482938", k=3, embedding=bulk_embedding)) == 3
    # another file of the same release, the same ids at the same positions, other counts
    other = write_archs4_file(tmp_path / "v25.h5", n_genes=4500, n_samples=400, seed=9)
    ds_o = archs4x.open_dataset(other).assign_coords(sample=example.sample.values)
    with pytest.raises(EmbeddingMismatchError, match="other counts for its samples"):
        ds_o.archs4.similar("GSM1482938", k=3, embedding=bulk_embedding)


def test_embedding_is_not_made_directly():
    with pytest.raises(TypeError, match="made by archs4x.embedding.fit"):
        Embedding()
