"""Property tests: any matrix, any uneven sample chunking, same answer as the references."""

from __future__ import annotations

import numpy as np
import xarray as xr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from archs4x.compute.normalize import cpm, quantile_normalize
from archs4x.compute.tmm import tmm_factors

from ._hypothesis import examples
from .test_normalize import ref_cpm, ref_quantile
from .test_tmm import edger_tmm

SETTINGS = settings(
    max_examples=examples(20), deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@st.composite
def matrices(draw, min_samples=1):
    """Small count matrices with many ties, sparse columns and all-zero genes, and an
    uneven split of the samples into chunks."""
    n = draw(st.integers(2, 40))
    m = draw(st.integers(min_samples, 9))
    high = draw(st.sampled_from([3, 30, 70_000]))  # few values (ties) .. beyond the table
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    x = rng.integers(0, high, size=(n, m)) * (rng.random((n, m)) < draw(st.floats(0.2, 1.0)))
    x[rng.random(n) < 0.2] = 0  # all-zero genes
    cuts = sorted(draw(st.sets(st.integers(1, max(1, m - 1)), max_size=m - 1))) if m > 1 else []
    chunks = tuple(np.diff([0, *cuts, m]).tolist())
    return x.astype(np.uint32), chunks


def as_da(x, chunks):
    return xr.DataArray(x, dims=("gene", "sample")).chunk({"sample": chunks})


@SETTINGS
@given(matrices(), st.sampled_from(["mean", "average_rank"]), st.booleans())
def test_quantile_any_chunking(data, ties, log):
    x, chunks = data
    got = quantile_normalize(as_da(x, chunks), ties=ties, log=log).values
    ref = ref_quantile(np.log2(1.0 + x) if log else x, ties)
    np.testing.assert_allclose(got, ref, rtol=1e-10, atol=1e-300)


@SETTINGS
@given(matrices(), st.booleans())
def test_cpm_any_chunking(data, log):
    x, chunks = data
    nonempty = x.sum(axis=0) > 0
    got = cpm(as_da(x, chunks), log=log, empty="nan").values
    assert np.isnan(got[:, ~nonempty]).all()
    if nonempty.any():
        ref = ref_cpm(x[:, nonempty], log=log)
        np.testing.assert_allclose(got[:, nonempty], ref, rtol=1e-10, atol=1e-12)


@SETTINGS
@given(matrices(min_samples=1))
def test_tmm_any_chunking(data):
    x, chunks = data
    nonempty = x.sum(axis=0) > 0
    got = tmm_factors(as_da(x, chunks), empty="nan").values
    assert np.isnan(got[~nonempty]).all()
    if nonempty.any():
        np.testing.assert_allclose(got[nonempty], edger_tmm(x[:, nonempty]), rtol=1e-10)


@SETTINGS
@given(
    matrices(),
    st.sampled_from([np.uint16, np.int32, np.uint32, np.int64, np.uint64, np.float32]),
    st.sampled_from(["mean", "average_rank"]),
    st.booleans(),
    st.booleans(),
)
def test_every_input_dtype_gives_the_reference(data, dtype, ties, log, negate):
    """The compiled kernels (non-negative integers, any width) and the NumPy paths (floats,
    negative integers) give the same normalized values as the plain-numpy references."""
    x, chunks = data
    x = np.minimum(x, np.iinfo(np.uint16).max) if dtype == np.uint16 else x
    x = x.astype(dtype)
    if negate and not log and np.dtype(dtype).kind in "if":
        x = -x  # the NumPy path: negative values are ranked like any others
    got = quantile_normalize(as_da(x, chunks), ties=ties, log=log).values
    ref = ref_quantile(np.log2(1.0 + x.astype(np.float64)) if log else x, ties)
    np.testing.assert_allclose(got, ref, rtol=1e-10, atol=1e-300)
    if not negate:
        np.testing.assert_allclose(
            cpm(as_da(x, chunks), empty="nan").values[:, x.sum(axis=0) > 0],
            ref_cpm(x[:, x.sum(axis=0) > 0].astype(np.float64)),
            rtol=1e-10,
        )
