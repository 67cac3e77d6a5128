"""The selection model: any chain of selections reads exactly what it selects, and only that.

A random chain of 1-5 selections (xarray ``isel``/``sel`` with ints, slices of any step,
integer arrays in any order with repeats and boolean masks, ``sortby``,
``where(..., drop=True)``, and the ``ds.archs4`` queries, on both dimensions) is applied
to a Dataset, while the test tracks the file positions it must end with, in plain numpy.
Then the counts must equal h5py's values at those positions, the chunks read must be
exactly the chunks needed (each once), and every metadata field must be that of the
samples held.  The same chains run on a Zarr copy of the file.
"""

from __future__ import annotations

import random
import re

import h5py
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import archs4x
from archs4x.datasets import write_archs4_file

from ._hypothesis import examples
from ._laziness import raise_if_dask_computes

N_GENES, N_SAMPLES = 4100, 150  # 3 row chunks of (2000, 1), the last one partial
TERMS = ("myoblast", "liver|kidney", r"rep[12]$", "bulk", "Î")
FIELDS = ("characteristics_ch1", "extract_protocol_ch1", "source_name_ch1", "title")


@pytest.fixture(scope="module")
def chain_file(tmp_path_factory):
    return write_archs4_file(tmp_path_factory.mktemp("chains") / "chains.h5",
                             n_genes=N_GENES, n_samples=N_SAMPLES, seed=21)  # fmt: skip


@pytest.fixture(scope="module")
def truth(chain_file):
    """Everything the file holds, read by h5py: the reference."""
    with h5py.File(chain_file, "r") as f:
        out = {name: d[()] for name, d in f["meta/samples"].items()}
        for name, values in out.items():
            if values.dtype == object:
                out[name] = np.array([v.decode() for v in values], dtype=object)
        out["symbol"] = np.array([v.decode() for v in f["meta/genes/symbol"][()]], dtype=object)
        out["gene"] = np.array([v.decode() for v in f["meta/genes/ensembl_gene"][()]],
                               dtype=object)  # fmt: skip
        out["counts"] = f["data/expression"][:]
    return out


@pytest.fixture(scope="module")
def zarr_copy(chain_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("chains") / "chains.zarr"
    archs4x.to_zarr(archs4x.open_dataset(chain_file), str(out))
    return out


class Chain:
    """A Dataset and the file positions (rows, cols) the test expects it to hold."""

    def __init__(self, ds, truth):
        self.ds, self.t = ds, truth
        self.rows = np.arange(ds.sizes["gene"])
        self.cols = np.arange(ds.sizes["sample"])
        self.floats = False  # where() turns counts into floats

    # -- sample selections ------------------------------------------------------------
    def isel_slice(self, rng):
        n = self.cols.size
        step = int(rng.choice([-3, -2, -1, 1, 2, 3]))
        a, b = sorted(rng.integers(-n - 2, n + 3, 2).tolist())
        key = slice(a, b, step) if step > 0 else slice(b, a, step)
        self.ds, self.cols = self.ds.isel(sample=key), self.cols[key]

    def isel_array(self, rng):
        if not self.cols.size:
            return
        key = rng.integers(-self.cols.size, self.cols.size, rng.integers(0, 12))
        self.ds, self.cols = self.ds.isel(sample=key), self.cols[key]

    def isel_mask(self, rng):
        key = rng.random(self.cols.size) < rng.random()
        self.ds, self.cols = self.ds.isel(sample=key), self.cols[key]

    def sel_labels(self, rng):
        if not self.cols.size or not self.ds.indexes["sample"].is_unique:
            return  # label selection needs unique labels
        pick = rng.integers(0, self.cols.size, rng.integers(1, 8))
        labels = self.ds.sample.values[pick]
        want = self.t["geo_accession"][self.cols[pick]]
        assert list(labels) == list(want)
        self.ds, self.cols = self.ds.sel(sample=list(labels)), self.cols[pick]

    def sortby(self, rng):
        field = str(rng.choice(["singlecellprobability", "title"]))
        order = np.lexsort((self.t[field][self.cols],))
        self.ds, self.cols = self.ds.sortby(field), self.cols[order]

    def where_drop(self, rng):
        cut = float(rng.random())
        keep = self.t["singlecellprobability"][self.cols] < cut
        self.ds = self.ds.where(self.ds.singlecellprobability < cut, drop=True)
        self.cols, self.floats = self.cols[keep], True

    def search(self, rng):
        term = str(rng.choice(TERMS))
        rx = re.compile(term, re.IGNORECASE)
        hit = [any(rx.search(self.t[f][c]) for f in FIELDS) for c in self.cols]
        self.ds = self.ds.archs4.search(term)
        self.cols = self.cols[np.asarray(hit, dtype=bool)]

    def rand(self, rng):
        n, seed = int(rng.integers(0, self.cols.size + 1)), int(rng.integers(0, 100))
        picked = np.sort(np.asarray(random.Random(seed).sample(range(self.cols.size), n),
                                    dtype=np.int64))  # fmt: skip
        self.ds, self.cols = self.ds.archs4.rand(n, seed=seed), self.cols[picked]

    def remove_single_cell(self, rng):
        keep = self.t["singlecellprobability"][self.cols] < 0.5
        self.ds, self.cols = self.ds.archs4.remove_single_cell(), self.cols[keep]

    def samples(self, rng):
        if not self.cols.size:
            return
        pick = rng.integers(0, self.cols.size, rng.integers(1, 6))
        labels = self.t["geo_accession"][self.cols]
        ids = pd.unique(labels[pick])  # each id once, in the order given
        first = [int(np.flatnonzero(labels == i)[0]) for i in ids]  # its first occurrence
        self.ds, self.cols = self.ds.archs4.samples(list(ids)), self.cols[first]

    # -- gene selections ----------------------------------------------------------------
    def isel_genes(self, rng):
        if not self.rows.size:
            return
        if rng.random() < 0.5:
            key = rng.integers(-self.rows.size, self.rows.size, rng.integers(0, 9))
        else:
            a = int(rng.integers(0, self.rows.size))
            key = slice(a, a + int(rng.integers(0, 3000)), int(rng.choice([1, 2, 7])))
        self.ds, self.rows = self.ds.isel(gene=key), self.rows[key]

    def sel_genes(self, rng):
        if not self.rows.size or not self.ds.indexes["gene"].is_unique:
            return
        pick = rng.integers(0, self.rows.size, rng.integers(1, 5))
        ids = self.t["gene"][self.rows[pick]]
        self.ds, self.rows = self.ds.sel(gene=list(ids)), self.rows[pick]

    def genes(self, rng):
        if not self.rows.size:
            return
        pick = rng.integers(0, self.rows.size, rng.integers(1, 4))
        symbols = list(pd.unique(self.t["symbol"][self.rows[pick]]))
        code = pd.Index(symbols).get_indexer(self.t["symbol"][self.rows])
        keep = np.flatnonzero(code >= 0)
        keep = keep[np.argsort(code[keep], kind="stable")]
        self.ds, self.rows = self.ds.archs4.genes(symbols), self.rows[keep]


OPS = [name for name in vars(Chain) if not name.startswith("_")]


def run_chain(ds, truth, steps, reader):
    chain = Chain(ds, truth)
    with raise_if_dask_computes():  # selections never compute
        for op, seed in steps:
            getattr(chain, op)(np.random.default_rng(seed))
    before = reader.stats.chunks
    values = chain.ds.counts.values
    read = reader.stats.chunks - before
    want = truth["counts"][np.ix_(chain.rows, chain.cols)]
    np.testing.assert_array_equal(values, want.astype(values.dtype) if chain.floats else want)
    cr, cc = reader.chunks
    needed = np.unique(chain.rows // cr).size * np.unique(chain.cols // cc).size
    if not (chain.rows.size and chain.cols.size):
        needed = 0
    assert read == needed, f"read {read} chunks, needed {needed}: {steps}"
    return chain


steps_strategy = st.lists(st.tuples(st.sampled_from(OPS), st.integers(0, 2**16)),
                          min_size=1, max_size=5)  # fmt: skip


@settings(max_examples=examples(40), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
@given(steps=steps_strategy)
def test_any_chain_reads_exactly_what_it_selects(chain_file, truth, steps):
    ds = archs4x.open_dataset(chain_file)
    reader = archs4x.storage.open_source(chain_file).counts_reader()
    chain = run_chain(ds, truth, steps, reader)
    # metadata follows the samples held, through every step
    got = chain.ds.archs4.meta(["title", "series_id"])
    assert got["title"].tolist() == truth["title"][chain.cols].tolist()
    assert got["series_id"].tolist() == truth["series_id"][chain.cols].tolist()
    assert chain.ds.title.values.tolist() == truth["title"][chain.cols].tolist()


@settings(max_examples=examples(20), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
@given(steps=steps_strategy)
def test_any_chain_on_a_zarr_copy(zarr_copy, truth, steps):
    z = archs4x.open_zarr(zarr_copy)
    reader = z.counts.data.source.counts_reader()
    chain = run_chain(z, truth, steps, reader)
    assert chain.ds.title.values.tolist() == truth["title"][chain.cols].tolist()


def test_the_issue_table(chain_file, truth):
    """The chains measured in the issue, on this file: chunks read == chunks needed."""
    ds = archs4x.open_dataset(chain_file)
    reader = archs4x.storage.open_source(chain_file).counts_reader()
    per_sample = -(-N_GENES // 2000)
    cases = [
        (lambda d: d.isel(sample=np.arange(50) * 3), 50 * per_sample),
        (lambda d: d.archs4.remove_single_cell().archs4.rand(20), 20 * per_sample),
        (lambda d: d.isel(sample=slice(0, 100)).isel(sample=[3, 4]), 2 * per_sample),
        (lambda d: d.sortby("singlecellprobability").isel(sample=slice(0, 3)), 3 * per_sample),
        (lambda d: d.archs4.search("bulk").archs4.genes(["ACTB"]), None),
    ]
    for select, needed in cases:
        out = select(ds)
        before = reader.stats.chunks
        out.counts.values  # noqa: B018
        if needed is None:  # one gene: one row chunk per sample
            needed = out.sizes["sample"]
        assert reader.stats.chunks - before == needed
