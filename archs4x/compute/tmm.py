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

Out of core, the factors take two reads of the input plus its reference column:

* **read 1**: per sample the library size, the square-root sum and enough of the sorted
  counts to find the upper quartile once the number ``k`` of all-zero genes is known
  (the values at the positions the quartile can take for any ``k`` up to the block's
  own count of all-zero genes: about a quarter of those); per block which genes are
  non-zero.  A tree of small merges combines the blocks (each merge narrows the kept
  values to the merged, smaller ``k`` range), then picks the reference (a small task);
* the **reference column**, read alone (for a file-backed input one sample through the
  reader; a derived input is picked out of its blocks in a pass);
* **read 2**: the factors, in a pass that starts after the reference is known
  (:func:`archs4x.compute.passes.reread`), so memory stays bounded.

Sums and means that R accumulates in long double are accumulated in ``numpy.longdouble``
here.

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

__all__ = ["factors_and_libraries", "tmm_factors", "tmm_options"]

_BATCH = 64
#: Counts below this get ``log2(count / library size)`` from a table (:func:`_log2_scaled`).
_LOG_TABLE = 4096
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


def _uq_positions(n_genes: int, k: int) -> tuple[int, int, float]:
    """R's type-7 upper quartile of the ``n_genes - k`` genes left after dropping ``k``
    all-zero genes, as 0-based positions in a whole sorted column (the ``k`` zeros come
    first) and the interpolation weight: ``(lo, hi, h)``."""
    index = 1 + max(n_genes - k - 1, 0) * 0.75
    lo, hi = int(np.floor(index)), int(np.ceil(index))
    return k + lo - 1, k + hi - 1, index - lo


def _window(n_genes: int, k_max: int) -> tuple[int, int]:
    """Sorted positions ``[start, stop)`` holding the upper quartile for every ``k <= k_max``
    (the positions grow with ``k``)."""
    k_max = min(k_max, n_genes - 1)
    return _uq_positions(n_genes, 0)[0], _uq_positions(n_genes, k_max)[1] + 1


def _stats_block(block, labels, start, empty):
    """Read 1 of a block: ``(non-zero genes, library sizes, sqrt sums, quartile windows)``.

    The windows hold each sample's sorted values at the positions of :func:`_window` for
    the block's own number of all-zero genes (an upper bound of the final ``k``).
    """
    check_block(block, "tmm_factors")
    n_genes, m = block.shape
    cols = block.T
    lib = cols.sum(axis=1, dtype=np.float64)
    if empty == "raise":
        empty_library_error("TMM", lib, labels[None, :], [{"array-location": [0, (start,)]}])
    nonzero = block.max(axis=1) > 0 if block.size else np.zeros(n_genes, dtype=bool)
    sqsum = np.empty(m)
    a, b = _window(n_genes, n_genes - int(nonzero.sum())) if n_genes else (0, 0)
    windows = np.empty((m, b - a), dtype=block.dtype)
    # buffers reused across batches (fresh large temporaries cost page faults)
    part_buf = np.empty((min(_BATCH, m), n_genes), dtype=block.dtype)
    root_buf = np.empty(part_buf.shape)
    for s in range(0, m, _BATCH):
        part = part_buf[: min(_BATCH, m - s)]
        part[...] = cols[s : s + _BATCH]  # a copy: partitioned in place
        root = np.sqrt(part, dtype=np.float64, out=root_buf[: part.shape[0]])
        sqsum[s : s + part.shape[0]] = root.sum(axis=1)
        if b > a:
            part.partition((a, b - 1), axis=1)
            windows[s : s + part.shape[0]] = np.sort(part[:, a:b], axis=1)
    return nonzero, lib, sqsum, windows


def _merge_stats(*parts):
    """Combine the read-1 results of consecutive blocks, narrowing the windows to the
    smaller range of ``k`` that the merged non-zero genes allow."""
    nonzero = np.logical_or.reduce([p[0] for p in parts])
    n_genes = nonzero.size
    k_max = n_genes - int(nonzero.sum())
    a, b = _window(n_genes, k_max) if n_genes else (0, 0)
    windows = np.concatenate([p[3][:, : b - a] for p in parts])
    lib, sqsum = (np.concatenate([p[i] for p in parts]) for i in (1, 2))
    return nonzero, lib, sqsum, windows


def _tree(parts: list, merge, fan_in: int = 8) -> Any:
    """Merge delayed results in a tree of ``fan_in``-wide merges (order kept)."""
    while len(parts) > 1:
        parts = [dask.delayed(merge)(*parts[i : i + fan_in]) for i in range(0, len(parts), fan_in)]
    return parts[0]


def _upper_quartiles(merged) -> np.ndarray:
    """Each sample's type-7 upper quartile without the all-zero genes (NaN if all are)."""
    nonzero, _lib, _sqsum, windows = merged
    n_genes = nonzero.size
    k = n_genes - int(nonzero.sum())
    if k >= n_genes:
        return np.full(windows.shape[0], np.nan)
    start = _window(n_genes, k)[0]
    lo, hi, h = _uq_positions(n_genes, k)
    q = windows[:, lo - start].astype(np.float64)
    qhi = windows[:, hi - start].astype(np.float64)
    if hi > lo:
        q = np.where(qhi != q, (1 - h) * q + h * qhi, q)
    return q


def _choose_ref(merged) -> np.ndarray:
    """edgeR's reference column from read 1: ``[index, library size, *library sizes]``."""
    lib, sqsum = merged[1], merged[2]
    q75 = _upper_quartiles(merged)
    ok = np.flatnonzero(lib > 0)
    if ok.size == 0:
        return np.concatenate([[-1.0, np.nan], lib])
    f75 = q75[ok] / lib[ok]
    if np.median(f75) < 1e-20:
        ref = ok[int(np.argmax(sqsum[ok]))]
    else:
        ref = ok[int(np.argmin(np.abs(f75 - _r_mean(f75))))]
    return np.concatenate([[float(ref), lib[ref]], lib])


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


def _tmm_sample(obs, n_obs, ref_scaled, log_ref, v_ref, options, log_scaled=None,
                finite: bool = False) -> float:  # fmt: skip
    """edgeR ``.calcFactorTMM`` for one sample against the reference.

    ``obs`` (float64) are the sample's counts on the genes where it and the reference are
    both positive (the others give an infinite M, which edgeR drops); ``ref_scaled``,
    ``log_ref`` and ``v_ref`` are the reference's ``ref/nR``, ``log2(ref/nR)`` and
    ``(nR-ref)/nR/ref`` on those genes.  Every value is computed with edgeR's operations
    in edgeR's order, so the values, and hence their ties, are edgeR's.  ``log_scaled``,
    if given, is ``log2(obs / n_obs)`` computed beforehand (:func:`_log2_scaled`).
    ``finite``: the counts are integers, so M and A are finite (quotients of positive
    numbers between 1e-19 and 1) and only the A cutoff needs checking.
    """
    logratio_trim, sum_trim, do_weighting, a_cutoff = options
    scaled = obs / n_obs
    log_r = np.log2(scaled / ref_scaled)
    abs_e = np.log2(scaled) if log_scaled is None else log_scaled
    abs_e += log_ref
    abs_e /= 2
    if finite and (abs_e.size == 0 or abs_e.min() > a_cutoff):
        fin = None
    else:
        fin = np.isfinite(log_r) & np.isfinite(abs_e) & (abs_e > a_cutoff)
    if fin is not None and not fin.all():
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
        f = float(_nansum_ld(num) / _nansum_ld(den))  # numpy division: 0/0 is NaN, as in R
    else:
        f = _r_mean(log_r[~np.isnan(log_r)])
    if np.isnan(f):
        f = 0.0
    return 2.0**f


def _nansum_ld(x: np.ndarray) -> np.float64:
    """R's ``sum(x, na.rm=TRUE)``: a long-double sum of the non-NaN values, as float64."""
    nan = np.isnan(x)
    return np.float64(np.sum(x[~nan] if nan.any() else x, dtype=np.longdouble))


def _log2_scaled(raw: np.ndarray, obs: np.ndarray, n_obs: float) -> np.ndarray:
    """``log2(obs / n_obs)`` for counts ``raw`` (``obs`` as float64), small counts by table.

    The table holds ``log2(c / n_obs)`` for the counts ``c`` below :data:`_LOG_TABLE`,
    computed from the same float64 quotients, so every value is the one ``np.log2``
    gives element by element; a sample's counts are mostly small, and a lookup costs a
    fraction of a logarithm.
    """
    if raw.dtype.kind not in "iu" or raw.size < 4 * _LOG_TABLE:
        return np.log2(obs / n_obs)
    top = int(raw.max())
    size = min(top + 1, _LOG_TABLE)
    table = np.log2(np.arange(size, dtype=np.float64) / n_obs)
    if top < size:
        return table[raw]
    out = table[np.minimum(raw, size - 1)]
    big = np.flatnonzero(raw >= size)
    out[big] = np.log2(obs[big] / n_obs)
    return out


def _factors_block(block, labels, ref_col, ref_lib, options, empty, block_info=None):
    """Read 2 of a block: unscaled TMM factor and library size of every sample, (2, m)."""
    check_block(block, "tmm_factors")
    block = np.asfortranarray(block)  # each sample contiguous
    lib = block.sum(axis=0, dtype=np.float64)
    if empty == "raise":
        empty_library_error("TMM", lib, labels, block_info)
    ref_col = ref_col[:, 0]
    n_ref = float(ref_lib)
    out = np.full((2, block.shape[1]), np.nan)
    out[1] = lib
    if not n_ref > 0:
        return out
    ref_ok = ref_col > 0
    integer = block.dtype.kind in "iu"
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        ref_scaled = ref_col / n_ref
        log_ref = np.log2(ref_scaled)
        v_ref = (n_ref - ref_col) / n_ref / ref_col
        for i in range(block.shape[1]):
            if not lib[i] > 0:
                continue
            col = block[:, i]
            pos = np.flatnonzero((col > 0) & ref_ok)  # genes positive in both, in order
            raw = col[pos]
            obs = raw.astype(np.float64)
            ref = (ref_scaled[pos], log_ref[pos], v_ref[pos])
            log_scaled = _log2_scaled(raw, obs, lib[i])
            out[0, i] = _tmm_sample(obs, lib[i], *ref, options, log_scaled, integer)
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


def _labels(arr: xr.DataArray) -> np.ndarray:
    index = arr.indexes.get(SAMPLE)
    return np.asarray(index, dtype=object) if index is not None else np.arange(arr.shape[1])


def _chosen_reference(arr: xr.DataArray, empty: str) -> tuple[da.Array, da.Array]:
    """Read 1 and edgeR's choice of reference: ``([index, library size], library sizes)``."""
    data = arr.data
    labels = _labels(arr)
    starts = np.cumsum((0, *data.chunks[1]))
    stats = dask.delayed(_stats_block)
    parts = [stats(b, labels[starts[j] : starts[j + 1]], int(starts[j]), empty)
             for j, b in enumerate(data.to_delayed().ravel())]  # fmt: skip
    chosen = dask.delayed(_choose_ref)(_tree(parts, _merge_stats))
    chosen = da.from_delayed(chosen, shape=(data.shape[1] + 2,), dtype=np.float64)
    return chosen[:2].rechunk(-1), chosen[2:]


def _reference_column(data: da.Array, ref: da.Array) -> da.Array:
    """The column ``ref[0]`` of ``data`` as a (features, 1) float64 array, lazily."""
    if isinstance(data, Archs4Array):  # read that one sample, not the whole input again
        return da.map_blocks(_read_column, ref, data.source, data.rows, data.cols, new_axis=1,
                             chunks=(data.chunks[0], (1,)), dtype=np.float64)  # fmt: skip
    # derived or in-memory input: pick the column out of its block in a pass
    picked = da.map_blocks(_ref_column_block, reread(data, ref), ref[0], dtype=np.float64,
                           chunks=(data.chunks[0], (1,) * len(data.chunks[1])))  # fmt: skip
    return picked.sum(axis=1, keepdims=True)


def factors_and_libraries(
    arr: xr.DataArray, options: tuple, ref_column: Any, empty: str
) -> tuple[da.Array, da.Array]:
    """Scaled TMM factors and library sizes of ``arr`` (laid out by ``as_counts``), lazily.

    Two reads of the input plus its reference column (one read and the column with
    ``ref_column``); see the module docstring.  The library sizes come with the factors
    so that TMM-CPM does not read the input again for them.
    """
    data = arr.data
    sample_chunks = data.chunks[1]
    if ref_column is None:
        ref, lib = _chosen_reference(arr, empty)
        ref_col = _reference_column(data, ref)
    else:
        pos = _ref_position(ref_column, arr)
        # one sample (a file-backed input reads just it), for the column and its sum
        ref_col = data[:, pos : pos + 1].astype(np.float64).rechunk((data.chunks[0], (1,)))
        ref = da.stack([da.asarray(float(pos)), ref_col.sum()]).rechunk(-1)
        lib = None
    raw = da.map_blocks(_factors_block, reread(data, ref_col, ref), sample_labels(arr), ref_col,
                        ref[1], options, empty, dtype=np.float64,
                        chunks=((2,), sample_chunks))  # fmt: skip
    scaled = da.map_blocks(_scale, raw[:1].rechunk((1, -1)), dtype=np.float64)[0]
    lib = raw[1] if lib is None else lib
    return scaled.rechunk((sample_chunks,)), lib.rechunk((sample_chunks,))


def tmm_options(
    empty: str = "raise",
    *,
    logratio_trim: float = 0.3,
    sum_trim: float = 0.05,
    do_weighting: bool = True,
    a_cutoff: float = -1e10,
    ref_column: Any = None,
) -> tuple:
    """The options of :func:`tmm_factors`, checked: ``(logratio_trim, sum_trim,
    do_weighting, a_cutoff, ref_column)``.

    Examples
    --------
    >>> tmm_options(sum_trim=0.1)[:2]
    (0.3, 0.1)
    """
    if empty not in ("raise", "nan"):
        raise ValueError(f"empty must be 'raise' or 'nan', got {empty!r}")
    for name, value in (("logratio_trim", logratio_trim), ("sum_trim", sum_trim)):
        if not 0 <= value < 0.5:
            raise ValueError(f"{name} must be in [0, 0.5), got {value!r}")
    return (logratio_trim, sum_trim, bool(do_weighting), a_cutoff, ref_column)


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
        input twice (once with ``ref_column``) plus the reference column; see the module
        docstring.

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
    options = tmm_options(empty, logratio_trim=logratio_trim, sum_trim=sum_trim,
                          do_weighting=do_weighting, a_cutoff=a_cutoff)  # fmt: skip
    arr, _ = as_counts(counts)
    scaled, _lib = factors_and_libraries(arr, options[:4], ref_column, empty)
    coords = {k: v for k, v in arr.coords.items() if v.dims == (SAMPLE,)}
    return xr.DataArray(
        scaled,
        dims=(SAMPLE,),
        coords=coords,
        name="tmm_factor",
        attrs={"long_name": "TMM normalization factor (edgeR calcNormFactors)"},
    )
