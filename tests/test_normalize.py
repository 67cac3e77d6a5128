"""Quantile, log-quantile and CPM normalization against plain numpy references, qnorm and archs4py."""

from __future__ import annotations

import dask
import dask.array as da
import numpy as np
import pandas as pd
import pytest
import qnorm
import xarray as xr
from archs4py.utils import normalize as a4_normalize

import archs4x
from archs4x.compute.normalize import cpm, normalize, quantile_normalize
from archs4x.errors import EmptyLibraryError

from ._laziness import raise_if_dask_computes

# --------------------------------------------------------------- plain numpy references


def ref_quantile(x: np.ndarray, ties: str = "mean") -> np.ndarray:
    """Bolstad quantile normalization written from the papers / qnorm / preprocessCore docs."""
    x = np.asarray(x, dtype=np.float64)
    m = x.shape[1]
    target = np.sort(x, axis=0).mean(axis=1)
    out = np.empty_like(x)
    for j in range(m):
        col = x[:, j]
        for value in np.unique(col):
            ranks = np.flatnonzero(np.sort(col) == value)  # 0-based ranks of the tied run
            if ties == "mean":
                out[col == value, j] = target[ranks].mean()
            else:
                avg = ranks.mean()  # average rank; preprocessCore interpolates half ranks
                lo = int(np.floor(avg))
                out[col == value, j] = (
                    target[lo] if avg == lo else 0.5 * (target[lo] + target[lo + 1])
                )
    return out


def ref_cpm(x, factors=None, log=False, prior=2.0):
    x = np.asarray(x, dtype=np.float64)
    lib = x.sum(axis=0)
    if factors is not None:
        lib = lib * factors
    if not log:
        return x / lib * 1e6
    p = prior * lib / lib.mean()
    return np.log2((x + p) / (lib + 2 * p) * 1e6)


def counts_matrix(seed=0, n=400, m=23, zero_genes=7, sparse=0.6):
    rng = np.random.default_rng(seed)
    x = rng.negative_binomial(0.4, 0.02, size=(n, m)) * (rng.random((n, m)) < sparse)
    x[rng.integers(0, n, zero_genes)] = 0
    return x.astype(np.uint32)


def as_da(x, chunk=5):
    n, m = x.shape
    arr = xr.DataArray(
        x,
        dims=("gene", "sample"),
        coords={"gene": [f"G{i}" for i in range(n)], "sample": [f"S{j}" for j in range(m)]},
    )
    return arr.chunk({"sample": chunk})


def close(a, b, rtol=1e-10, atol=0.0):
    np.testing.assert_allclose(a, b, rtol=rtol, atol=atol)


# ---------------------------------------------------------------------------- quantile


@pytest.mark.parametrize("ties", ["mean", "average_rank"])
@pytest.mark.parametrize("chunk", [1, 4, 23])
def test_quantile_matches_reference(ties, chunk):
    x = counts_matrix(seed=chunk)
    got = quantile_normalize(as_da(x, chunk), ties=ties).values
    close(got, ref_quantile(x, ties))


def test_quantile_default_ties_equal_qnorm_exactly_enough():
    x = counts_matrix(seed=5, n=2000, m=40)
    close(quantile_normalize(as_da(x, 7)).values, qnorm.quantile_normalize(x.astype(float)))


def test_average_rank_differs_from_mean_on_ties():
    y = np.array([[1, 0], [1, 1], [1, 5], [4, 9]], dtype=np.uint32)
    target = np.array([0.5, 1.0, 3.0, 6.5])  # row means of the sorted columns
    mean_ties = quantile_normalize(as_da(y)).values[:3, 0]
    rank_ties = quantile_normalize(as_da(y), ties="average_rank").values[:3, 0]
    assert (mean_ties == target[:3].mean()).all()  # 1.5: mean of the run's targets
    assert (rank_ties == target[1]).all()  # 1.0: target at the average rank (2nd)


def test_log_quantile_matches_reference_and_float_input():
    x = counts_matrix(seed=2)
    lx = np.log2(1.0 + x)
    close(quantile_normalize(as_da(x), log=True).values, ref_quantile(lx))
    close(quantile_normalize(as_da(x.astype(np.float64)), log=True).values, ref_quantile(lx))


def test_quantile_on_negative_floats_and_large_integers():
    rng = np.random.default_rng(3)
    x = np.round(rng.normal(size=(300, 9)), 1)  # floats with ties and negatives
    close(quantile_normalize(as_da(x, 2)).values, ref_quantile(x), atol=1e-12)
    big = rng.integers(0, 3_000_000, size=(500, 6)).astype(np.uint32)  # beyond the table
    big[:100] = rng.integers(0, 50, size=(100, 6))
    close(quantile_normalize(as_da(big, 4)).values, ref_quantile(big))


def test_quantile_single_sample_and_all_zero():
    x = counts_matrix(seed=4, m=1)
    close(quantile_normalize(as_da(x)).values, x.astype(float))  # one sample: unchanged
    z = np.zeros((50, 4), dtype=np.uint32)
    assert (quantile_normalize(as_da(z)).values == 0).all()


@pytest.mark.parametrize("method", ["quantile", "log_quantile", "cpm"])
def test_matches_archs4py(method, gene_file):
    ds = archs4x.open_dataset(gene_file).isel(sample=slice(0, 150))
    x = ds.counts.values
    keep = x.sum(axis=0) > 0
    ds = ds.isel(sample=keep)
    df = pd.DataFrame(x[:, keep], index=ds.gene.values, columns=ds.sample.values)
    ours = normalize(ds.counts, method)
    theirs = a4_normalize(df, method)
    assert ours.dims == ("gene", "sample")
    assert (ours.sample.values == theirs.columns.values).all()
    # archs4py returns float32: compare at float32 precision
    np.testing.assert_allclose(ours.values, theirs.values, rtol=2e-7, atol=1e-30)


def test_keeps_coords_dim_order_and_dtype(gene_file):
    ds = archs4x.open_dataset(gene_file)
    sub = ds.counts.isel(sample=slice(0, 12)).transpose("sample", "gene")
    out = normalize(sub, "quantile", dtype=np.float32)
    assert out.dims == ("sample", "gene") and out.dtype == np.float32
    assert (out.sample.values == sub.sample.values).all()
    assert "series_id" in out.coords and "symbol" in out.coords
    assert out.attrs["normalization"] == "quantile"


# --------------------------------------------------------------------------------- cpm


@pytest.mark.parametrize("log", [False, True])
def test_cpm_matches_reference(log):
    x = counts_matrix(seed=6)
    got = cpm(as_da(x, 6), log=log, prior_count=0.5).values
    close(got, ref_cpm(x, log=log, prior=0.5), atol=1e-12)


def test_cpm_with_factors_is_edger_effective_library():
    x = counts_matrix(seed=7)
    f = np.linspace(0.8, 1.2, x.shape[1])
    close(cpm(as_da(x), norm_factors=f).values, ref_cpm(x, f))
    close(cpm(as_da(x), norm_factors=f, log=True).values, ref_cpm(x, f, log=True), atol=1e-12)
    with pytest.raises(ValueError, match="one value per sample"):
        cpm(as_da(x), norm_factors=f[:-1])


def test_cpm_empty_library_raises_at_compute_or_gives_nan():
    x = counts_matrix(seed=8)
    x[:, 3] = 0
    lazy = cpm(as_da(x, 2))  # building the graph does not raise
    with pytest.raises(EmptyLibraryError, match=r"'S3' \(position 3\) has an empty library"):
        lazy.compute()
    got = cpm(as_da(x, 2), empty="nan", log=True).values
    assert np.isnan(got[:, 3]).all() and np.isfinite(np.delete(got, 3, axis=1)).all()
    keep = np.delete(x, 3, axis=1)
    close(np.delete(got, 3, axis=1), ref_cpm(keep, log=True), atol=1e-12)


def test_single_sample_cpm():
    x = counts_matrix(seed=9, m=1)
    close(cpm(as_da(x)).values, ref_cpm(x))


# ------------------------------------------------------------------------- bad input


def test_bad_input_errors():
    x = as_da(counts_matrix(seed=10))
    with pytest.raises(ValueError, match="unsupported normalization method 'zscore'"):
        normalize(x, "zscore")
    with pytest.raises(ValueError, match="ties must be one of"):
        normalize(x, "quantile", ties="min")
    with pytest.raises(ValueError, match="use method='log_quantile'"):
        normalize(x, "quantile", log=True)
    with pytest.raises(ValueError, match="empty must be one of"):
        normalize(x, "cpm", empty="zero")
    with pytest.raises(TypeError, match="unexpected options"):
        normalize(x, "cpm", logratio_trim=0.2)
    with pytest.raises(TypeError, match="numeric"):
        normalize(x.astype(str), "cpm")
    with pytest.raises(ValueError, match="expected a dimension named"):
        normalize(xr.DataArray(np.ones((2, 2)), dims=("a", "b")))
    with pytest.raises(TypeError, match="DataArray or Dataset"):
        normalize(np.ones((3, 3)))
    neg = as_da(-counts_matrix(seed=11).astype(np.int64))
    with pytest.raises(ValueError, match="negative"):
        cpm(neg).compute()
    nan = as_da(np.full((4, 3), np.nan))
    with pytest.raises(ValueError, match="NaN"):
        quantile_normalize(nan).compute()


@pytest.mark.parametrize("bad", [np.inf, -np.inf, 0.0, -1.5])
def test_bad_norm_factors_are_refused_naming_the_sample(bad):
    """inf gave zeros and 0 or negative factors a misleading 'empty library' (issue 13)."""
    x = counts_matrix(seed=13)
    f = np.linspace(0.8, 1.2, x.shape[1])
    f[3] = bad
    for empty in ("raise", "nan"):
        with pytest.raises(ValueError, match=r"norm_factors must be finite numbers > 0: "
                                             r"sample 'S3' \(position 3\)") as err:  # fmt: skip
            cpm(as_da(x), norm_factors=f, empty=empty)  # in memory: refused at once
        assert not isinstance(err.value, EmptyLibraryError)
    lazy = cpm(as_da(x), norm_factors=da.from_array(f, chunks=4))  # lazy: when computed
    with pytest.raises(ValueError, match=r"sample 'S3' \(position 3\) has") as err:
        lazy.compute()
    assert not isinstance(err.value, EmptyLibraryError)


def test_nan_norm_factor_only_for_an_empty_library():
    x = counts_matrix(seed=14)
    x[:, 2] = 0
    f = np.linspace(0.8, 1.2, x.shape[1])
    f[2] = np.nan  # what tmm_factors(empty="nan") gives an empty sample
    with pytest.raises(ValueError, match=r"'S2' \(position 2\) has nan"):
        cpm(as_da(x), norm_factors=f)  # empty="raise": NaN is never a valid factor
    got = cpm(as_da(x), norm_factors=f, empty="nan").values
    assert np.isnan(got[:, 2]).all()
    keep = np.delete(np.arange(x.shape[1]), 2)
    close(got[:, keep], ref_cpm(x[:, keep], f[keep]))
    f[5] = np.nan  # S5 has reads: its NaN factor is an error, found when computed
    lazy = cpm(as_da(x), norm_factors=f, empty="nan")
    with pytest.raises(ValueError, match=r"'S5' \(position 5\) has nan") as err:
        lazy.compute()
    assert not isinstance(err.value, EmptyLibraryError)


def test_quantile_of_zero_genes_is_a_clear_error():
    empty = as_da(np.zeros((0, 4), dtype=np.uint32))
    for call in (lambda: quantile_normalize(empty), lambda: normalize(empty, "log_quantile")):
        with pytest.raises(ValueError, match="needs at least one gene"):
            call()


@pytest.mark.parametrize("dtype", [np.uint8, np.int32, np.uint64, np.float16, bool])
def test_result_dtypes_that_would_wrap_are_refused(dtype):
    """normalize(dtype=np.uint8) turned CPM 500000 into 31 (issue 13)."""
    x = as_da(counts_matrix(seed=15))
    with pytest.raises(ValueError, match="floating-point type of 32 bits or more"):
        normalize(x, "cpm", dtype=dtype)


def test_float32_result_is_the_float64_result_rounded():
    x = as_da(counts_matrix(seed=16))
    got = normalize(x, "cpm", dtype=np.float32).values
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, normalize(x, "cpm").values.astype(np.float32))


@pytest.mark.parametrize("method", ["quantile", "log_quantile", "tmm"])
def test_in_memory_input_is_left_untouched(method):
    """Regression: a sort (or partition) in place on a contiguous block reordered the
    caller's array (one-sample blocks of an in-memory matrix are views of it)."""
    x = counts_matrix(seed=17, m=1)  # its one block is the caller's array itself
    before = x.copy()
    arr = xr.DataArray(x, dims=("gene", "sample")).chunk({"sample": 1})
    normalize(arr, method).compute()
    np.testing.assert_array_equal(x, before)


# -------------------------------------------------------------------------- laziness


@pytest.mark.parametrize(
    ("method", "log"),
    [("quantile", False), ("log_quantile", False), ("cpm", False), ("cpm", True),
     ("tmm", False), ("tmm", True)],
)  # fmt: skip
def test_lazy_until_compute(gene_file, method, log):
    ds = archs4x.open_dataset(gene_file)
    with raise_if_dask_computes():
        out = normalize(ds.counts, method, log=log, empty="nan")
        out = out.isel(sample=slice(0, 3))
    assert out.chunks is not None


def test_numpy_backed_input_becomes_lazy():
    x = counts_matrix(seed=12)
    arr = xr.DataArray(x, dims=("gene", "sample"))
    with raise_if_dask_computes():
        out = normalize(arr, "quantile")
    assert out.chunks is not None
    close(out.values, ref_quantile(x))


def test_dataset_input(gene_file):
    ds = archs4x.open_dataset(gene_file).isel(sample=slice(0, 10))
    close(normalize(ds, "cpm").values, normalize(ds.counts, "cpm").values, rtol=0)


@pytest.mark.cluster
def test_on_a_distributed_cluster(cluster, gene_file):
    """Two-pass and five-pass graphs on a real scheduler + 2 worker processes equals the threaded result."""
    import dask

    ds = archs4x.open_dataset(gene_file, sample_chunk=40).isel(sample=slice(0, 120))
    for method in ("log_quantile", "tmm"):
        lazy = normalize(ds.counts, method, empty="nan").sum("gene")
        on_cluster = cluster.compute(lazy.data).result()
        with dask.config.set(scheduler="threads"):
            local = lazy.values
        np.testing.assert_allclose(on_cluster, local, rtol=1e-12)


@pytest.mark.parametrize(
    ("method", "log", "options", "passes", "columns"),
    [("quantile", False, {}, 2, 0), ("log_quantile", False, {}, 2, 0), ("cpm", False, {}, 1, 0),
     ("cpm", True, {}, 2, 0), ("tmm", False, {}, 3, 1), ("tmm", True, {}, 3, 1),
     ("tmm", False, {"ref_column": 4}, 2, 1)],
)  # fmt: skip
def test_each_pass_rereads_only_the_selection(gene_file, method, log, options, passes, columns):
    """Each method reads the selection as often as its algorithm needs, exactly:
    CPM once (log-CPM twice: the mean library size comes first), quantile twice (sort,
    then assign), TMM-CPM three times plus its reference column (statistics; factors;
    output, which needs their geometric mean), twice with a given reference.

    Regression: passes over a sample selection shared their source blocks (dask's bind
    does not clone layers the statistic also uses), holding them in memory between passes.
    Now every pass reads exactly the selected columns, pushed down to the reader."""
    from ._reads import get_reader

    ds = archs4x.open_dataset(gene_file, sample_chunk=50)
    idx = np.sort(np.random.default_rng(0).choice(ds.sizes["sample"], 30, replace=False))
    lazy = normalize(ds.isel(sample=idx), method, log=log, empty="nan", **options)
    reader = get_reader(str(gene_file))
    reader.stats.chunks = 0
    with dask.config.set(scheduler="threads"):
        lazy.compute()
    per_column = -(-ds.sizes["gene"] // 2000)  # HDF5 chunks (2000, 1)
    # every pass reads the selected columns' chunks once (TMM: plus its reference column)
    assert reader.stats.chunks == (passes * len(idx) + columns) * per_column


@pytest.mark.parametrize("method", ["log_quantile", "quantile", "cpm", "tmm"])
def test_in_memory_input_is_never_written(method):
    """The kernels sort and gather in buffers of their own, never in their input block."""
    x = np.asfortranarray(counts_matrix(seed=21))  # F order: blocks are views of columns
    before = x.copy()
    out = normalize(xr.DataArray(x, dims=("gene", "sample")), method, empty="nan")
    first = out.values
    np.testing.assert_array_equal(x, before)
    np.testing.assert_array_equal(out.values, first)


@pytest.mark.parametrize("method", ["log_quantile", "cpm"])
def test_lazily_indexed_input_is_not_read_when_normalize_is_called(gene_file, method):
    """xr.open_dataset(engine="archs4") without chunks: normalize() reads nothing until
    computed (found attacking an in-memory shortcut that looked at ``.data``)."""
    from ._reads import get_reader

    sel = xr.open_dataset(gene_file, engine="archs4").isel(sample=slice(0, 30))
    reader = get_reader(str(gene_file))
    before = reader.stats.chunks
    lazy = normalize(sel, method)
    assert reader.stats.chunks == before
    got = lazy.values  # computed: now it reads
    assert reader.stats.chunks > before
    in_memory = xr.DataArray(sel.counts.values, dims=sel.counts.dims)
    close(got, normalize(in_memory, method).values, rtol=0)


def test_result_does_not_inherit_the_input_encoding(gene_file, tmp_path):
    """The counts' encoding says uint32: a result carrying it was written by xarray's own
    writers as integers (CPM 236842.105 came back as 236842)."""
    ds = archs4x.open_dataset(gene_file).isel(sample=slice(0, 4), gene=slice(0, 3))
    assert ds.counts.encoding.get("dtype") == np.dtype("uint32")
    norm = normalize(ds.counts, "cpm")
    assert norm.encoding == {}
    plain = norm.drop_vars([c for c in norm.coords if c not in ("gene", "sample")])
    plain.to_dataset(name="cpm").to_zarr(tmp_path / "n.zarr", zarr_format=2, consolidated=False)
    back = xr.open_zarr(tmp_path / "n.zarr", consolidated=False).cpm
    assert back.dtype == np.float64
    close(back.values, norm.values, rtol=0)


@pytest.mark.parametrize("method", ["quantile", "log_quantile", "cpm", "tmm"])
def test_big_endian_counts(method):
    """Counts read raw (h5py, np.frombuffer) can be big-endian; the compiled kernels need
    native byte order, so blocks are converted first."""
    x = counts_matrix(seed=23)
    native = normalize(xr.DataArray(x, dims=("gene", "sample")), method, empty="nan").values
    swapped = x.astype(x.dtype.newbyteorder(">" if x.dtype.isnative and np.little_endian
                                             else "<"))  # fmt: skip
    assert not swapped.dtype.isnative
    got = normalize(xr.DataArray(swapped, dims=("gene", "sample")), method, empty="nan").values
    np.testing.assert_array_equal(got, native)


@pytest.mark.parametrize("dtype", [np.uint64, np.int64])
def test_64_bit_counts_near_the_type_limit_do_not_overflow_the_target(dtype):
    """The target was summed exactly as 64-bit integers, which wrapped for counts near the
    type's limit (found attacking the compiled kernels); 64-bit input now sums as float64."""
    rng = np.random.default_rng(5)
    top = np.iinfo(dtype).max
    x = rng.integers(0, top // 2, size=(30, 5)).astype(dtype) * dtype(2)
    x[:5] = top
    x[5:8] = 0
    x[8:10] = 70_000  # beyond the table: the binary-search path
    for ties in ("mean", "average_rank"):
        got = quantile_normalize(as_da(x, chunk=2), ties=ties).values
        close(got, ref_quantile(x, ties), rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.uint64, np.int64])
def test_cpm_of_64_bit_counts_near_the_type_limit(dtype):
    x = np.array([[np.iinfo(dtype).max, 1], [np.iinfo(dtype).max, 3]], dtype=dtype)
    close(cpm(as_da(x, chunk=1)).values, ref_cpm(x), rtol=1e-12)
