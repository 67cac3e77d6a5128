"""The analysis functions equal plain numpy / scipy / pandas references, on any matrix.

References are restated here, without archs4x: ``numpy.corrcoef``, ``scipy.stats.spearmanr``,
``scipy.stats.ttest_ind(equal_var=False)``, ``scipy.stats.mannwhitneyu`` (asymptotic,
tie-corrected), ``scipy.stats.false_discovery_control``, and pandas transcriptions of the QC
statistics and of both gene-set scores (mean z; singscore, Foroutan et al. 2018).  Random
matrices have ties, all-zero genes and uneven sample chunks (Hypothesis); laziness is
checked with a scheduler that raises.
"""

from __future__ import annotations

import warnings

import dask.array as da
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

import archs4x

from ._hypothesis import examples
from ._laziness import raise_if_dask_computes

RTOL = 1e-10


# -------------------------------------------------------------------------- references


def log_cpm(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    return np.log2(1.0 + x * (1e6 / x.sum(axis=0)))


def scale(x: np.ndarray, transform: str | None) -> np.ndarray:
    return log_cpm(x) if transform == "log_cpm" else x.astype(np.float64)


def spearman_reference(x: np.ndarray) -> np.ndarray:
    """scipy's spearmanr; where it gives one NaN for all (a constant row), the same
    definition, Pearson on average ranks, gene by gene."""
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", stats.ConstantInputWarning)
        out = stats.spearmanr(x, axis=1).statistic
        if np.ndim(out) == 2:
            return out
        return np.corrcoef(stats.rankdata(x, axis=1))


def qc_reference(x: np.ndarray, symbols: list[str]) -> pd.DataFrame:
    df = pd.DataFrame(x.astype(np.int64), index=symbols)
    lib = df.sum(axis=0)
    mito = df[df.index.str.upper().str.startswith("MT-")].sum(axis=0)
    return pd.DataFrame(
        {
            "library_size": lib.astype(float),
            "genes_detected": (df > 0).sum(axis=0),
            "top50_fraction": df.apply(lambda c: c.nlargest(50).sum()) / lib,
            "mito_fraction": mito / lib,
        }
    )


def constant_rows(x: np.ndarray) -> np.ndarray:
    """Rows whose values are equal up to rounding (16 units in the last place): their
    variance is rounding noise, 0 in exact arithmetic (e.g. log-CPM of the only gene
    expressed)."""
    spread = np.ptp(x, axis=1) if x.shape[1] else np.zeros(x.shape[0])
    return spread <= 16 * np.finfo(np.float64).eps * np.abs(x).max(axis=1, initial=0)


def mean_z_reference(x: np.ndarray, sets: dict[str, list[int]]) -> np.ndarray:
    df = pd.DataFrame(x)
    sd = df.std(axis=1)  # pandas: ddof=1
    z = df.sub(df.mean(axis=1), axis=0).div(sd, axis=0)
    z[constant_rows(x)] = 0.0  # a constant gene contributes 0
    return np.array([z.loc[rows].mean(axis=0).to_numpy() for rows in sets.values()])


def singscore_reference(x: np.ndarray, sets: dict[str, list[int]]) -> np.ndarray:
    df = pd.DataFrame(x)
    ranks = df.rank(axis=0, method="min")  # singscore::rankGenes default ties
    n = len(df)
    out = []
    for rows in sets.values():
        m = len(rows)
        low, high = (m + 1) / 2, (2 * n - m + 1) / 2
        out.append(((ranks.loc[rows].mean(axis=0) - low) / (high - low) - 0.5).to_numpy())
    return np.array(out)


# ----------------------------------------------------------------------------- inputs


def as_counts(x: np.ndarray, chunks: tuple[int, ...] | None = None, symbols=None):
    g, n = x.shape
    data = da.from_array(x, chunks=(g, chunks or n))
    symbols = symbols if symbols is not None else [f"S{i}" for i in range(g)]
    return xr.DataArray(
        data,
        dims=("gene", "sample"),
        coords={
            "gene": [f"ENSG{i:011d}" for i in range(g)],
            "symbol": ("gene", symbols),
            "sample": [f"GSM{j}" for j in range(n)],
        },
        name="counts",
    )


def split(n: int, cuts: list[int]) -> tuple[int, ...]:
    edges = sorted({c % n for c in cuts if 0 < c % n < n} | {0, n})
    return tuple(np.diff(edges).tolist())


@st.composite
def matrices(draw, min_genes=3, min_samples=4):
    g = draw(st.integers(min_genes, 12))
    n = draw(st.integers(min_samples, 30))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    top = draw(st.sampled_from([3, 20, 1000]))  # small tops give many ties
    x = rng.integers(0, top, size=(g, n)).astype(np.uint32)
    x[rng.random(g) < 0.2] = 0  # all-zero genes
    x[0] += 1  # every library > 0
    chunks = split(n, draw(st.lists(st.integers(1, n), max_size=4)))
    return x, chunks


def assert_close(actual, desired):
    np.testing.assert_allclose(actual, desired, rtol=RTOL, atol=1e-13, equal_nan=True)


# ------------------------------------------------------------------------ correlation


@settings(max_examples=examples(25), deadline=None)
@given(matrices(), st.sampled_from(["log_cpm", None]))
def test_correlation_equals_numpy_and_scipy(data, transform):
    x, chunks = data
    counts = as_counts(x, chunks)
    genes = [f"S{i}" for i in range(x.shape[0])]
    ref = scale(x, transform)
    with np.errstate(invalid="ignore", divide="ignore"):
        want_p = np.corrcoef(ref)
    # a constant gene has no correlation; numpy's mean leaves rounding noise in a
    # constant float row (e.g. log-CPM of equal libraries) and calls it 1 with itself
    constant = constant_rows(ref)
    want_p[constant, :] = np.nan
    want_p[:, constant] = np.nan
    got_p = archs4x.correlation(counts, genes, transform=transform).values
    assert_close(got_p, want_p)
    got_s = archs4x.correlation(counts, genes, method="spearman", transform=transform).values
    assert_close(got_s, spearman_reference(ref))


@settings(max_examples=examples(25), deadline=None)
@given(matrices(min_genes=4), st.sampled_from(["pearson", "spearman"]))
def test_coexpression_top_k_equals_reference(data, method):
    x, chunks = data
    counts = as_counts(x, chunks)
    ref = log_cpm(x)
    with np.errstate(invalid="ignore", divide="ignore"):
        full = np.corrcoef(ref) if method == "pearson" else spearman_reference(ref)
    k = 3
    top = archs4x.coexpression(counts, ["S1", "S2"], k=k, method=method).compute()
    for i, q in enumerate([1, 2]):
        col = full[:, q].copy()
        col[q] = np.nan
        ok = np.flatnonzero(~np.isnan(col))
        want = np.sort(col[ok])[::-1][:k]
        got = top.correlation.values[i][: want.size]
        assert_close(got, want)
        assert np.isnan(top.correlation.values[i][want.size :]).all()
        # the partners named are those whose reference correlation is the one given
        genes = top.gene.values[i][: want.size]
        rows = [int(str(g)[4:]) for g in genes]
        assert_close(col[rows], got)


# --------------------------------------------------------------------------- diffexp


@settings(max_examples=examples(25), deadline=None)
@given(matrices(min_samples=6), st.sampled_from(["log_cpm", None]), st.integers(0, 2**16))
def test_diffexp_equals_scipy(data, transform, seed):
    x, chunks = data
    n = x.shape[1]
    rng = np.random.default_rng(seed)
    in_a = np.zeros(n, bool)
    in_a[rng.permutation(n)[: rng.integers(2, n - 1)]] = True
    counts = as_counts(x, chunks)
    ref = scale(x, transform)
    a, b = ref[:, in_a], ref[:, ~in_a]

    welch = archs4x.diffexp(counts, in_a, transform=transform, min_expr=None).compute()
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # scipy: "catastrophic cancellation"
        want = stats.ttest_ind(a, b, axis=1, equal_var=False)
    assert_close(welch.mean_a.values, a.mean(axis=1))
    assert_close(welch.mean_b.values, b.mean(axis=1))
    # a gene whose values are all equal up to rounding (the only expressed gene, whose
    # log-CPM is log2(1 + 1e6) everywhere) has a variance of rounding noise: t is 0/0
    # in exact arithmetic and noise in any floating-point order, scipy's included
    degenerate = constant_rows(ref)
    assert np.isnan(welch.statistic.values[degenerate]).all()  # t undefined, not noise
    well = ~degenerate
    assert_close(welch.statistic.values[well], want.statistic[well])
    assert_close(welch.pvalue.values[well], want.pvalue[well])
    ok = np.isfinite(welch.pvalue.values)
    padj = np.full(ok.shape, np.nan)
    if ok.any():
        padj[ok] = stats.false_discovery_control(welch.pvalue.values[ok])
    assert_close(welch.padj.values, padj)
    if transform == "log_cpm":
        assert_close(welch.log2_fold_change.values, a.mean(axis=1) - b.mean(axis=1))

    mwu = archs4x.diffexp(counts, in_a, test="mannwhitney", transform=transform,
                          min_expr=None).compute()  # fmt: skip
    with np.errstate(invalid="ignore", divide="ignore"):
        want = stats.mannwhitneyu(a, b, axis=1, method="asymptotic")
    assert_close(mwu.statistic.values, want.statistic)
    assert_close(mwu.pvalue.values, want.pvalue)
    ok = np.isfinite(want.pvalue)
    padj = np.full(ok.shape, np.nan)
    if ok.any():
        padj[ok] = stats.false_discovery_control(want.pvalue[ok])
    assert_close(mwu.padj.values, padj)


def van_elteren_reference(x, in_a, strata):
    """van Elteren's stratified rank-sum test, restated per gene with scipy's rankdata."""
    z = []
    for row in x:
        t = e = v = 0.0
        for s in np.unique(strata):
            cols = strata == s
            ra, sa = stats.rankdata(row[cols]), in_a[cols]
            n1, n2 = sa.sum(), (~sa).sum()
            if n1 == 0 or n2 == 0:
                continue
            n = n1 + n2
            _, counts = np.unique(row[cols], return_counts=True)
            ties = (counts.astype(float) ** 3 - counts).sum()
            w = 1 / (n + 1)
            t += w * ra[sa].sum()
            e += w * n1 * (n + 1) / 2
            v += w * w * n1 * n2 / 12 * ((n + 1) - ties / (n * (n - 1)))
        with np.errstate(invalid="ignore", divide="ignore"):
            z.append((t - e) / np.sqrt(v))
    z = np.array(z)
    return z, 2 * stats.norm.sf(np.abs(z))


def test_blocking_is_van_elteren():
    rng = np.random.default_rng(5)
    x = rng.integers(0, 6, size=(9, 40)).astype(np.uint32)
    x[0] += 1
    in_a = rng.random(40) < 0.5
    strata = np.array(list("aabbbcccc") * 4 + ["d"] * 4)
    counts = as_counts(x, (7, 13, 20)).assign_coords(series_id=("sample", strata))
    got = archs4x.diffexp(counts, in_a, test="mannwhitney", blocking="series_id",
                          transform=None, min_expr=None).compute()  # fmt: skip
    z, p = van_elteren_reference(x.astype(float), in_a, strata)
    assert_close(got.statistic.values, z)
    assert_close(got.pvalue.values, p)
    # a series shift applied to both groups of a series alike changes nothing
    shifted = x.astype(np.int64) + 100 * (strata == "b")[None, :]
    moved = archs4x.diffexp(as_counts(shifted.astype(np.uint32)), in_a, test="mannwhitney",
                            blocking=strata, transform=None, min_expr=None).compute()  # fmt: skip
    assert_close(moved.pvalue.values, got.pvalue.values)
    with pytest.raises(ValueError, match="test='mannwhitney'"):
        archs4x.diffexp(counts, in_a, blocking="series_id")


def test_groups_by_labels_and_datasets_and_clear_errors():
    rng = np.random.default_rng(1)
    x = rng.integers(0, 50, size=(6, 12)).astype(np.uint32)
    counts = as_counts(x, (5, 7))
    labels = np.array(["liver", "kidney", "lung"] * 4, dtype=object)
    got = archs4x.diffexp(counts, labels, labels=("liver", "kidney"), min_expr=None).compute()
    ref = log_cpm(x)
    want = stats.ttest_ind(ref[:, labels == "liver"], ref[:, labels == "kidney"], axis=1,
                           equal_var=False)  # fmt: skip
    assert_close(got.pvalue.values, want.pvalue)
    assert (got.attrs["group_a"], got.attrs["n_a"], got.attrs["n_b"]) == ("liver", 4, 4)
    ds = counts.to_dataset()
    pair = (ds.isel(sample=np.flatnonzero(labels == "liver")),
            ds.isel(sample=np.flatnonzero(labels == "kidney")))  # fmt: skip
    by_ds = archs4x.diffexp(ds, pair, min_expr=None).compute()
    assert_close(by_ds.pvalue.values, want.pvalue)
    with pytest.raises(ValueError, match="3 distinct labels"):
        archs4x.diffexp(counts, labels)
    one = np.zeros(12, bool)
    one[3] = True
    with pytest.raises(ValueError, match="has 1 sample: diffexp needs at least 2"):
        archs4x.diffexp(counts, one)
    with pytest.raises(ValueError, match="in both groups"):
        archs4x.diffexp(ds, (ds.isel(sample=[0, 1, 2]), ds.isel(sample=[2, 3, 4])))
    with pytest.raises(ValueError, match="test must be"):
        archs4x.diffexp(counts, one, test="t")
    # min_expr leaves genes untested and out of the BH family
    low = archs4x.diffexp(counts, labels, labels=("liver", "kidney"), min_expr=1e9).compute()
    assert np.isnan(low.pvalue.values).all() and np.isnan(low.padj.values).all()


# ----------------------------------------------------------------------- qc and scores


@settings(max_examples=examples(25), deadline=None)
@given(matrices(min_genes=3))
def test_qc_equals_pandas(data):
    x, chunks = data
    g = x.shape[0]
    symbols = [f"MT-{i}" if i % 4 == 1 else f"S{i}" for i in range(g)]
    big = np.concatenate([x, x * 2, x], axis=0) if g < 60 else x  # more genes than the top 50
    big_symbols = symbols + [f"T{i}" for i in range(big.shape[0] - g)]
    got = archs4x.qc(as_counts(big, chunks, big_symbols)).compute()
    want = qc_reference(big, big_symbols)
    for name in want.columns:
        assert_close(got[name].values, want[name].to_numpy(dtype=float))
    assert got.genes_detected.dtype == np.int64


@settings(max_examples=examples(25), deadline=None)
@given(matrices(min_genes=4), st.sampled_from(["log_cpm", None]))
def test_score_genesets_equals_pandas(data, transform):
    x, chunks = data
    counts = as_counts(x, chunks)
    sets = {"one": [0, 2], "two": [1, 2, 3], "single": [3]}
    named = {k: [f"S{i}" for i in v] for k, v in sets.items()}
    got = archs4x.score_genesets(counts, named, transform=transform).values
    assert_close(got, mean_z_reference(scale(x, transform), sets))
    got = archs4x.score_genesets(counts, named, method="rank", transform=transform).values
    assert_close(got, singscore_reference(scale(x, transform), sets))


# ----------------------------------------------------------------- laziness, errors


def test_every_function_is_lazy(gene_file):
    ds = archs4x.open_dataset(gene_file).isel(sample=slice(0, 60))
    in_a = np.arange(60) < 30
    with raise_if_dask_computes():
        results = [
            archs4x.coexpression(ds, ["MYOD1"], k=5),
            archs4x.coexpression(ds, ["MYOD1"], k=5, method="spearman"),
            archs4x.coexpression(ds, ["MYOD1"], k=5, transform="log_quantile"),
            archs4x.correlation(ds, ["MYOD1", "ALB"]),
            archs4x.diffexp(ds, in_a),
            archs4x.diffexp(ds, in_a, test="mannwhitney", blocking="series_id"),
            archs4x.qc(ds),
            archs4x.score_genesets(ds, {"m": ["MYOD1", "DES"]}),
            archs4x.score_genesets(ds, {"m": ["MYOD1", "DES"]}, method="rank"),
            ds.archs4.diffexp(in_a, transform="log_quantile"),
        ]
    for r in results:
        data = r.data if isinstance(r, xr.DataArray) else r[next(iter(r.data_vars))].data
        assert isinstance(data, da.Array)


def test_gene_errors_name_close_matches(gene_file):
    ds = archs4x.open_dataset(gene_file)
    with pytest.raises(KeyError, match="close matches: MYOD1"):
        archs4x.coexpression(ds, "MYOD")
    with pytest.raises(ValueError, match="method must be"):
        archs4x.correlation(ds, ["ALB"], method="kendall")
    with pytest.raises(ValueError, match="transform must be"):
        archs4x.correlation(ds, ["ALB"], transform="tpm")
    with pytest.warns(archs4x.MissingIdsWarning, match="NOPE"):
        s = archs4x.score_genesets(ds, {"x": ["ALB", "NOPE"]})
    assert s.n_genes.values.tolist() == [1]
    with pytest.raises(ValueError, match="no gene"):
        archs4x.score_genesets(ds, {"x": ["NOPE"]}, missing="warn")


def test_empty_library_raises_naming_the_sample():
    x = np.ones((5, 6), dtype=np.uint32)
    x[:, 4] = 0
    with pytest.raises(archs4x.EmptyLibraryError, match="GSM4"):
        archs4x.correlation(as_counts(x, (3, 3)), ["S0", "S1"]).compute()


def test_labelled_groups_and_blocking_follow_the_samples_not_their_positions():
    """Labels given as a DataArray or Series of another sample order are matched by id."""
    rng = np.random.default_rng(2)
    x = rng.integers(0, 50, size=(6, 12)).astype(np.uint32)
    counts = as_counts(x, (5, 7))
    labels = np.array(["liver", "kidney", "lung"] * 4, dtype=object)
    strata = np.array(["s1"] * 6 + ["s2"] * 6, dtype=object)
    ref = log_cpm(x)
    want = stats.ttest_ind(ref[:, labels == "liver"], ref[:, labels == "kidney"], axis=1,
                           equal_var=False)  # fmt: skip
    tagged = counts.assign_coords(tissue=("sample", labels), batch=("sample", strata))
    reordered = tagged.isel(sample=np.arange(12)[::-1])  # a sortby, say
    for groups in (tagged.tissue, tagged.tissue.to_series()):
        got = archs4x.diffexp(reordered, groups, labels=("liver", "kidney"), min_expr=None)
        assert_close(got.compute().pvalue.values, want.pvalue)
    got = archs4x.diffexp(reordered, tagged.tissue == "liver", min_expr=None).compute()
    assert got.attrs["n_a"] == 4
    mw = dict(labels=("liver", "kidney"), test="mannwhitney", min_expr=None)
    by_name = archs4x.diffexp(tagged, tagged.tissue, blocking="batch", **mw)
    by_array = archs4x.diffexp(reordered, tagged.tissue, blocking=tagged.batch, **mw)
    assert_close(by_array.compute().pvalue.values, by_name.compute().pvalue.values)
    with pytest.raises(KeyError, match="no value for 2 samples"):
        archs4x.diffexp(
            tagged, tagged.tissue.isel(sample=slice(2, None)), labels=("liver", "kidney")
        )
