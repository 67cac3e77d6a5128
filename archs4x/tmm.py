"""TMM normalization factors exactly as edgeR ``calcNormFactors(method="TMM")``, out of core.

edgeR (>= 3.31.5) computes, for counts ``x`` (genes x samples) with library sizes ``N``:

1. drop the genes that are zero in every sample;
2. the reference sample: ``f75 = quantile(x[, j], 0.75) / N[j]`` (R's type-7 quantile);
   if ``median(f75) < 1e-20`` the sample with the largest ``sum(sqrt(x[, j]))``, else the
   one whose ``f75`` is closest to ``mean(f75)`` (first on ties);
3. for each sample against the reference: ``M = log2((obs/nO) / (ref/nR))``,
   ``A = (log2(obs/nO) + log2(ref/nR)) / 2``, ``v = (nO-obs)/nO/obs + (nR-ref)/nR/ref``;
   keep the genes with finite M and A and ``A > Acutoff``; factor 1 if ``max|M| < 1e-6``;
   trim by average ranks (``floor(n*.3)+1 <= rank(M) <= n-floor(n*.3)`` and likewise with
   0.05 for A); ``log2 f = sum(M/v) / sum(1/v)`` over the kept genes (NaN terms dropped);
   factor 1 when that is undefined;
4. scale the factors to geometric mean 1.

Out of core, each step is a pass over the sample blocks: (1) which genes are all zero,
(2) per-sample library size, upper quartile and square-root sum, then the reference (a
small task), (3) the reference column, (4) the factors.  Each pass re-reads the input
only after the statistics it needs exist (:func:`archs4x.passes.reread`), so memory stays
bounded.  Sums and means that R accumulates in long double are accumulated in
``numpy.longdouble`` here.
"""

from __future__ import annotations

from typing import Any, Literal

import dask
import dask.array as da
import numpy as np
import xarray as xr
from scipy.stats import rankdata

from .dims import SAMPLE
from .passes import as_counts, check_block, empty_library_error, reread, sample_labels

__all__ = ["tmm_factors"]

_BATCH = 64


def _r_mean(x: np.ndarray) -> float:
    """R's ``mean()``: long-double sum, then one refinement pass."""
    x = np.asarray(x, dtype=np.longdouble)
    if x.size == 0:
        return float("nan")
    s = x.sum() / x.size
    if np.isfinite(s):
        s += (x - s).sum() / x.size
    return float(s)


def _stats_block(block, labels, n_zero_genes, empty, block_info=None):
    """Per sample: library size, type-7 upper quartile without all-zero genes, sqrt sum."""
    check_block(block, "tmm_factors")
    k = int(n_zero_genes)
    n = block.shape[0] - k
    cols = block.T
    out = np.empty((3, cols.shape[0]))
    out[0] = cols.sum(axis=1, dtype=np.float64)
    if empty == "raise":
        empty_library_error("TMM", out[0], labels, block_info)
    index = 1 + max(n - 1, 0) * 0.75  # R: quantile(type = 7)
    lo, hi = int(np.floor(index)), int(np.ceil(index))
    h = index - lo
    for start in range(0, cols.shape[0], _BATCH):
        part = np.ascontiguousarray(cols[start : start + _BATCH])
        out[2, start : start + part.shape[0]] = np.sqrt(part, dtype=np.float64).sum(axis=1)
        if n == 0:
            out[1, start : start + part.shape[0]] = np.nan
            continue
        part.sort(axis=1)  # the k all-zero genes are zeros at the front of every column
        q = part[:, k + lo - 1].astype(np.float64)
        qhi = part[:, k + hi - 1].astype(np.float64)
        if index > lo:
            q = np.where(qhi != q, (1 - h) * q + h * qhi, q)
        out[1, start : start + part.shape[0]] = q
    return out


def _choose_ref(stats: np.ndarray) -> np.ndarray:
    """edgeR's reference column from the per-sample statistics: [index, library size]."""
    lib, q75, sqsum = stats
    ok = np.flatnonzero(lib > 0)
    if ok.size == 0:
        return np.array([-1.0, np.nan])
    f75 = q75[ok] / lib[ok]
    if np.median(f75) < 1e-20:
        ref = ok[int(np.argmax(sqsum[ok]))]
    else:
        ref = ok[int(np.argmin(np.abs(f75 - _r_mean(f75))))]
    return np.array([float(ref), lib[ref]])


def _ref_column_block(block: np.ndarray, ref_index: np.ndarray, block_info=None) -> np.ndarray:
    """The reference column if this block holds it, else zeros (summed across blocks)."""
    start = block_info[0]["array-location"][1][0]
    j = int(ref_index) - start
    out = np.zeros((block.shape[0], 1))
    if 0 <= j < block.shape[1]:
        out[:, 0] = block[:, j]
    return out


def _tmm_pair(obs, ref, n_obs, n_ref, logratio_trim, sum_trim, do_weighting, a_cutoff):
    """edgeR ``.calcFactorTMM`` for one sample against the reference (genes with both > 0)."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        log_r = np.log2((obs / n_obs) / (ref / n_ref))
        abs_e = (np.log2(obs / n_obs) + np.log2(ref / n_ref)) / 2
        v = (n_obs - obs) / n_obs / obs + (n_ref - ref) / n_ref / ref
    fin = np.isfinite(log_r) & np.isfinite(abs_e) & (abs_e > a_cutoff)
    log_r, abs_e, v = log_r[fin], abs_e[fin], v[fin]
    if log_r.size == 0 or np.abs(log_r).max() < 1e-6:
        return 1.0
    n = log_r.size
    lo_l = np.floor(n * logratio_trim) + 1
    hi_l = n + 1 - lo_l
    lo_s = np.floor(n * sum_trim) + 1
    hi_s = n + 1 - lo_s
    rank_r = rankdata(log_r)
    rank_e = rankdata(abs_e)
    keep = (rank_r >= lo_l) & (rank_r <= hi_l) & (rank_e >= lo_s) & (rank_e <= hi_s)
    with np.errstate(divide="ignore", invalid="ignore"):
        if do_weighting:
            num = log_r[keep] / v[keep]
            den = 1 / v[keep]
            num_sum = np.float64(np.sum(num[~np.isnan(num)], dtype=np.longdouble))
            den_sum = np.float64(np.sum(den[~np.isnan(den)], dtype=np.longdouble))
            f = float(num_sum / den_sum)  # numpy division: 0/0 is NaN, as in R
        else:
            kept = log_r[keep]
            f = _r_mean(kept[~np.isnan(kept)])
    if np.isnan(f):
        f = 0.0
    return 2.0**f


def _factors_block(block, ref_col, ref_lib, options):
    """Unscaled TMM factor of every sample of a block: shape (1, samples)."""
    lib = block.sum(axis=0, dtype=np.float64)
    ref_col = ref_col[:, 0]
    n_ref = float(ref_lib)
    genes = np.flatnonzero(ref_col > 0)
    ref_vals = ref_col[genes]
    out = np.empty((1, block.shape[1]))
    for j in range(block.shape[1]):
        if not lib[j] > 0 or not n_ref > 0:
            out[0, j] = np.nan
            continue
        obs = block[genes, j].astype(np.float64)
        out[0, j] = _tmm_pair(obs, ref_vals, lib[j], n_ref, *options)
    return out


def _scale(raw: np.ndarray) -> np.ndarray:
    """Factors divided by their geometric mean (over samples with a factor)."""
    ok = np.isfinite(raw)
    if not ok.any():
        return raw
    return raw / np.exp(_r_mean(np.log(raw[ok])))


def _ref_position(ref_column: Any, arr: xr.DataArray) -> int:
    n = arr.sizes[SAMPLE]
    if isinstance(ref_column, int | np.integer) and not isinstance(ref_column, bool):
        if not -n <= ref_column < n:
            raise IndexError(f"ref_column {ref_column} is out of range for {n} samples")
        return int(ref_column) % n
    index = arr.indexes.get(SAMPLE)
    if index is None or ref_column not in index:
        raise KeyError(f"ref_column {ref_column!r} is not a sample position or label")
    return int(index.get_loc(ref_column))


def tmm_factors(
    counts: xr.DataArray | xr.Dataset,
    *,
    logratio_trim: float = 0.3,
    sum_trim: float = 0.05,
    do_weighting: bool = True,
    a_cutoff: float = -1e10,
    ref_column: int | str | None = None,
    empty: Literal["raise", "nan"] = "raise",
) -> xr.DataArray:
    """TMM normalization factors, as edgeR ``calcNormFactors(method="TMM")``, lazily.

    Parameters
    ----------
    counts : xarray.DataArray or xarray.Dataset
        (feature, sample) non-negative counts; a Dataset's ``counts`` is used.
    logratio_trim, sum_trim : float, default 0.3, 0.05
        Fractions trimmed from each end of the M values and of the A values.
    do_weighting : bool, default True
        Weight M values by their inverse asymptotic variance.
    a_cutoff : float, default -1e10
        Genes with A at or below this are ignored.
    ref_column : int or sample label, optional
        The reference sample; by default chosen by edgeR's upper-quartile rule (with the
        square-root-sum fallback when the median upper quartile is ~0).
    empty : {"raise", "nan"}, default "raise"
        A sample with no reads: raise :class:`archs4x.passes.EmptyLibraryError` (a
        ``ValueError``) at compute time (edgeR fails on it too), or give it factor NaN and
        compute the others as if it were absent.

    Returns
    -------
    xarray.DataArray
        float64 factors along ``sample`` (with the sample coordinates), geometric mean 1,
        lazy.  Effective library size = library size x factor.  Computing them reads the
        input four times (three with ``ref_column``); see the module docstring.

    Examples
    --------
    >>> import archs4x
    >>> from archs4x.datasets import example_file
    >>> ds = archs4x.open_dataset(example_file())
    >>> f = tmm_factors(ds.counts.isel(sample=slice(0, 30)))
    >>> f.dims, f.dtype.name
    (('sample',), 'float64')
    >>> round(float(np.exp(np.log(f.values).mean())), 12)  # geometric mean 1
    1.0
    """
    if empty not in ("raise", "nan"):
        raise ValueError(f"empty must be 'raise' or 'nan', got {empty!r}")
    for name, value in (("logratio_trim", logratio_trim), ("sum_trim", sum_trim)):
        if not 0 <= value < 0.5:
            raise ValueError(f"{name} must be in [0, 0.5), got {value!r}")
    arr, _ = as_counts(counts)
    data = arr.data
    sample_chunks = (data.chunks[1],)
    if ref_column is None:
        n_zero = data.shape[0] - (data > 0).any(axis=1).sum()
        stats = da.map_blocks(
            _stats_block,
            reread(data, n_zero),
            sample_labels(arr),
            n_zero,
            empty,
            dtype=np.float64,
            chunks=((3,), data.chunks[1]),
        )
        ref = da.from_delayed(dask.delayed(_choose_ref)(stats), shape=(2,), dtype=np.float64)
    else:
        pos = _ref_position(ref_column, arr)
        lib_ref = arr.data[:, pos].sum(dtype=np.float64)
        ref = da.stack([da.asarray(float(pos)), lib_ref]).rechunk(-1)
    ref_index, ref_lib = ref[0], ref[1]
    n_blocks = len(data.chunks[1])
    ref_col = da.map_blocks(
        _ref_column_block,
        reread(data, ref),
        ref_index,
        dtype=np.float64,
        chunks=(data.chunks[0], (1,) * n_blocks),
    ).sum(axis=1, keepdims=True)
    options = (logratio_trim, sum_trim, bool(do_weighting), a_cutoff)
    raw = da.map_blocks(
        _factors_block,
        reread(data, ref_col, ref),
        ref_col,
        ref_lib,
        options,
        dtype=np.float64,
        chunks=((1,), data.chunks[1]),
    )
    scaled = da.map_blocks(_scale, raw.rechunk((1, -1)), dtype=np.float64)[0]
    scaled = scaled.rechunk(sample_chunks)
    coords = {k: v for k, v in arr.coords.items() if v.dims == (SAMPLE,)}
    return xr.DataArray(
        scaled,
        dims=(SAMPLE,),
        coords=coords,
        name="tmm_factor",
        attrs={"long_name": "TMM normalization factor (edgeR calcNormFactors)"},
    )
