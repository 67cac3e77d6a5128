"""Lazy, out-of-core normalization of a (feature, sample) counts matrix.

* :func:`quantile_normalize` - Bolstad quantile normalization: every sample gets the same
  distribution, the mean of the sorted samples.  The target needs a pass over every
  sample (sort each column of a block, add the sorted columns up across blocks); a second
  pass assigns each value the target at its rank.  Both passes stream over sample blocks.
* :func:`cpm` - counts per million (optionally with normalization factors and edgeR's
  log-CPM with a scaled prior count).
* :func:`normalize` - one entry point for ``"log_quantile"``, ``"quantile"``, ``"cpm"``
  and ``"tmm"`` (TMM factors from :mod:`archs4x.tmm`).

Every function returns a lazy DataArray with the input's coordinates: nothing is read or
computed until ``.compute()``, ``.values``, ``to_zarr`` ...  Passes that need a statistic of
all samples re-read the input after the statistic is ready (see :mod:`archs4x.passes`), so
memory stays bounded by a few sample blocks whatever the number of samples.
"""

from __future__ import annotations

from typing import Any, Literal

import dask.array as da
import numpy as np
import xarray as xr

from ..dims import SAMPLE
from .passes import reread
from .tmm import factors_and_libraries
from .tmm import tmm_options as _tmm_options
from .validate import as_counts, check_block, empty_library_error, restore, sample_labels

__all__ = ["METHODS", "cpm", "normalize", "quantile_normalize"]

METHODS = ("log_quantile", "quantile", "cpm", "tmm")
TIES = ("mean", "average_rank")
EMPTY = ("raise", "nan")

#: Columns sorted at a time inside a block (bounds the temporaries of a task).
_BATCH = 64
#: Non-negative integers below this are mapped to their target through a dense table.
_TABLE = 1 << 16
_LOG1P2: np.ndarray | None = None


# ----------------------------------------------------------------------------- quantile


def _log1p2_table() -> np.ndarray:
    """``log2(1 + i)`` for the integers below :data:`_TABLE` (made once per process)."""
    global _LOG1P2
    if _LOG1P2 is None:
        _LOG1P2 = np.log2(1.0 + np.arange(_TABLE, dtype=np.float64))
    return _LOG1P2


def _native(block: np.ndarray) -> np.ndarray:
    """``block`` in native byte order (the compiled kernels take nothing else)."""
    return block if block.dtype.isnative else block.astype(block.dtype.newbyteorder("="))


def _sorted_sum(block: np.ndarray, log: bool) -> np.ndarray:
    """Sum over the samples of a block of each sample's sorted values: shape (features, 1).

    Integer counts of up to 32 bits are summed as 64-bit integers (exact, like float64
    below 2**53, and cheaper; wider ones could overflow, so they are summed as float64);
    their ``log2(1 + x)`` comes from a table for the common small values.  Temporaries
    are buffers reused across batches of columns: fresh large arrays cost page faults,
    which threads reading the file at the same time make expensive.
    """
    check_block(block, "quantile_normalize", negative=not log)
    block = _native(block)
    cols = block.T
    kind = block.dtype.kind
    exact_sum = kind in "iu" and block.dtype.itemsize <= 4
    total = np.zeros(block.shape[0])
    exact = np.zeros(block.shape[0], dtype=np.uint64 if kind == "u" else np.int64)
    width = min(_BATCH, cols.shape[0])
    part_buf = np.empty((width, block.shape[0]), dtype=block.dtype)
    if log and kind in "iu":
        from .kernels import add_log1p2_sorted
    for start in range(0, cols.shape[0], _BATCH):
        part = part_buf[: min(_BATCH, cols.shape[0] - start)]
        part[...] = cols[start : start + _BATCH]  # sorted in place
        if log and kind == "f":
            srt = np.log2(1.0 + part.astype(np.float64))
            srt.sort(axis=1)
            total += srt.sum(axis=0)
            continue
        part.sort(axis=1)
        if kind not in "iu" or (not log and not exact_sum):
            total += part.sum(axis=0, dtype=np.float64)
        elif log:  # non-negative: check_block refuses negative counts with log
            add_log1p2_sorted(part, _log1p2_table(), total)
        else:
            exact += part.sum(axis=0, dtype=exact.dtype)
    if exact_sum and not log:
        total = exact.astype(np.float64)
    return total[:, None]


def _block_values(target: np.ndarray, starts: np.ndarray, n: int, ties: str) -> np.ndarray:
    """The value each tied block of a sorted column gets from the sorted ``target``."""
    sizes = np.diff(starts, append=n)
    if ties == "mean":  # qnorm / archs4py: mean of the target over the ranks of the block
        return np.add.reduceat(target, starts) / sizes
    # preprocessCore / limma: the target at the block's average rank, interpolated
    twice = 2 * starts + sizes - 1  # twice the average 0-based rank
    lo = twice // 2
    hi = np.minimum(lo + 1, n - 1)
    return np.where(twice % 2 == 0, target[lo], 0.5 * (target[lo] + target[hi]))


def _assign(block: np.ndarray, target: np.ndarray, log: bool, ties: str) -> np.ndarray:
    """Quantile-normalize the columns of ``block`` onto the sorted ``target`` (features, 1)."""
    target = target[:, 0]
    block = _native(block)
    if log and block.dtype.kind == "f":  # rank the transformed values (floats may collide)
        block = np.log2(1.0 + block.astype(np.float64))
    n = block.shape[0]
    cols = np.ascontiguousarray(block.T)
    out = np.empty(cols.shape, dtype=np.float64)
    # Buffers reused across batches: fresh large temporaries cost page faults, which
    # threads reading the file at the same time make expensive.
    sorted_buf = np.empty((min(_BATCH, cols.shape[0]), n), dtype=cols.dtype)
    if cols.dtype.kind in "iu":
        from .kernels import assign_sorted

        table, big_keys, big_values = np.empty(_TABLE), np.empty(n, cols.dtype), np.empty(n)
    for start in range(0, cols.shape[0], _BATCH):
        batch = cols[start : start + _BATCH]
        srt = sorted_buf[: batch.shape[0]]
        srt[...] = batch
        srt.sort(axis=1)
        rows = out[start : start + batch.shape[0]]
        if cols.dtype.kind in "iu" and srt[:, 0].min() >= 0:  # non-negative integer counts
            assign_sorted(batch, srt, target, ties == "mean", table, big_keys, big_values, rows)
            continue
        for sorted_col, col, row in zip(srt, batch, rows, strict=True):
            starts = np.flatnonzero(np.r_[True, sorted_col[1:] != sorted_col[:-1]])
            values = _block_values(target, starts, n, ties)
            row[...] = values[np.searchsorted(sorted_col[starts], col)]
    return out.T


def quantile_normalize(
    counts: xr.DataArray | xr.Dataset,
    *,
    ties: Literal["mean", "average_rank"] = "mean",
    log: bool = False,
) -> xr.DataArray:
    """Quantile-normalize the samples of ``counts`` (Bolstad et al. 2003), lazily.

    The target distribution is the mean over samples of each sample's sorted values; each
    value is replaced by the target at its rank within its sample.

    Parameters
    ----------
    counts : xarray.DataArray or xarray.Dataset
        (feature, sample) values, any numeric dtype; a Dataset's ``counts`` is used.
    ties : {"mean", "average_rank"}, default "mean"
        How tied values within a sample are treated.  ``"mean"`` gives a run of ties the
        mean of the target over the ranks it occupies (qnorm, hence archs4py).
        ``"average_rank"`` gives it the target at the run's average rank, the mean of the
        two neighbouring targets for a half rank (preprocessCore ``normalize.quantiles``,
        limma ``normalizeQuantiles``).
    log : bool, default False
        Normalize ``log2(1 + counts)`` instead (archs4py's ``log_quantile``).

    Returns
    -------
    xarray.DataArray
        float64, lazy, same dimensions and coordinates as ``counts``.  Input holding NaN or
        infinities (or negative values with ``log=True``) raises ``ValueError`` at compute
        time.

    Examples
    --------
    >>> import archs4x
    >>> from archs4x.datasets import example_file
    >>> ds = archs4x.open_dataset(example_file())
    >>> q = quantile_normalize(ds.counts.isel(sample=slice(0, 8)), log=True)
    >>> q.dims, q.dtype.name
    (('gene', 'sample'), 'float64')
    >>> v = q.values  # computed here
    >>> bool((abs(v.mean(axis=0) - v.mean()) < 1e-9).all())  # every sample: same mean
    True
    """
    if ties not in TIES:
        raise ValueError(f"ties must be one of {TIES}, got {ties!r}")
    arr, feat = as_counts(counts)
    if arr.shape[0] == 0:
        raise ValueError(
            f"quantile normalization needs at least one {feat}: the counts have 0 along {feat!r}"
        )
    data = arr.data
    n_samples = data.shape[1]
    n_blocks = len(data.chunks[1])
    sums = da.map_blocks(
        _sorted_sum, data, log, dtype=np.float64, chunks=(data.chunks[0], (1,) * n_blocks)
    )
    target = sums.sum(axis=1) / max(n_samples, 1)
    again = reread(data, target)
    out = da.map_blocks(_assign, again, target[:, None], log, ties, dtype=np.float64)
    name = "log_quantile" if log else "quantile"
    return restore(out, arr, counts, _attrs(name, arr, ties=ties))


# ----------------------------------------------------------------------------------- cpm


def _cpm_block(block, labels, factors, mean_lib, log, prior, empty, block_info=None):
    check_block(block, "cpm")
    lib = _library_sizes(block)
    if factors is not None:
        f = factors[0]
        _check_factors(f, labels[0], block_info, empty_lib=~(lib > 0))
        lib = lib * f
    bad = ~(lib > 0)
    if bad.any():
        if empty == "raise":
            empty_library_error("CPM", lib, labels, block_info)
        lib = np.where(bad, np.nan, lib)
    if not log:
        return block / (lib / 1e6)
    # edgeR cpm(log=TRUE): prior scaled by library size, library enlarged by twice the prior
    scaled = prior * lib / mean_lib
    with np.errstate(invalid="ignore"):
        return (np.log(block + scaled) - np.log(lib + 2 * scaled) + np.log(1e6)) / np.log(2)


def _library_sizes(block: np.ndarray) -> np.ndarray:
    """Column sums as float64; integer counts of up to 32 bits are summed as 64-bit
    integers (exact, and about a third faster than converting every count to float64;
    wider ones could overflow)."""
    kind = block.dtype.kind
    if kind in "iu" and block.dtype.itemsize <= 4:
        return block.sum(axis=0, dtype=np.uint64 if kind == "u" else np.int64).astype(np.float64)
    return block.sum(axis=0, dtype=np.float64)


def _check_factors(f: np.ndarray, labels: np.ndarray, block_info: Any = None,
                   empty_lib: np.ndarray | None = None) -> None:  # fmt: skip
    """Raise ``ValueError`` naming the first sample whose normalization factor is not a
    finite number > 0.  NaN is accepted where the library is empty (``empty_lib``): that
    is what :func:`archs4x.tmm_factors` gives such samples with ``empty="nan"``."""
    bad = ~(np.isfinite(f) & (f > 0))
    if empty_lib is not None:
        bad &= ~(np.isnan(f) & empty_lib)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        start = block_info[0]["array-location"][1][0] if block_info else 0
        raise ValueError(
            f"norm_factors must be finite numbers > 0: sample {labels[i]!r} (position "
            f"{start + i}) has {float(f[i])!r}"
        )


def _factors_row(norm_factors: Any, arr: xr.DataArray, empty: str) -> da.Array:
    """Normalization factors as a (1, n_samples) Dask array chunked like ``arr``'s samples.

    Factors in memory are checked now (NaN only if ``empty="nan"``; a NaN factor of a
    sample that turns out not to be empty raises at compute time); lazy ones when
    computed.
    """
    if isinstance(norm_factors, xr.DataArray):
        norm_factors = norm_factors.data
    if isinstance(norm_factors, da.Array):
        f = norm_factors.astype(np.float64)
    else:
        try:
            f = np.asarray(norm_factors, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"norm_factors must be numbers, one per sample: {exc}") from exc
        if f.shape == (arr.shape[1],):
            index = arr.indexes.get(SAMPLE)
            labels = np.asarray(index if index is not None else np.arange(f.size), dtype=object)
            _check_factors(f, labels, empty_lib=np.isnan(f) if empty == "nan" else None)
    if f.shape != (arr.shape[1],):
        raise ValueError(
            f"norm_factors must have one value per sample ({arr.shape[1]}), got shape {f.shape}"
        )
    assert arr.chunks is not None  # arr comes from as_counts: Dask-backed
    return da.asarray(f).rechunk((arr.chunks[1],))[None, :]


def _mean_lib(lib: np.ndarray) -> np.ndarray:
    ok = lib[lib > 0]
    return np.asarray(ok.mean() if ok.size else np.nan)


def cpm(
    counts: xr.DataArray | xr.Dataset,
    *,
    log: bool = False,
    prior_count: float = 2.0,
    norm_factors: Any = None,
    empty: Literal["raise", "nan"] = "raise",
) -> xr.DataArray:
    """Counts per million, lazily: ``counts * 1e6 / library size`` for every sample.

    Parameters
    ----------
    counts : xarray.DataArray or xarray.Dataset
        (feature, sample) non-negative counts.
    log : bool, default False
        Return edgeR's log-CPM (``edgeR::cpm(log=TRUE)``): with effective library sizes
        ``L_j`` (library size x factor) and their mean ``m``, the prior of sample ``j`` is
        ``p_j = prior_count * L_j / m`` and the result is
        ``log2((counts + p_j) / (L_j + 2 p_j) * 1e6)``.  Computing ``m`` takes one more
        pass over the samples.
    prior_count : float, default 2
        edgeR's ``prior.count`` (only with ``log=True``).
    norm_factors : array-like or DataArray, optional
        One factor per sample (for example :func:`archs4x.tmm_factors`); the effective
        library size is library size x factor, as in edgeR.
    empty : {"raise", "nan"}, default "raise"
        A sample with no reads has no CPM.  ``"raise"`` raises
        :class:`EmptyLibraryError` (a ``ValueError``) *when the result is computed*, since
        library sizes are only known then; ``"nan"`` returns NaN for such samples (and
        leaves them out of ``m``).

    Returns
    -------
    xarray.DataArray
        float64, lazy, same dimensions and coordinates as ``counts``.

    Examples
    --------
    >>> import archs4x
    >>> from archs4x.datasets import example_file
    >>> ds = archs4x.open_dataset(example_file(empty_libraries=True))
    >>> c = cpm(ds.counts.isel(sample=slice(0, 5)))
    >>> c.sum("gene").values.round(6).tolist()
    [1000000.0, 1000000.0, 1000000.0, 1000000.0, 1000000.0]
    >>> cpm(ds.counts).values  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    archs4x.errors.EmptyLibraryError: sample 'GSM1000605' (position 201) has an empty library...
    >>> logcpm = cpm(ds.counts, log=True, empty="nan").values
    >>> int(np.isnan(logcpm).all(axis=0).sum())  # the three empty samples
    3
    """
    _check_cpm_options(empty, prior_count)
    arr, _ = as_counts(counts, one_block=norm_factors is None)
    factors = None if norm_factors is None else _factors_row(norm_factors, arr, empty)
    out = _cpm(arr, factors, None, log, prior_count, empty)
    name = "tmm" if norm_factors is not None else "cpm"
    extra = {"log": int(log)} | ({"prior_count": prior_count} if log else {})
    return restore(out, arr, counts, _attrs(name, arr, **extra))


def _check_cpm_options(empty: str, prior_count: float) -> None:
    if empty not in EMPTY:
        raise ValueError(f"empty must be one of {EMPTY}, got {empty!r}")
    if not np.isfinite(prior_count) or prior_count < 0:
        raise ValueError(f"prior_count must be a finite number >= 0, got {prior_count!r}")


def _cpm(arr, factors, lib, log, prior_count, empty) -> da.Array:
    """The CPM graph: one read of ``arr``, after what it needs (factors, mean library).

    ``lib``: the library sizes if already known (TMM has them), else log-CPM reads the
    input once more for them.
    """
    data = arr.data
    mean_lib = None
    after = [] if factors is None else [factors]
    if log:
        if lib is None:
            lib = data.sum(axis=0, dtype=np.float64)
        if factors is not None:
            lib = lib * factors[0]
        mean_lib = da.map_blocks(
            _mean_lib, lib.rechunk(-1), dtype=np.float64, chunks=(), drop_axis=0
        )
        after.append(mean_lib)
    if after:
        data = reread(data, *after)
    args = [data, sample_labels(arr), factors, mean_lib, log, prior_count, empty]
    return da.map_blocks(_cpm_block, *args, dtype=np.float64)


# ----------------------------------------------------------------------------- dispatch


def _attrs(method: str, arr: xr.DataArray, **extra: Any) -> dict:
    return {
        "long_name": f"{method}-normalized {arr.dims[0]} expression",
        "normalization": method,
        **extra,
    }


def normalize(
    counts: xr.DataArray | xr.Dataset,
    method: Literal["log_quantile", "quantile", "cpm", "tmm"] = "log_quantile",
    *,
    ties: Literal["mean", "average_rank"] = "mean",
    empty: Literal["raise", "nan"] = "raise",
    log: bool = False,
    prior_count: float = 2.0,
    dtype: Any = np.float64,
    **tmm_options: Any,
) -> xr.DataArray:
    """Normalize the samples of ``counts`` lazily, like ``archs4py.utils.normalize``.

    Parameters
    ----------
    counts : xarray.DataArray or xarray.Dataset
        (feature, sample) counts, typically ``archs4x.open_dataset(path).counts`` or a
        selection of it; a Dataset's ``counts`` is used.
    method : {"log_quantile", "quantile", "cpm", "tmm"}, default "log_quantile"
        ``"quantile"``: :func:`quantile_normalize`; ``"log_quantile"``: the same on
        ``log2(1 + counts)``; ``"cpm"``: :func:`cpm`; ``"tmm"``: CPM with effective library
        sizes library size x :func:`archs4x.tmm_factors` (edgeR's TMM).
    ties : {"mean", "average_rank"}, default "mean"
        Quantile methods only: see :func:`quantile_normalize`.
    empty : {"raise", "nan"}, default "raise"
        CPM and TMM only: what a sample with no reads gets (see :func:`cpm`).
    log, prior_count
        CPM and TMM only: edgeR's log-CPM with a scaled prior count (see :func:`cpm`).
        The quantile methods reject ``log=True``: use ``method="log_quantile"``.
    dtype : numpy dtype, default float64
        dtype of the result (``numpy.float32`` halves its size, as archs4py returns).
    **tmm_options
        ``"tmm"`` only: passed to :func:`archs4x.tmm_factors` (``logratio_trim``,
        ``sum_trim``, ``do_weighting``, ``a_cutoff``, ``ref_column``).

    Returns
    -------
    xarray.DataArray
        Lazy, with the dimensions and coordinates of ``counts``.

    Examples
    --------
    >>> import archs4x
    >>> from archs4x.datasets import example_file
    >>> ds = archs4x.open_dataset(example_file())
    >>> norm = normalize(ds.isel(sample=slice(0, 20)), "tmm", log=True)
    >>> norm.attrs["normalization"], norm.shape
    ('tmm', (4500, 20))
    >>> normalize(ds.counts, "quantile", log=True)
    Traceback (most recent call last):
    ...
    ValueError: log=True applies to 'cpm' and 'tmm'; use method='log_quantile'
    """
    if method not in METHODS:
        raise ValueError(f"unsupported normalization method {method!r}: choose one of {METHODS}")
    if tmm_options and method != "tmm":
        raise TypeError(f"unexpected options for method {method!r}: {sorted(tmm_options)}")
    dtype = _result_dtype(dtype)
    if method in ("quantile", "log_quantile"):
        if log:
            raise ValueError("log=True applies to 'cpm' and 'tmm'; use method='log_quantile'")
        out = quantile_normalize(counts, ties=ties, log=method == "log_quantile")
    elif method == "cpm":
        out = cpm(counts, log=log, prior_count=prior_count, empty=empty)
    else:
        out = _tmm_cpm(counts, log, prior_count, empty, tmm_options)
    return out if dtype == out.dtype else out.astype(dtype)


def _result_dtype(dtype: Any) -> np.dtype:
    """``dtype`` if it can hold normalized values (a float of 32 bits or more), else raise."""
    try:
        dt = np.dtype(dtype)
    except TypeError as exc:
        raise TypeError(f"dtype must be a NumPy floating-point dtype, got {dtype!r}") from exc
    if dt.kind != "f" or dt.itemsize < 4:
        raise ValueError(
            f"dtype must be a floating-point type of 32 bits or more (numpy.float32 or "
            f"numpy.float64), got {dt.name}: normalized values are fractional and CPM reaches "
            f"1,000,000, which {dt.name} would truncate, wrap or overflow"
        )
    return dt


def _tmm_cpm(counts, log: bool, prior_count: float, empty: str, tmm_options: dict):
    """TMM-CPM: the factors' two reads (library sizes come with them), then the output."""
    _check_cpm_options(empty, prior_count)
    options = _tmm_options(empty, **tmm_options)
    arr, _ = as_counts(counts)
    factors, lib = factors_and_libraries(arr, options[:4], options[4], empty)
    out = _cpm(arr, factors[None, :], lib, log, prior_count, empty)
    extra = {"log": int(log)} | ({"prior_count": prior_count} if log else {})
    return restore(out, arr, counts, _attrs("tmm", arr, **extra))
