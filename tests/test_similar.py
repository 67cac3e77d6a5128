"""ds.archs4.similar: ANN recall against exact search, planted tissues, your own FASTQ."""

from __future__ import annotations

# ruff: noqa: F811  (pytest fixtures imported from tests._align_data)
import numpy as np
import pandas as pd
import pytest
import xarray as xr

import archs4x
from archs4x.embedding import NeighbourIndex, exact_search, fit
from tests._align_data import kallisto_bin  # noqa: F401  (fixture)
from tests._laziness import raise_if_dask_computes


@pytest.fixture(scope="module")
def example():
    return archs4x.open_dataset(archs4x.datasets.example_file())


@pytest.fixture(scope="module")
def bulk(example):
    return example.archs4.remove_single_cell()


@pytest.fixture(scope="module")
def emb(bulk):
    return fit(bulk, n_components=20, n_genes=700).compute()


def test_ann_recall_at_20_against_exact_search():
    """faiss HNSW (the index used above 50,000 samples) finds >= 95% of the exact top 20."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((10_000, 50))
    q = rng.standard_normal((200, 50))
    for metric in ("euclidean", "cosine"):
        ann = NeighbourIndex(x, metric, method="hnsw")
        d, got = ann.search(q, 20)
        _, truth = exact_search(x, q, 20, metric)
        recall = np.mean([len(set(a) & set(b)) / 20 for a, b in zip(got, truth, strict=True)])
        assert recall >= 0.95, (metric, recall)
        assert (np.diff(d, axis=1) >= -1e-6).all()  # nearest first


def test_planted_tissues_are_each_others_neighbours(bulk, emb):
    """Every bulk sample of the example: >= 90% of its top-10 neighbours share its tissue.

    The example's counts come from tissue programmes (marker genes, ~2% of genes up per
    tissue) under series batch effects; the tissue is ``source_name_ch1``.
    """
    tissue = np.asarray(bulk.source_name_ch1.values)
    shares = {}
    for metric in ("euclidean", "cosine"):
        _, idx = emb.neighbours(metric).search(emb.coordinates.values, 11)
        assert (idx[:, 0] == np.arange(len(idx))).all()  # itself first
        shares[metric] = (tissue[idx[:, 1:]] == tissue[:, None]).mean(axis=1)
    assert shares["euclidean"].min() >= 0.9  # every sample (the default metric)
    # cosine: all but one sample (one bone-marrow sample has 8 of 10), as measured
    assert shares["cosine"].mean() >= 0.99 and (shares["cosine"] < 0.9).sum() <= 1


def test_similar_frame_for_gsm_queries(example, bulk, emb):
    hits = example.archs4.similar(["GSM1482938", "GSM1000003"], k=10, embedding=emb)
    assert list(hits.columns[:8]) == ["query", "rank", "gsm", "distance", "title", "series",
                                      "source_name", "tissue"]  # fmt: skip
    assert "cell_type" in hits.columns  # parsed characteristics
    assert len(hits) == 20 and hits["rank"].tolist() == list(range(1, 11)) * 2
    for q, part in hits.groupby("query"):
        assert q not in part["gsm"].tolist()  # a fitted sample is not its own neighbour
        assert part["distance"].is_monotonic_increasing
        own = str(example.sel(sample=q).source_name_ch1.values)
        assert (part["source_name"] == own).mean() >= 0.9
    # distances are the embedding's, the metadata the file's
    x = emb.coordinates.sel(sample="GSM1482938").values
    first = hits.iloc[0]
    assert first["distance"] == pytest.approx(
        float(np.linalg.norm(emb.coordinates.sel(sample=first["gsm"]).values - x))
    )
    meta = example.archs4.meta(["title", "series_id"]).loc[first["gsm"]]
    assert (first["title"], first["series"]) == (meta["title"], meta["series_id"])


def test_similar_for_counts_queries_and_lazy_neighbours(example, bulk, emb):
    # a single-cell sample of the file (not fitted) is projected from its counts
    sc = str(example.sample.values[np.flatnonzero(example.singlecellprobability.values >= 0.5)[0]])
    by_id = example.archs4.similar(sc, k=5, embedding=emb)
    by_counts = example.archs4.similar(example.archs4.samples([sc]).counts, k=5, embedding=emb)
    assert by_id["gsm"].tolist() == by_counts["gsm"].tolist()
    # a pandas frame (genes x samples) of two fitted samples: each finds itself first
    frame = bulk.isel(sample=[3, 7]).counts.to_pandas()
    hits, neighbours = example.archs4.similar(frame, k=4, embedding=emb, as_dataset=True)
    firsts = hits[hits["rank"] == 1].set_index("query")["gsm"]
    assert firsts.to_dict() == {s: s for s in frame.columns}
    assert hits.loc[hits["rank"] == 1, "distance"].max() < 1e-6
    assert isinstance(neighbours, xr.Dataset) and set(neighbours.sample.values) == set(hits.gsm)
    with raise_if_dask_computes():
        neighbours.counts.sum()  # still lazy
    # a selection of the file: only its samples are candidates (exact search)
    liver = example.archs4.search("liver", fields=["source_name_ch1"])
    hits = liver.archs4.similar("GSM1000003", k=3, embedding=emb, metric="cosine")
    assert set(hits["source_name"]) == {"liver"}


def test_similar_errors(example, emb):
    with pytest.raises(
        ValueError, match=r"k=400 is larger than the 337 samples.*query itself excluded"
    ):
        example.archs4.similar("GSM1482938", k=400, embedding=emb)
    with pytest.raises(KeyError, match="neither in the embedding nor in the Dataset: GSM9"):
        example.archs4.similar(["GSM1482938", "GSM9"], k=3, embedding=emb)
    with pytest.raises(ValueError, match="unsupported metric"):
        example.archs4.similar("GSM1482938", k=3, embedding=emb, metric="manhattan")
    with pytest.raises(TypeError, match="query must be GSM id"):
        example.archs4.similar(3.5, k=3, embedding=emb)
    frame = pd.DataFrame({"x": [1, 2]}, index=["ENSG00000000001", "ENSG00000000002"])
    with pytest.raises(
        archs4x.embedding.GeneMismatchError,
        match=r"lack 6\d\d of the embedding.s 700 genes .matched by Ensembl gene id.: ENSG",
    ):
        example.archs4.similar(frame, k=3, embedding=emb)


def test_a_simulated_fastq_finds_its_tissue_first(example, bulk, emb, kallisto_bin, tmp_path):
    """Reads simulated from the liver profile, aligned with kallisto: liver samples first.

    The reference has one transcript per gene of the example file (Ensembl ids of the
    file), so the aligned counts line up with the embedding's genes; reads per transcript
    follow the mean liver profile of the example's bulk samples.
    """
    from archs4x import align
    from archs4x.align.simulate import make_transcriptome, simulate_reads

    genes = example.gene.values.astype(str)
    t = make_transcriptome(gene_ids=genes, per_gene=(1, 1), length=(200, 260), seed=4)
    cdna, ncrna = t.write_fasta(tmp_path / "fasta")
    ref = align.reference(None, cdna=cdna, ncrna=ncrna, cache_dir=tmp_path / "cache")
    liver = bulk.archs4.search("^liver$", fields=["source_name_ch1"]).counts.values
    profile = (liver / liver.sum(axis=0)).mean(axis=1)
    order = pd.Index(genes).get_indexer(t.gene_ids)
    reads = np.random.default_rng(5).multinomial(150_000, profile[order] / profile.sum())
    simulate_reads(t, reads, tmp_path / "liver_run.fastq.gz", seed=6)
    mine = align.fastq(ref, tmp_path / "liver_run.fastq.gz", progress=False)
    hits = example.archs4.similar(mine, k=10, embedding=emb)
    assert hits["query"].unique().tolist() == ["liver_run"]
    assert (hits["source_name"] == "liver").all(), hits[["gsm", "source_name", "distance"]]


def test_similar_in_a_selection_without_the_fitted_query(example, bulk, emb):
    """A fitted query outside the selection is not subtracted from the candidates."""
    query = str(bulk.sample.values[0])
    others = bulk.isel(sample=slice(1, 6))
    hits = others.archs4.similar(query, k=5, embedding=emb)
    assert sorted(hits["gsm"]) == sorted(others.sample.values.astype(str))
    with pytest.raises(ValueError, match="larger than the 5 samples"):
        others.archs4.similar(query, k=6, embedding=emb)
    # with the query among the candidates it is still left out of its own neighbours
    with pytest.raises(ValueError, match="the query itself excluded"):
        bulk.isel(sample=slice(0, 6)).archs4.similar(query, k=6, embedding=emb)


def test_fit_refuses_repeated_samples(example):
    repeated = example.isel(sample=[3, 3, *range(10, 40)])
    with pytest.raises(ValueError, match="each sample once.*GSM1000009"):
        fit(repeated, n_components=3, n_genes=100)
