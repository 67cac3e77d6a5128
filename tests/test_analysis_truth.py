"""The analyses recover the truth planted in the example data, run on a real cluster as
on threads, hand a study to the real pydeseq2, and the README's analysis section runs.

Truth: :func:`archs4x.datasets.synthetic.planted_expression` (tissue programmes, markers,
poor samples) of ``example_file(poor_samples=0.05)``.
"""

from __future__ import annotations

import re
from pathlib import Path

import dask
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from distributed import get_task_stream
from scipy import stats

import archs4x
from archs4x.datasets.synthetic import planted_expression

POOR = 0.05
README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.fixture(scope="module")
def truth():
    return planted_expression(poor_samples=POOR)


@pytest.fixture(scope="module")
def bulk():
    """The example's bulk samples passing QC (mitochondrial share <= 20%)."""
    ds = archs4x.open_dataset(archs4x.datasets.example_file(poor_samples=POOR))
    return ds.archs4.remove_single_cell().archs4.qc_filter(max_mito=0.2)


def auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Mann-Whitney AUC: the chance a positive outranks a negative (ties count half)."""
    ranks = stats.rankdata(scores)
    n1, n0 = positive.sum(), (~positive).sum()
    return float((ranks[positive].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def test_qc_filter_removes_exactly_the_planted_poor_samples(truth):
    ds = archs4x.open_dataset(archs4x.datasets.example_file(poor_samples=POOR))
    bulk = ds.archs4.remove_single_cell()
    kept = bulk.archs4.qc_filter(max_mito=0.2)
    removed = set(bulk.sample.values) - set(kept.sample.values)
    assert removed == set(truth["poor"]) and len(removed) >= 10
    # thresholds on library size and genes detected remove them too (and no good sample)
    table = bulk.archs4.qc().compute()
    poor = np.isin(bulk.sample.values, truth["poor"])
    assert table.mito_fraction.values[poor].min() > 0.3 > 0.1 > table.mito_fraction.values[
        ~poor].max()  # fmt: skip
    kept2 = bulk.archs4.qc_filter(min_genes=3_470, qc_table=table)
    assert set(truth["poor"]).isdisjoint(kept2.sample.values)
    assert kept2.sizes["sample"] == (~poor).sum()
    # a lazy selection: counts unread, composes with other queries
    assert kept.counts.chunks is not None
    assert kept.archs4.search("liver").sizes["sample"] > 10
    assert table.attrs["mito_genes"] == 13


def test_coexpression_recovers_programme_members(bulk, truth):
    """Query the 5 most expressed genes of each tissue's programme (genes of one programme
    only): precision at 20 (partners in the programme) >= 0.9 at the median over the 75
    queries, and >= 0.85 at the median of every tissue."""
    expr = (bulk.counts / bulk.counts.sum("gene")).mean("sample").compute().to_series()
    owners: dict[str, int] = {}
    for genes in truth["programmes"].values():
        for g in genes:
            owners[g] = owners.get(g, 0) + 1
    queries, programme_of = [], []
    for tissue, genes in truth["programmes"].items():
        own = [g for g in genes if owners[g] == 1]
        best = expr[own].sort_values(ascending=False).index[:5].tolist()
        queries += best
        programme_of += [tissue] * len(best)
    top = archs4x.coexpression(bulk, queries, k=20).compute()
    precision = pd.Series(
        [np.isin(top.gene.values[i], truth["programmes"][t]).mean()
         for i, t in enumerate(programme_of)],
        index=programme_of,
    )  # fmt: skip
    assert precision.median() >= 0.9, precision
    assert precision.groupby(level=0).median().min() >= 0.85, precision


def test_diffexp_ranks_planted_markers_first(bulk, truth):
    liver = bulk.archs4.search("^liver$", fields=["source_name_ch1"])
    kidney = bulk.archs4.search("^kidney$", fields=["source_name_ch1"])
    res = archs4x.diffexp(bulk, (liver, kidney)).compute().to_dataframe()
    planted = res.index.isin(truth["programmes"]["liver"] + truth["programmes"]["kidney"])
    tested = np.isfinite(res.pvalue.to_numpy())
    assert tested.sum() > 2_000 and planted[tested].sum() > 100
    score = -np.log10(res.pvalue.to_numpy()[tested])
    assert auc(score, planted[tested]) >= 0.95
    # the liver markers lead, up in liver
    best = res[tested].sort_values("pvalue")
    assert set(truth["markers"]["liver"]) <= set(best.index[:20])
    assert (res.loc[truth["markers"]["liver"], "log2_fold_change"] > 2).all()
    mwu = archs4x.diffexp(bulk, (liver, kidney), test="mannwhitney").compute().to_dataframe()
    ok = np.isfinite(mwu.pvalue.to_numpy())
    assert auc(-np.log10(mwu.pvalue.to_numpy()[ok]), planted[ok]) >= 0.9


def test_score_genesets_separate_the_tissues(bulk, truth):
    sets = {t: truth["programmes"][t] for t in ("liver", "brain cortex", "kidney")}
    tissue = bulk.source_name_ch1.values
    for method in ("mean_z", "rank"):
        scores = archs4x.score_genesets(bulk, sets, method=method).compute()
        for t in sets:
            assert auc(scores.sel(geneset=t).values, tissue == t) >= 0.99, (method, t)


def _analyses(path):
    ds = archs4x.open_dataset(path, sample_chunk=40).archs4.remove_single_cell()
    in_a = ds.source_name_ch1.values == "liver"
    return (
        archs4x.coexpression(ds, ["ALB", "MYOD1"], k=10).compute(),
        archs4x.coexpression(ds, ["ALB"], k=10, method="spearman").compute(),
        archs4x.correlation(ds, ["ALB", "APOA1", "MYOD1"]).compute(),
        archs4x.diffexp(ds, in_a).compute(),
        archs4x.diffexp(ds, in_a, test="mannwhitney", blocking="series_id").compute(),
        archs4x.qc(ds).compute(),
        archs4x.score_genesets(ds, {"liver": ["ALB", "APOA1"]}).compute(),
        archs4x.score_genesets(ds, {"liver": ["ALB", "APOA1"]}, method="rank").compute(),
    )


@pytest.mark.cluster
def test_cluster_equals_threads(cluster, gene_file):
    with dask.config.set(scheduler="threads"):
        local = _analyses(gene_file)
    with cluster.as_current(), get_task_stream(client=cluster) as stream:
        remote = _analyses(gene_file)
    assert len({t["worker"] for t in stream.data}) == 2
    for a, b in zip(local, remote, strict=True):
        xr.testing.assert_identical(a, b)


def test_to_pydeseq2_runs_the_real_pydeseq2_on_a_small_study(bulk):
    from pydeseq2.dds import DeseqDataSet
    from pydeseq2.ds import DeseqStats

    liver = bulk.archs4.search("^liver$", fields=["source_name_ch1"]).isel(sample=slice(0, 8))
    kidney = bulk.archs4.search("^kidney$", fields=["source_name_ch1"]).isel(sample=slice(0, 8))
    study = xr.concat([liver, kidney], dim="sample")
    study = study.isel(gene=slice(0, 400)).assign_coords(
        condition=("sample", ["liver"] * 8 + ["kidney"] * 8)
    )
    dds = archs4x.interop.to_pydeseq2(study, design="~condition", quiet=True)
    assert isinstance(dds, DeseqDataSet)
    # counts and metadata in pydeseq2's shapes: samples x genes, obs indexed by GSM
    assert dds.shape == (16, 400)
    np.testing.assert_array_equal(dds.X, study.counts.values.T)
    assert dds.obs_names.tolist() == study.sample.values.tolist()
    assert dds.var_names.tolist() == study.gene.values.tolist()
    dds.deseq2()
    res = DeseqStats(dds, contrast=["condition", "liver", "kidney"], quiet=True)
    res.summary()
    table = res.results_df
    alb = study.gene.values[study.symbol.values == "ALB"][0]
    assert table.loc[alb, "log2FoldChange"] > 3 and table.loc[alb, "padj"] < 1e-3
    with pytest.raises(ValueError, match="max_samples"):
        archs4x.interop.to_pydeseq2(bulk, max_samples=10)


def test_readme_analysis_section_runs():
    text = README.read_text()
    section = text.split("<!-- section:analysis -->", 1)[1].split("<!-- /section:analysis -->")[0]
    blocks = re.findall(r"```python\n(.+?)\n```", section, flags=re.S)
    assert blocks
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, "README.md (analysis)", "exec"), namespace)


def test_qc_filter_aligns_a_qc_table_of_another_sample_order(truth):
    """A qc_table computed before a sortby is matched by GSM id, never by position."""
    ds = archs4x.open_dataset(archs4x.datasets.example_file(poor_samples=POOR))
    table = ds.archs4.qc().compute()
    reordered = ds.sortby("singlecellprobability")
    kept = reordered.archs4.qc_filter(max_mito=0.2, qc_table=table)
    assert list(kept.sample.values) == list(reordered.archs4.qc_filter(max_mito=0.2).sample.values)
    assert set(truth["poor"]).isdisjoint(kept.sample.values)
    # a table of other samples (same number) is refused
    other = ds.isel(sample=slice(0, 10))
    with pytest.raises(ValueError, match="other samples"):
        ds.isel(sample=slice(10, 20)).archs4.qc_filter(max_mito=0.2, qc_table=other.archs4.qc())
