"""archs4x.compat against archs4py's own outputs, where archs4py is correct.

archs4py's ``data`` functions start a 16-process pool per call, so they are compared a
few times on the small file only.
"""

from __future__ import annotations

import random
import re

import h5py
import numpy as np
import pandas as pd
import pytest

import archs4x.compat as a4
from archs4x.query import MissingIdsWarning

archs4py = pytest.importorskip("archs4py")


@pytest.fixture(scope="module")
def ids(gene_file):
    with h5py.File(gene_file, "r") as f:
        return [x.decode() for x in f["meta/samples/geo_accession"][()]]


@pytest.fixture(scope="module")
def series_ids(gene_file):
    with h5py.File(gene_file, "r") as f:
        return [x.decode() for x in f["meta/samples/series_id"][()]]


# -- meta ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("term", "kw"),
    [("myoblast", {}), ("liver|kidney", {"remove_sc": True}),
     ("rep1", {"meta_fields": ["title", "source_name_ch1"]})],
)  # fmt: skip
def test_meta_meta_equals_archs4py(gene_file, term, kw):
    theirs = archs4py.meta.meta(str(gene_file), term, silent=True, **kw)
    ours = a4.meta.meta(gene_file, term, silent=True, **kw)
    assert len(ours) > 0
    pd.testing.assert_frame_equal(ours, theirs)


def test_meta_samples_and_series(gene_file, ids, series_ids):
    wanted = [ids[i] for i in (3, 10, 42)]
    theirs = archs4py.meta.samples(str(gene_file), wanted, silent=True)
    ours = a4.meta.samples(gene_file, wanted[::-1])
    assert ours.index.tolist() == wanted[::-1]  # request order kept
    pd.testing.assert_frame_equal(ours.loc[theirs.index], theirs)
    single = next(s for s in series_ids if "," not in s and not any(
        s in t.split(",") for t in series_ids if "," in t))  # fmt: skip
    pd.testing.assert_frame_equal(
        a4.meta.series(gene_file, single), archs4py.meta.series(str(gene_file), single)
    )
    multi = next(s for s in series_ids if "," in s).split(",")[1]
    theirs = archs4py.meta.series(str(gene_file), multi)
    ours = a4.meta.series(gene_file, multi)
    assert set(theirs.index) < set(ours.index)  # archs4py misses multi-series samples
    assert all(multi in s.split(",") for s in ours["series_id"])


@pytest.mark.parametrize("name", ["geo_accession", "title", "singlecellprobability",
                                  "symbol", "biotype", "ensembl_gene"])  # fmt: skip
def test_meta_field_equals_archs4py(gene_file, name):
    assert a4.meta.field(gene_file, name) == archs4py.meta.field(str(gene_file), name)


def test_meta_errors(gene_file):
    with pytest.raises(KeyError, match="available"):
        a4.meta.field(gene_file, "no_such_field")
    with pytest.raises(ValueError, match="invalid regular expression"):
        a4.meta.meta(gene_file, "muscle (")
    with pytest.raises(re.error):  # what archs4py does
        archs4py.meta.meta(str(gene_file), "muscle (", silent=True)


# -- data (few archs4py calls: each starts 16 processes) -------------------------------
def test_data_index_and_rand_equal_archs4py(small_file):
    theirs = archs4py.data.index(str(small_file), [2, 7, 30], gene_idx=[1, 4, 9], silent=True)
    ours = a4.data.index(small_file, [2, 7, 30], gene_idx=[1, 4, 9], silent=True)
    pd.testing.assert_frame_equal(ours, theirs)
    assert a4.data.index(small_file, [30, 2], silent=True).columns.tolist() == (
        theirs.columns[[2, 0]].tolist()
    )  # request order kept
    random.seed(99)
    state = random.getstate()
    ours = a4.data.rand(small_file, 4, seed=5, silent=True)
    assert random.getstate() == state  # no global RNG
    theirs = archs4py.data.rand(str(small_file), 4, seed=5, silent=True)
    pd.testing.assert_frame_equal(ours, theirs)
    assert ours.dtypes.unique().tolist() == [np.uint32]


def test_data_samples_equal_archs4py(small_file):
    with h5py.File(small_file, "r") as f:
        gsm = [x.decode() for x in f["meta/samples/geo_accession"][[4, 11, 50]]]
    theirs = archs4py.data.samples(str(small_file), gsm, silent=True)
    ours = a4.data.samples(small_file, gsm, silent=True)
    pd.testing.assert_frame_equal(ours, theirs)


def test_data_meta_and_series_are_the_selected_counts(gene_file, ids, series_ids):
    hits = a4.meta.meta(gene_file, "myoblast", meta_fields=a4.data.META_FIELDS)
    counts = a4.data.meta(gene_file, "myoblast", silent=True)
    pd.testing.assert_frame_equal(
        counts, a4.data.index(gene_file, [ids.index(g) for g in hits.index], silent=True)
    )
    gse = series_ids[0]
    cols = a4.data.series(gene_file, gse, silent=True).columns.tolist()
    assert cols == [g for g, s in zip(ids, series_ids, strict=True) if gse in s.split(",")]


def test_data_differences(gene_file):
    with pytest.warns(MissingIdsWarning, match="GSM0"):
        empty = a4.data.samples(gene_file, ["GSM0"], silent=True)
    assert empty.shape == (4500, 0)  # archs4py returns None
    with pytest.raises(IndexError):
        a4.data.index(gene_file, [10_000], silent=True)
    with pytest.raises(ValueError, match="cannot draw"):
        a4.data.rand(gene_file, 10_000, silent=True)


# -- utils -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def frame(gene_file):
    return a4.data.index(gene_file, list(range(0, 400, 7)), silent=True)


@pytest.mark.parametrize("method", ["quantile", "log_quantile", "cpm"])
def test_normalize_equals_archs4py(frame, method):
    frame = frame.loc[:, frame.sum() > 0]  # archs4py gives NaN for empty libraries
    pd.testing.assert_frame_equal(
        a4.normalize(frame, method), archs4py.utils.normalize(frame, method), rtol=1e-5
    )


def test_normalize_tmm_and_empty_library(frame):
    frame = frame.loc[:, frame.sum() > 0]
    out = a4.normalize(frame, "tmm")
    assert out.shape == frame.shape and np.isfinite(out.values).all()
    assert out.dtypes.unique().tolist() == [np.float32]
    empty = frame.copy()
    empty.iloc[:, 0] = 0
    with pytest.raises(ValueError):
        a4.normalize(empty, "cpm")


def test_gene_utils_equal_archs4py(frame):
    pd.testing.assert_frame_equal(
        a4.utils.aggregate_duplicate_genes(frame),
        archs4py.utils.aggregate_duplicate_genes(frame),
        check_dtype=False,  # archs4x sums in uint64: no overflow
    )
    for aggregate in (True, False):
        pd.testing.assert_frame_equal(
            a4.utils.filter_genes(frame, readThreshold=10, sampleThreshold=0.1,
                                  aggregate=aggregate),
            archs4py.utils.filter_genes(frame, readThreshold=10, sampleThreshold=0.1,
                                        aggregate=aggregate),
            check_dtype=False,
        )  # fmt: skip


def test_ls_prints(gene_file, capsys):
    a4.ls(gene_file)
    out = capsys.readouterr().out
    assert "expression" in out and "geo_accession" in out


def test_versions_equal_archs4py():
    assert a4.versions() == list(archs4py.versions())
