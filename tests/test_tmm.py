"""TMM factors against a plain numpy transcription of edgeR's calcNormFactors, and rnanorm."""

from __future__ import annotations

import dask
import numpy as np
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st
from rnanorm import TMM
from scipy.stats import rankdata

import archs4x
from archs4x.compute.normalize import normalize
from archs4x.compute.tmm import _trim_window, tmm_factors
from archs4x.errors import EmptyLibraryError

from ._laziness import raise_if_dask_computes


def r_quantile7(v, p):
    """R's quantile(type = 7)."""
    s = np.sort(v).astype(float)
    index = 1 + (len(s) - 1) * p
    lo, hi = int(np.floor(index)), int(np.ceil(index))
    q = s[lo - 1]
    h = index - lo
    return (1 - h) * q + h * s[hi - 1] if index > lo and s[hi - 1] != q else q


def r_mean(v):
    """R's mean(): the sum and a refinement pass accumulated in long double (summary.c)."""
    v = np.asarray(v, dtype=np.longdouble)
    s = v.sum() / v.size
    return float(s + (v - s).sum() / v.size)


def edger_tmm(x, logratio_trim=0.3, sum_trim=0.05, weighting=True, a_cutoff=-1e10, ref=None,
              a_form="edger"):  # fmt: skip
    """edgeR calcNormFactors(method = "TMM") (>= 3.31.5), line by line."""
    x = np.asarray(x, dtype=float)
    lib = x.sum(axis=0)
    y = x[(x > 0).sum(axis=1) > 0]
    if y.shape[0] == 0 or x.shape[1] == 1:
        return np.ones(x.shape[1])
    if ref is None:
        f75 = np.array([r_quantile7(y[:, j], 0.75) for j in range(y.shape[1])]) / lib
        if np.median(f75) < 1e-20:
            ref = int(np.argmax(np.sqrt(y).sum(axis=0)))
        else:
            ref = int(np.argmin(np.abs(f75 - r_mean(f75))))
    f = np.empty(x.shape[1])
    for i in range(x.shape[1]):
        obs, r, n_o, n_r = y[:, i], y[:, ref], lib[i], lib[ref]
        with np.errstate(all="ignore"):
            log_r = np.log2((obs / n_o) / (r / n_r))
            if a_form == "edger":
                abs_e = (np.log2(obs / n_o) + np.log2(r / n_r)) / 2
            else:  # rnanorm's order of operations
                abs_e = np.log2((obs / n_o) * (r / n_r)) / 2
            v = (n_o - obs) / n_o / obs + (n_r - r) / n_r / r
        fin = np.isfinite(log_r) & np.isfinite(abs_e) & (abs_e > a_cutoff)
        log_r, abs_e, v = log_r[fin], abs_e[fin], v[fin]
        if log_r.size == 0 or np.abs(log_r).max() < 1e-6:
            f[i] = 1.0
            continue
        n = len(log_r)
        lo_l = np.floor(n * logratio_trim) + 1
        hi_l = n + 1 - lo_l
        lo_s = np.floor(n * sum_trim) + 1
        hi_s = n + 1 - lo_s
        rl, ra = rankdata(log_r), rankdata(abs_e)
        keep = (rl >= lo_l) & (rl <= hi_l) & (ra >= lo_s) & (ra <= hi_s)
        with np.errstate(all="ignore"):
            if weighting:
                val = np.nansum(log_r[keep] / v[keep]) / np.nansum(1 / v[keep])
            else:
                val = np.nanmean(log_r[keep]) if keep.any() else np.nan
        f[i] = 2 ** (0.0 if np.isnan(val) else val)
    return f / np.exp(np.mean(np.log(f)))


def counts(seed=0, n=600, m=17, sparse=0.6):
    rng = np.random.default_rng(seed)
    x = rng.negative_binomial(0.4, 0.02, size=(n, m)) * (rng.random((n, m)) < sparse)
    x[:5] = 0  # all-zero genes
    return x.astype(np.uint32)


def as_da(x, chunk=4):
    return xr.DataArray(
        x, dims=("gene", "sample"), coords={"sample": [f"S{j}" for j in range(x.shape[1])]}
    ).chunk({"sample": chunk})


def close(a, b, rtol=1e-10):
    np.testing.assert_allclose(a, b, rtol=rtol, atol=0)


@pytest.mark.parametrize("chunk", [1, 3, 17])
@pytest.mark.parametrize("seed", [0, 1])
def test_factors_match_edger_reference(seed, chunk):
    x = counts(seed)
    close(tmm_factors(as_da(x, chunk)).values, edger_tmm(x))


def test_sqrt_sum_reference_fallback():
    x = counts(2, n=400, m=9, sparse=0.15)  # most genes zero: median upper quartile is 0
    lib = x.sum(axis=0)
    y = x[(x > 0).any(axis=1)]
    assert np.median([r_quantile7(y[:, j], 0.75) for j in range(9)] / lib) < 1e-20
    close(tmm_factors(as_da(x)).values, edger_tmm(x))


def test_options_match_reference():
    x = counts(3)
    close(tmm_factors(as_da(x), do_weighting=False).values, edger_tmm(x, weighting=False))
    close(
        tmm_factors(as_da(x), logratio_trim=0.2, sum_trim=0.1, a_cutoff=-12).values,
        edger_tmm(x, 0.2, 0.1, a_cutoff=-12),
    )
    close(tmm_factors(as_da(x), ref_column=4).values, edger_tmm(x, ref=4))
    close(tmm_factors(as_da(x), ref_column="S6").values, edger_tmm(x, ref=6))


def test_degenerate_cases():
    assert tmm_factors(as_da(counts(4, m=1))).values.tolist() == [1.0]
    same = np.repeat(counts(5, m=1), 4, axis=1)  # identical samples: every factor 1
    close(tmm_factors(as_da(same)).values, np.ones(4))
    disjoint = np.zeros((10, 2), dtype=np.uint32)  # no gene shared: factor 1 before scaling
    disjoint[:5, 0] = 7
    disjoint[5:, 1] = 3
    close(tmm_factors(as_da(disjoint)).values, edger_tmm(disjoint))


def test_rnanorm_differs_from_edger_only_in_a_value_order():
    """rnanorm computes A = log2(r * r_ref) / 2; edgeR averages the two logs.  On tied
    counts that moves the A-trim boundary; with rnanorm's formula our reference matches it."""
    rng = np.random.default_rng(1)
    x = rng.negative_binomial(0.5, 0.02, size=(3000, 37)) * (rng.random((3000, 37)) < 0.6)
    x[:10] = 0
    rn = TMM().fit(x.T.astype(float)).get_norm_factors(x.T.astype(float))
    close(rn, edger_tmm(x, a_form="rnanorm"), rtol=1e-12)
    ours = tmm_factors(as_da(x, 7)).values
    close(ours, edger_tmm(x))
    assert np.abs(ours / rn - 1).max() > 1e-6  # a real difference on this matrix


def test_tmm_cpm_and_logcpm():
    x = counts(7)
    f = edger_tmm(x)
    lib = x.sum(axis=0) * f
    close(normalize(as_da(x), "tmm").values, x / lib * 1e6)
    p = 2 * lib / lib.mean()
    expect = np.log2((x + p) / (lib + 2 * p) * 1e6)
    np.testing.assert_allclose(normalize(as_da(x), "tmm", log=True).values, expect, rtol=1e-10,
                               atol=1e-12)  # fmt: skip
    rn = TMM().fit_transform(x.T.astype(float)).T
    np.testing.assert_allclose(normalize(as_da(x), "tmm").values, rn, rtol=1e-2)


def test_empty_library():
    x = counts(8)
    x[:, 2] = 0
    with pytest.raises(EmptyLibraryError, match=r"'S2' \(position 2\)"):
        tmm_factors(as_da(x)).compute()
    got = tmm_factors(as_da(x), empty="nan").values
    assert np.isnan(got[2])
    close(np.delete(got, 2), edger_tmm(np.delete(x, 2, axis=1)))


def test_bad_options():
    x = as_da(counts(9))
    with pytest.raises(ValueError, match="logratio_trim"):
        tmm_factors(x, logratio_trim=0.5)
    with pytest.raises(KeyError, match="not a sample"):
        tmm_factors(x, ref_column="nope")
    with pytest.raises(IndexError, match="out of range"):
        tmm_factors(x, ref_column=99)


def test_lazy_and_labelled(gene_file):
    ds = archs4x.open_dataset(gene_file)
    with raise_if_dask_computes():
        f = tmm_factors(ds.counts, empty="nan")
    assert f.dims == ("sample",) and (f.sample.values == ds.sample.values).all()
    assert "series_id" in f.coords
    sub = ds.counts.isel(sample=slice(0, 40))
    close(tmm_factors(sub).values, edger_tmm(sub.values))


def test_zero_weight_sum_gives_r_semantics_not_an_exception():
    """Regression (found by hypothesis): a pair whose kept weights sum to 0 raised
    ZeroDivisionError; R (and numpy) give NaN there, hence factor 1."""
    x = np.array([[0, 0], [1, 0], [0, 2], [1, 1], [1, 1], [1, 2], [0, 2], [1, 2], [2, 0]])
    x = x.astype(np.uint32)
    close(tmm_factors(as_da(x, 2)).values, edger_tmm(x))


@settings(max_examples=300, deadline=None)
@given(
    values=st.lists(st.integers(-4, 4), min_size=1, max_size=40),
    scale=st.sampled_from([1.0, -0.37, 1e-300]),
    trim=st.floats(0, 0.49),
)
def test_trim_window_is_the_average_rank_window(values, scale, trim):
    """The selection-based trim equals R's rank(ties = "average") window on heavy ties."""
    x = np.array(values, dtype=float) * scale
    n = x.size
    lo = np.floor(n * trim) + 1
    hi = n + 1 - lo
    rank = rankdata(x)
    np.testing.assert_array_equal(_trim_window(x, lo, hi), (rank >= lo) & (rank <= hi))


@pytest.mark.parametrize("sample_chunk", [50, 7])
def test_reads_two_passes_and_the_reference_column(gene_file, sample_chunk):
    """Input read twice (the statistics with the all-zero genes; the factors) plus the
    reference column alone, not a third pass."""
    from ._reads import get_reader

    ds = archs4x.open_dataset(gene_file, sample_chunk=sample_chunk)
    lazy = tmm_factors(ds, empty="nan")
    reader = get_reader(str(gene_file))
    reader.stats.chunks = 0
    with dask.config.set(scheduler="threads"):
        got = lazy.values
    per_column = -(-ds.sizes["gene"] // 2000)  # HDF5 chunks (2000, 1)
    assert reader.stats.chunks == (2 * ds.sizes["sample"] + 1) * per_column
    x = ds.counts.values
    ok = x.sum(axis=0) > 0
    close(got[ok], edger_tmm(x[:, ok]))


def test_reference_tie_is_broken_by_rs_long_double_mean():
    # Samples 0 and 2 are equally far from mean(f75) in exact arithmetic. numpy's float64
    # mean (0.33333333333333337) would pick sample 2; R's long-double mean
    # (0.3333333333333333) picks sample 0, as edgeR does, and every factor is then 1.
    x = np.array(
        [[0, 0, 0, 0, 0], [0, 0, 1, 0, 0], [0, 2, 2, 0, 0], [0, 0, 0, 0, 0], [2, 0, 0, 1, 2],
         [0, 2, 0, 0, 0]],
        dtype=np.uint32,
    )  # fmt: skip
    f75 = np.array([0.25, 0.5, 1.25 / 3, 0.25, 0.25])
    assert int(np.argmin(np.abs(f75 - f75.mean()))) == 2
    assert int(np.argmin(np.abs(f75 - r_mean(f75)))) == 0
    close(tmm_factors(as_da(x, 2)).values, np.ones(5))
    close(edger_tmm(x), np.ones(5))
