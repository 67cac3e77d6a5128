"""Queries on archs4x Datasets (archs4x.query and the ds.archs4 accessor)."""

from __future__ import annotations

import random
import re
import warnings

import dask.array
import h5py
import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import archs4x
import archs4x.accessor  # registers ds.archs4
from archs4x import query
from archs4x.query import DEFAULT_FIELDS, MissingIdsWarning

from ._hypothesis import examples
from ._laziness import raise_if_dask_computes
from ._reads import get_reader


@pytest.fixture(scope="module")
def ds(gene_file):
    return archs4x.open_dataset(gene_file)


@pytest.fixture(scope="module")
def raw(gene_file):
    """Every sample field of the example, decoded by h5py: the reference."""
    with h5py.File(gene_file, "r") as f:
        out = {}
        for name, d in f["meta/samples"].items():
            v = d[()]
            out[name] = [x.decode() for x in v] if v.dtype == object else np.asarray(v)
    return out


def reference_search(raw, term, fields=DEFAULT_FIELDS, flags=re.IGNORECASE):
    rx = re.compile(term, flags)
    hit = np.zeros(len(raw["geo_accession"]), bool)
    for f in fields:
        hit |= [rx.search(s) is not None for s in raw[f]]
    return np.flatnonzero(hit)


# -- search ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "term", ["myoblast", "liver|kidney", r"rep[12]$", "μM", "(?<=tissue: )brain"]
)
def test_search_matches_python_re(ds, raw, term):
    got = ds.archs4.search(term)
    want = reference_search(raw, term)
    assert want.size > 0
    assert got.sample.values.tolist() == [raw["geo_accession"][i] for i in want]


def test_search_options(ds, raw):
    assert ds.archs4.search("MYOBLAST", case=True).sizes["sample"] == 0
    n = ds.archs4.search("myoblast", case=True).sizes["sample"]
    assert n == reference_search(raw, "myoblast", flags=0).size > 0
    # literal text: metacharacters are plain characters
    assert ds.archs4.search("bulk.rep", fields="title").sizes["sample"] > 0
    assert ds.archs4.search("bulk.rep", fields="title", regex=False).sizes["sample"] == 0
    lit = ds.archs4.search("_BULK_rep", fields="title", regex=False)
    assert lit.sizes["sample"] == sum("_bulk_" in s for s in raw["title"]) > 0
    # whitespace removed from both sides
    a = ds.archs4.search("skeletalmuscle", ignore_whitespace=True)
    b = ds.archs4.search("skeletal muscle")
    assert a.sizes["sample"] == b.sizes["sample"] > 0
    assert ds.archs4.search("skeletal   muscle myo", ignore_whitespace=True).sizes["sample"] > 0
    # remove_sc
    sc = ds.archs4.search("myoblast", remove_sc=True)
    assert bool((sc.singlecellprobability < 0.5).all())
    assert sc.sizes["sample"] < ds.archs4.search("myoblast").sizes["sample"]


def test_search_errors(ds):
    with pytest.raises(ValueError, match=r"invalid regular expression 'muscle \(.*regex=False"):
        ds.archs4.search("muscle (")
    with pytest.raises(KeyError, match="available: geo_accession"):
        ds.archs4.search("x", fields=["title", "no_such_field"])
    with pytest.raises(TypeError):
        ds.archs4.search(5)


def test_no_match_gives_empty_dataset_with_schema(ds):
    empty = ds.archs4.search("zzz no such thing")
    assert empty.sizes["sample"] == 0
    assert set(empty.variables) == set(ds.variables)
    assert empty.counts.dtype == np.uint32 and empty.counts.shape == (ds.sizes["gene"], 0)
    assert empty.counts.values.shape == (ds.sizes["gene"], 0)
    assert empty.archs4.meta().shape == (0, len(ds.archs4.meta().columns))


# Unicode on purpose: non-ASCII digits and letters, letters whose case folding differs
# between engines (long s, Kelvin sign, dotless i, final sigma), Unicode spaces, newlines.
_ALPHABET = "abAB .(-\u00e9\u017f\u212a\u0131\u03a3\u03c2\u0663\u00a0\u2003\n"
_PIECES = ["a", "B", ".", r"\.", "b+", "[ab]", "^a", "b$", " ", "(a|b)", r"\d", r"\w",
           r"\s", r"\b", "s", "k", "i", "σ"]  # fmt: skip


@settings(max_examples=examples(60), deadline=None)  # x4 in CI's profile
@given(
    texts=st.lists(st.text(alphabet=_ALPHABET, max_size=8), min_size=1, max_size=20),
    parts=st.lists(st.sampled_from(_PIECES), min_size=1, max_size=4),
    case=st.booleans(),
    literal=st.text(alphabet=_ALPHABET, min_size=1, max_size=3),
)
def test_match_equals_python_re(texts, parts, case, literal):
    col = pa.array(texts, pa.large_string())
    pattern = "".join(parts)
    flags = 0 if case else re.IGNORECASE
    want = [re.search(pattern, t, flags) is not None for t in texts]
    assert query.match(pattern, case=case)(col).tolist() == want
    want_lit = [re.search(re.escape(literal), t, flags) is not None for t in texts]
    assert query.match(literal, regex=False, case=case)(col).tolist() == want_lit


# -- samples / series ------------------------------------------------------------------
def test_samples_keep_order_and_report_missing(ds):
    ids = ds.sample.values[[7, 2, 300, 2]].tolist()
    with pytest.warns(MissingIdsWarning, match=r"2 sample ids not found: GSM0, GSMX"):
        got = ds.archs4.samples([ids[0], "GSM0", ids[1], "GSMX", ids[2], ids[3]])
    assert got.sample.values.tolist() == ids[:3]
    with pytest.raises(KeyError, match="GSM0"):
        ds.archs4.samples(["GSM0"], missing="raise")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert ds.archs4.samples("GSM0", missing="ignore").sizes["sample"] == 0
        assert ds.archs4.samples(ids[1]).sample.values.tolist() == [ids[1]]
    with pytest.raises(ValueError, match="missing must be"):
        ds.archs4.samples(ids, missing="drop")


def test_series_includes_multi_series_samples(ds, raw):
    multi = [s for s in raw["series_id"] if "," in s]
    assert multi
    gse = multi[0].split(",")[1]
    want = [g for g, s in zip(raw["geo_accession"], raw["series_id"], strict=True)
            if gse in s.split(",")]  # fmt: skip
    got = ds.archs4.series(gse)
    assert got.sample.values.tolist() == want
    assert any("," in s for s in got.series_id.values)
    both = ds.archs4.series([gse, multi[0].split(",")[0]])
    assert set(want) <= set(both.sample.values)
    with pytest.warns(MissingIdsWarning, match="GSE1"):
        assert ds.archs4.series("GSE1").sizes["sample"] == 0
    # a series id is not matched as a prefix of a longer one
    assert ds.archs4.series(gse[:-1], missing="ignore").sizes["sample"] == sum(
        gse[:-1] in s.split(",") for s in raw["series_id"]
    )


# -- rand / index / remove_single_cell / genes ---------------------------------------
def test_rand_uses_its_own_rng_and_archs4py_algorithm(ds, raw):
    random.seed(123)
    state = random.getstate()
    got = ds.archs4.rand(10, seed=4)
    assert random.getstate() == state  # the global RNG is untouched
    ref = random.Random(4).sample(range(ds.sizes["sample"]), 10)  # what archs4py does
    assert got.sample.values.tolist() == [raw["geo_accession"][i] for i in sorted(ref)]
    assert ds.archs4.rand(10, seed=4).identical(got)
    assert not ds.archs4.rand(10, seed=5).sample.equals(got.sample)
    bulk = np.flatnonzero(raw["singlecellprobability"] < 0.5)
    sc = ds.archs4.rand(7, seed=2, remove_sc=True)
    assert sc.sample.values.tolist() == [
        raw["geo_accession"][i] for i in sorted(random.Random(2).sample(list(bulk), 7))
    ]
    with pytest.raises(
        ValueError, match=f"cannot draw 401 samples: the Dataset has {ds.sizes['sample']}"
    ):
        ds.archs4.rand(401)
    with pytest.raises(ValueError, match="non-single-cell"):
        ds.archs4.rand(bulk.size + 1, remove_sc=True)
    with pytest.raises(TypeError):
        ds.archs4.rand(2.5)
    assert ds.archs4.rand(0).sizes["sample"] == 0


def test_index_keeps_order_and_checks_range(ds, gene_matrix):
    got = ds.archs4.index([9, 3, 5], gene_idx=[10, 0])
    np.testing.assert_array_equal(got.counts.values, gene_matrix[np.ix_([10, 0], [9, 3, 5])])
    with pytest.raises(IndexError, match=r"sample positions out of range 0\.\.399: \[400, -1\]"):
        ds.archs4.index([1, 400, -1])
    with pytest.raises(IndexError, match="gene positions"):
        ds.archs4.index([1], gene_idx=[10**6])
    mask = np.zeros(ds.sizes["sample"], bool)
    mask[[4, 8]] = True
    assert ds.archs4.index(mask).sizes["sample"] == 2


def test_remove_single_cell(ds, raw):
    for t in (0.5, 0.2):
        got = ds.archs4.remove_single_cell(t)
        want = np.flatnonzero(raw["singlecellprobability"] < t)
        assert got.sample.values.tolist() == [raw["geo_accession"][i] for i in want]
    with pytest.raises(ValueError):
        ds.archs4.remove_single_cell(2)


def test_genes_returns_every_row_of_duplicated_symbols(ds):
    symbols = ds.symbol.values
    vals, counts = np.unique(symbols, return_counts=True)
    dup = vals[counts > 1][0]
    got = ds.archs4.genes(["GAPDH", dup])
    rows = [int(np.flatnonzero(symbols == "GAPDH")[0]), *np.flatnonzero(symbols == dup).tolist()]
    assert got.gene.values.tolist() == ds.gene.values[rows].tolist()
    assert got.sizes["gene"] == 1 + counts[vals == dup][0] >= 3
    with pytest.warns(MissingIdsWarning, match="NOTAGENE"):
        ds.archs4.genes(["NOTAGENE", "ACTB"])
    with pytest.raises(KeyError):
        ds.archs4.genes("actb", missing="raise")  # symbols are case-sensitive


def test_transcript_file(transcript_file):
    t = archs4x.open_dataset(transcript_file)
    hits = t.archs4.search("liver")
    assert 0 < hits.sizes["sample"] < t.sizes["sample"]
    sel = t.archs4.genes("ACTB")
    assert sel.sizes["transcript"] == int((t.symbol == "ACTB").sum()) >= 2
    assert t.archs4.field("ensembl_id").index.name == "transcript"
    assert t.archs4.index([0], gene_idx=[1, 2]).counts.shape == (2, 1)


# -- meta / field ----------------------------------------------------------------------
def test_meta_and_field(ds, raw):
    sub = ds.isel(sample=[5, 1])
    df = sub.archs4.meta(["geo_accession", "title", "singlecellprobability", "sample"])
    assert df.index.tolist() == [raw["geo_accession"][5], raw["geo_accession"][1]]
    assert df["title"].tolist() == [raw["title"][5], raw["title"][1]]
    assert df["sample"].tolist() == [raw["sample"][5], raw["sample"][1]]
    assert df["singlecellprobability"].dtype == np.float64
    full = ds.archs4.meta()
    assert full.shape == (400, len(raw))
    assert full["series_id"].tolist() == raw["series_id"]
    assert ds.archs4.field("geo_accession").tolist() == raw["geo_accession"]
    assert ds.archs4.field("sample").tolist() == raw["sample"]  # the stored SRA field
    assert ds.archs4.field("ensembl_gene").tolist() == ds.gene.values.tolist()
    assert ds.archs4.field("biotype").index.name == "gene"
    with pytest.raises(
        KeyError, match="sample fields: geo_accession.*available gene fields: biotype, gene, symbol"
    ):
        ds.archs4.field("nope")


# -- laziness, pushdown, non-file-backed Datasets --------------------------------------
def test_selections_stay_lazy(ds, raw, gene_file, gene_matrix):
    reader = get_reader(str(gene_file))
    reader.stats.chunks = 0
    with raise_if_dask_computes():
        results = {
            "search": ds.archs4.search("myoblast", remove_sc=True),
            "samples": ds.archs4.samples(ds.sample.values[:3].tolist()),
            "series": ds.archs4.series("GSE10000"),
            "rand": ds.archs4.rand(5),
            "index": ds.archs4.index([1, 2], gene_idx=[0]),
            "remove_single_cell": ds.archs4.remove_single_cell(),
            "genes": ds.archs4.genes("ACTB"),
            "chained": ds.archs4.search("liver").archs4.search("rep1"),
        }
        meta = ds.archs4.search("liver").archs4.meta(["title"])
    # no Dask compute, and no direct read of counts either (materializing one is a read)
    assert reader.stats.chunks == 0
    # the reference: each selection restated on the h5py-decoded fields
    bulk = raw["singlecellprobability"] < 0.5
    liver, rep1 = reference_search(raw, "liver"), reference_search(raw, "rep1")
    want = {
        "search": [i for i in reference_search(raw, "myoblast") if bulk[i]],
        "samples": [0, 1, 2],
        "series": [i for i, s in enumerate(raw["series_id"]) if "GSE10000" in s.split(",")],
        "rand": sorted(random.Random(1).sample(range(400), 5)),  # archs4py's draw, seed 1
        "index": [1, 2],
        "remove_single_cell": np.flatnonzero(bulk).tolist(),
        "genes": list(range(400)),
        "chained": sorted(set(liver.tolist()) & set(rep1.tolist())),
    }
    for name, got in results.items():
        assert isinstance(got.counts.data, dask.array.Array), name  # a graph, not values
        assert got.sample.values.tolist() == [raw["geo_accession"][i] for i in want[name]], name
        assert 0 < len(want[name]) < 400 or name == "genes", name
    assert results["index"].gene.values.tolist() == [ds.gene.values[0]]
    actb = np.flatnonzero(ds.symbol.values == "ACTB")
    assert results["genes"].gene.values.tolist() == ds.gene.values[actb].tolist()
    assert meta["title"].tolist() == [raw["title"][i] for i in liver]
    # the chained search's values: the reference columns, reading only their chunks, once
    got = results["chained"].counts.values
    np.testing.assert_array_equal(got, gene_matrix[:, want["chained"]])
    assert reader.stats.chunks == len(want["chained"]) * 3  # 3 row chunks of 2,000 genes


def test_search_counts_equal_reference(ds, raw, gene_matrix):
    hits = ds.archs4.search("hepatocyte")
    want = reference_search(raw, "hepatocyte")
    np.testing.assert_array_equal(hits.counts.values, gene_matrix[:, want])


def test_queries_on_a_selection_and_in_memory(ds, raw):
    sub = ds.isel(sample=np.arange(399, -1, -3))  # reversed subset: positions are mapped
    got = sub.archs4.search("liver")
    want = [g for g, t in zip(sub.sample.values, sub.title.values, strict=True)
            if "hepatocyte" in t or "liver" in str(t)]  # fmt: skip
    ref = set(raw["geo_accession"][i] for i in reference_search(raw, "liver"))
    assert got.sample.values.tolist() == [g for g in sub.sample.values if g in ref]
    assert set(want) <= set(got.sample.values)
    loaded = sub.copy()
    loaded = loaded.assign_coords(title=("sample", [t.upper() for t in sub.title.values]))
    assert (
        loaded.archs4.search("MYOBLAST", fields="title", case=True).sizes["sample"]
        == (sub.archs4.search("myoblast", fields="title").sizes["sample"])
    )
    derived = sub.assign_coords(title=sub.title.str.upper())  # lazy, computed from the field
    assert (
        derived.archs4.search("MYOBLAST", fields="title", case=True).sizes["sample"]
        == (sub.archs4.search("myoblast", fields="title").sizes["sample"])
    )
    renamed = ds.isel(sample=[0, 1]).assign_coords(sample=["a", "b"])
    assert renamed.archs4.meta(["title"])["title"].tolist() == raw["title"][:2]


def test_repair_text_is_searched_repaired(gene_file):
    plain = archs4x.open_dataset(gene_file)
    fixed = archs4x.open_dataset(gene_file, repair_text=True)
    term = "dexamethasone, 5 μM"
    n_fixed = fixed.archs4.search(term, regex=False).sizes["sample"]
    n_plain = plain.archs4.search(term, regex=False).sizes["sample"]
    assert n_fixed > n_plain > 0
    assert plain.archs4.search("Î¼M", regex=False).sizes["sample"] == n_fixed - n_plain


def test_large_selections_still_read_from_the_cache(ds, raw, monkeypatch):
    """After a large selection, metadata is still read from the cache, by position."""
    from archs4x.backends import arrays

    pos = np.arange(400).repeat(400)  # 160,000 positions
    big = ds.isel(sample=pos)

    def no_file_reads(self, key):
        raise AssertionError("the field was read from the file, not the cache")

    monkeypatch.setattr(arrays.FieldArray, "_raw_indexing_method", no_file_reads)
    with raise_if_dask_computes():
        col = query.sample_column(big, "title")
    assert col.to_pylist()[::400] == raw["title"]
    # a coordinate the user replaced is read from its own values, not the cache
    monkeypatch.undo()
    upper = big.assign_coords(title=big.title.str.upper())
    assert query.sample_column(upper, "title").to_pylist()[::400] == [
        t.upper() for t in raw["title"]
    ]


def test_search_on_a_remote_file(gene_file, tmp_path, ds):
    """Remote fields are not cached locally: their values are read, results are the same."""
    import shutil

    from ._http import FileServer

    shutil.copy(gene_file, tmp_path / "gene.h5")
    with FileServer(tmp_path) as srv:
        remote_ds = archs4x.open_dataset(srv.url("gene.h5"))
        got = remote_ds.archs4.search("myoblast", remove_sc=True)
        assert got.sample.values.tolist() == (
            ds.archs4.search("myoblast", remove_sc=True).sample.values.tolist()
        )
        assert remote_ds.archs4.series("GSE10000").sizes["sample"] > 0
