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
small task), (3) the factors.  Each pass re-reads the input only after the statistics it
needs exist (:func:`archs4x.passes.reread`), so memory stays bounded.  In between, the
reference column is read alone (a file-backed input is not read a fourth time).  Sums and
means that R accumulates in long double are accumulated in ``numpy.longdouble`` here.

Speed without changing a value: M, A and the variances are computed with edgeR's
operations in edgeR's order (so ties are the same ties), and the trim by average ranks
is found by linear-time selection of two order statistics per trim, not by ranking
(:func:`_trim_window`); the upper quartile likewise by selection, not sorting.
"""

from __future__ import annotations

from typing import Any, Literal

import dask
import dask.array as da
import numpy as np
import xarray as xr

from ..backends.counts import Archs4Array
from ..dims import SAMPLE
from .passes import reread
from .validate import as_counts, check_block, empty_library_error, sample_labels

__all__ = ["tmm_factors"]

_BATCH = 64
_MAGNITUDE = np.int64(2**63 - 1)


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
        # the k all-zero genes are zeros at the front of every sorted column
        part.partition((k + lo - 1, k + hi - 1), axis=1)
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


def _read_column(ref: np.ndarray, source: Any, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """The reference column ``ref[0]`` of a file-backed input, read alone (one sample)."""
    j = int(ref[0])
    out = np.zeros((rows.size, 1))
    if j >= 0:
        out[:, 0] = source.counts_reader().read(rows, [int(cols[j])])[:, 0]
    return out


def _ref_column_block(block: np.ndarray, ref_index: np.ndarray, block_info=None) -> np.ndarray:
    """The reference column if this block holds it, else zeros (summed across blocks)."""
    start = block_info[0]["array-location"][1][0]
    j = int(ref_index) - start
    out = np.zeros((block.shape[0], 1))
    if 0 <= j < block.shape[1]:
        out[:, 0] = block[:, j]
    return out


def _order_keys(x: np.ndarray) -> np.ndarray:
    """int64 keys that sort like the (non-NaN) float64 ``x``; the map is its own inverse.

    The bits of a non-negative float already sort as integers; a negative float's
    magnitude bits are flipped so that larger magnitudes sort lower.  Integer selection
    is about twice as fast as float selection (no NaN handling).
    """
    bits = x.view(np.int64)
    return bits ^ ((bits >> 63) & _MAGNITUDE)


def _trim_window(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Mask of ``lo <= rank(x) <= hi``, with R's average ranks for ties (``x`` finite).

    A run of ties at sorted positions ``s+1 .. e`` (1-based) has average rank
    ``(s + 1 + e) / 2``, which grows with the value, so the kept values form an interval.
    Its ends follow from the order statistics at positions ``lo`` and ``hi`` (a linear
    time selection, no sort) and the tie run of each: the run of ``x_(lo)`` is kept iff
    its average rank is ``>= lo`` (else the window starts just above it), the run of
    ``x_(hi)`` iff its average rank is ``<= hi``.  Doubled ranks ``s + 1 + e`` are
    integers, so the comparisons are exact.
    """
    n = x.size
    p, q = int(lo) - 1, int(hi) - 1
    if n == 0 or p > q:
        return np.zeros(n, dtype=bool)
    keys = _order_keys(x)
    keys.partition((p, q))
    low, high = _order_keys(keys[[p, q]]).view(np.float64)
    s, e = np.count_nonzero(x < low), np.count_nonzero(x <= low)
    keep = (x >= low) if s + 1 + e >= 2 * lo else (x > low)
    s, e = np.count_nonzero(x < high), np.count_nonzero(x <= high)
    keep &= (x <= high) if s + 1 + e <= 2 * hi else (x < high)
    return keep


def _tmm_sample(obs, n_obs, ref_scaled, log_ref, v_ref, options) -> float:
    """edgeR ``.calcFactorTMM`` for one sample against the reference.

    ``obs`` (float64) are the sample's counts on the genes where it and the reference are
    both positive (the others give an infinite M, which edgeR drops); ``ref_scaled``,
    ``log_ref`` and ``v_ref`` are the reference's ``ref/nR``, ``log2(ref/nR)`` and
    ``(nR-ref)/nR/ref`` on those genes.  Every value is computed with edgeR's operations
    in edgeR's order, so the values, and hence their ties, are edgeR's.
    """
    logratio_trim, sum_trim, do_weighting, a_cutoff = options
    scaled = obs / n_obs
    log_r = np.log2(scaled / ref_scaled)
    abs_e = np.log2(scaled)
    abs_e += log_ref
    abs_e /= 2
    fin = np.isfinite(log_r) & np.isfinite(abs_e) & (abs_e > a_cutoff)
    if not fin.all():
        log_r, abs_e, obs, v_ref = log_r[fin], abs_e[fin], obs[fin], v_ref[fin]
    if log_r.size == 0 or np.abs(log_r).max() < 1e-6:
        return 1.0
    n = log_r.size
    lo_l = np.floor(n * logratio_trim) + 1
    lo_s = np.floor(n * sum_trim) + 1
    keep = _trim_window(log_r, lo_l, n + 1 - lo_l)
    keep &= _trim_window(abs_e, lo_s, n + 1 - lo_s)
    log_r = log_r[keep]
    if do_weighting:
        kept = obs[keep]
        v = (n_obs - kept) / n_obs / kept + v_ref[keep]
        num = log_r / v
        den = 1 / v
        num_sum = np.float64(np.sum(num[~np.isnan(num)], dtype=np.longdouble))
        den_sum = np.float64(np.sum(den[~np.isnan(den)], dtype=np.longdouble))
        f = float(num_sum / den_sum)  # numpy division: 0/0 is NaN, as in R
    else:
        f = _r_mean(log_r[~np.isnan(log_r)])
    if np.isnan(f):
        f = 0.0
    return 2.0**f


def _factors_block(block, ref_col, ref_lib, options):
    """Unscaled TMM factor of every sample of a block: shape (1, samples)."""
    lib = block.sum(axis=0, dtype=np.float64)
    ref_col = ref_col[:, 0]
    n_ref = float(ref_lib)
    out = np.full((1, block.shape[1]), np.nan)
    if not n_ref > 0:
        return out
    genes = np.flatnonzero(ref_col > 0)
    ref_vals = ref_col[genes]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        ref_scaled = ref_vals / n_ref
        log_ref = np.log2(ref_scaled)
        v_ref = (n_ref - ref_vals) / n_ref / ref_vals
        for start in range(0, block.shape[1], _BATCH):
            cols = np.ascontiguousarray(block[genes, start : start + _BATCH].T)
            for i, col in enumerate(cols, start):
                if not lib[i] > 0:
                    continue
                pos = np.flatnonzero(col > 0)
                obs = col[pos].astype(np.float64)
                ref = (ref_scaled[pos], log_ref[pos], v_ref[pos])
                out[0, i] = _tmm_sample(obs, lib[i], *ref, options)
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
        A sample with no reads: raise :class:`archs4x.errors.EmptyLibraryError` (a
        ``ValueError``) at compute time (edgeR fails on it too), or give it factor NaN and
        compute the others as if it were absent.

    Returns
    -------
    xarray.DataArray
        float64 factors along ``sample`` (with the sample coordinates), geometric mean 1,
        lazy.  Effective library size = library size x factor.  Computing them reads the
        input three times (once with ``ref_column``) plus the reference column; see the
        module docstring.

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
    if isinstance(data, Archs4Array):  # read that one sample, not the whole input again
        ref_col = da.map_blocks(
            _read_column,
            ref,
            data.source,
            data.rows,
            data.cols,
            new_axis=1,
            chunks=(data.chunks[0], (1,)),
            dtype=np.float64,
        )
    else:  # derived or in-memory input: pick the column out of its block in a pass
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
