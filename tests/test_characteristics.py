"""characteristics_ch1 parsed into fields: the parser, the example data's planted truth,
the on-disk cache, characteristics() and with_characteristics()."""

from __future__ import annotations

import math
import os
import shutil

import h5py
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import archs4x
import archs4x.accessor  # registers ds.archs4
from archs4x.datasets.synthetic import (
    TOUR_SAMPLES,
    TOUR_SERIES,
    planted_characteristics,
    write_archs4_file,
)
from archs4x.query import charcache
from archs4x.query.characteristics import (
    SYNONYMS,
    canonical_key,
    key_form,
    parse_age,
    parse_characteristics,
    split_pairs,
)
from archs4x.query.charcache import ParsedCharacteristics, parsed_characteristics
from archs4x.query.metacache import MetaCache

from ._hypothesis import examples
from ._laziness import raise_if_dask_computes

# -- the parser: real-world-shaped strings ------------------------------------------------
PARSER_TABLE = [
    # commas inside values
    ("cell line: HepG2,treatment: TNF-α, 10 ng/ml, 6 h",
     {"cell_line": "HepG2", "treatment": "TNF-α, 10 ng/ml, 6 h"}),
    ("disease state: breast cancer, ER-positive,tissue: breast",
     {"disease": "breast cancer, ER-positive", "tissue": "breast"}),
    # colons inside values
    ("genotype: Cre:ERT2,time: ZT 12:00,protocol: ratio 1:10",
     {"genotype": "Cre:ERT2", "time": "ZT 12:00", "protocol": "ratio 1:10"}),
    ("genotype/variation: shRNA: scrambled", {"genotype": "shRNA: scrambled"}),
    ("source: http://example.org/x,tissue: lung",
     {"source": "http://example.org/x", "tissue": "lung"}),
    # empty pairs, trailing and leading commas, spaces after the separator
    ("tissue: liver,,cell type: hepatocyte,", {"tissue": "liver", "cell_type": "hepatocyte"}),
    (",tissue: liver, cell type: hepatocyte", {"tissue": "liver", "cell_type": "hepatocyte"}),
    ("", {}),
    (",,", {}),
    # duplicated keys (also through different spellings)
    ("treatment: DMSO,treatment: 24 h", {"treatment": "DMSO; 24 h"}),
    ("tissue: liver,organ: liver", {"tissue": "liver; liver"}),
    # missing values
    ("sex: NA,age: unknown,tissue:", {"sex": None, "age": None, "tissue": None}),
    ("Gender: not available,Age: N/A", {"sex": None, "age": None}),
    # numeric ages with units (in years)
    ("age: 34 years", {"age": 34.0}),
    ("Age (years): 54", {"age": 54.0}),
    ("age: 6 months", {"age": 0.5}),
    ("age (weeks): 8", {"age": 8 * 7 / 365.25}),
    ("age: P7", {"age": 7 / 365.25}),
    ("age: 40-50 years", {"age": None}),
    ("age: E14.5", {"age": None}),
    # Unicode: keys, values, NFKC forms
    ("âge: 34,tissu: foie", {"âge": "34", "tissu": "foie"}),
    ("cell type: β cell,treatment: 5 μM", {"cell_type": "β cell", "treatment": "5 μM"}),
    ("ＴＩＳＳＵＥ: liver", {"tissue": "liver"}),
    # text before any key is kept
    ("HepG2 cells, passage 4,sex: F", {"unlabelled": "HepG2 cells, passage 4", "sex": "F"}),
    # key spellings
    ("Cell Types: T cell,cell_line: Jurkat,celltype: CD4", {"cell_type": "T cell; CD4",
                                                           "cell_line": "Jurkat"}),
]  # fmt: skip


@pytest.mark.parametrize(("text", "want"), PARSER_TABLE)
def test_parser_table(text, want):
    got = parse_characteristics(text)
    assert got.keys() == want.keys()
    for key, value in want.items():
        if isinstance(value, float):
            assert got[key] == pytest.approx(value, rel=1e-12)
        else:
            assert got[key] == value


def test_pairs_keep_the_raw_text():
    text = "treatment: TNF-α, 10 ng/ml,time: 12:00"
    pairs = split_pairs(text)
    assert ",".join(f"{k}: {v}" for k, v in pairs) == text


@pytest.mark.parametrize(
    ("spellings", "canonical"),
    [
        (("tissue", "Tissue", "organ", "tissue type", "tissue_type", "Tissues", "ORGAN"), "tissue"),
        (("cell type", "Cell type", "cell_type", "celltype", "cell types", "Cell-Type"), "cell_type"),
        (("cell line", "cell_line", "Cell Line", "cell-line", "cellline"), "cell_line"),
        (("sex", "Sex", "gender", "Gender"), "sex"),
        (("age", "Age", "age (years)", "age(yrs)", "age [years]", "age_years"), "age"),
    ],
)  # fmt: skip
def test_key_spellings_are_one_key(spellings, canonical):
    assert {canonical_key(s)[0] for s in spellings} == {canonical}


@given(
    canonical=st.sampled_from(sorted(SYNONYMS)),
    data=st.data(),
)
@settings(max_examples=examples(100), deadline=None)
def test_key_normalisation_ignores_case_separators_and_plural(canonical, data):
    spelling = data.draw(st.sampled_from(SYNONYMS[canonical]))
    words = [w for w in spelling.replace("/", " ").split(" ") if w]
    seps = data.draw(st.lists(st.sampled_from(["", " ", "_", "-", "  ", "."]),
                              min_size=len(words), max_size=len(words)))  # fmt: skip
    mixed = "".join(
        "".join(c.upper() if data.draw(st.booleans()) else c for c in w) + s
        for w, s in zip(words, seps, strict=True)
    )
    if data.draw(st.booleans()) and not mixed.rstrip(" _-.").lower().endswith("s"):
        mixed = mixed.rstrip(" _-.") + "s"
    assert key_form(mixed) == key_form(spelling)
    assert canonical_key(mixed)[0] == canonical


def test_age_parsing():
    assert parse_age("34") == 34.0
    assert parse_age("34 yrs") == 34.0
    assert parse_age("34y") == 34.0
    assert parse_age("18 months") == 1.5
    assert parse_age("2 wk") == pytest.approx(14 / 365.25)
    assert parse_age("12 days") == pytest.approx(12 / 365.25)
    assert parse_age("12", "days") == pytest.approx(12 / 365.25)
    assert parse_age("adult") is None


# -- the example data: the parser recovers the planted truth --------------------------------
def _field_values(column, positions=None):
    if isinstance(column, np.ndarray):
        values = column if positions is None else column[positions]
        return [None if math.isnan(v) else float(v) for v in values]
    return column.take(positions).decode().to_pylist()


def _check_truth(ds, truth):
    parsed, positions = parsed_characteristics(ds)
    gsm = ds.sample.values.tolist()
    keys = sorted({k for t in truth.values() for k in t})
    assert sorted(parsed.keys) == keys
    for key in keys:
        got = _field_values(parsed.field(key), positions)
        want = [truth[g].get(key) for g in gsm]
        if key == "age":  # None where there is no age (pytest.approx refuses None)
            assert [g is None for g in got] == [w is None for w in want], key
            pairs = [(g, w) for g, w in zip(got, want, strict=True) if w is not None]
            assert all(math.isclose(g, w, rel_tol=1e-12) for g, w in pairs), key
        else:
            assert got == want, key


def test_example_truth_is_recovered(gene_file):
    # repair_text=True: the ~3% double-encoded samples are read as written
    ds = archs4x.open_dataset(gene_file, repair_text=True)
    truth = planted_characteristics(tour=True)
    assert list(truth) == ds.sample.values.tolist()
    assert {len(t) for t in truth.values()} == {1, 2, 3, 4, 5, 6}
    _check_truth(ds, truth)


def test_mouse_truth_is_recovered(tmp_path):
    p = write_archs4_file(tmp_path / "m.h5", n_genes=200, n_samples=150, species="mouse",
                          seed=4)  # fmt: skip
    ds = archs4x.open_dataset(p, repair_text=True)
    truth = planted_characteristics(n_genes=200, n_samples=150, species="mouse", seed=4)
    _check_truth(ds, truth)
    ages = [t["age"] for t in truth.values() if t.get("age") is not None]
    assert ages and max(ages) < 1  # mouse ages: weeks, in years


def test_example_text_is_messy(gene_file):
    with h5py.File(gene_file) as f:
        texts = [t.decode() for t in f["meta/samples/characteristics_ch1"][()]]
    joined = "\n".join(texts)
    for variant in ("celltype:", "organ:", "gender:", "age (years):", "Cell type:", ",,"):
        assert variant in joined, variant
    assert any(t.endswith(",") for t in texts)
    truth = planted_characteristics(tour=True)
    assert any(v is None for t in truth.values() for v in t.values())  # missing values
    assert any(isinstance(v, str) and "," in v for t in truth.values() for v in t.values())
    assert any(isinstance(v, str) and ":" in v for t in truth.values() for v in t.values())


def test_tissue_agrees_with_the_counts(gene_file):
    """Samples said to be liver express the liver marker (ALB) far above the others."""
    ds = archs4x.open_dataset(gene_file).archs4.with_characteristics(["tissue"])
    with h5py.File(gene_file) as f:
        symbols = [s.decode() for s in f["meta/genes/symbol"][()]]
        alb = f["data/expression"][symbols.index("ALB"), :].astype(float)
        lib = f["data/expression"][()].sum(axis=0).astype(float)
    cpm = alb / lib * 1e6
    tissue = np.asarray(ds.tissue.values, dtype=object)
    liver = cpm[tissue == "liver"]
    other = cpm[(tissue != "liver") & (tissue != None)]  # noqa: E711
    assert liver.size > 5 and other.size > 50
    assert np.median(liver) > 10 * np.median(other)


def test_example_holds_the_readme_ids(gene_file):
    ds = archs4x.open_dataset(gene_file)
    sel = ds.archs4.samples(list(TOUR_SAMPLES), missing="raise")
    assert sel.sample.values.tolist() == list(TOUR_SAMPLES)
    gse = ds.archs4.series(TOUR_SERIES, missing="raise")
    assert gse.sizes["sample"] == 12
    assert (gse.singlecellprobability.values > 0.5).all()
    with h5py.File(gene_file) as f:
        lib = f["data/expression"][()].sum(axis=0)
    assert lib.min() > 0  # no empty library in the example: CPM and TMM compute


def test_empty_libraries_are_opt_in(tmp_path):
    kw = dict(n_genes=300, n_samples=400, seed=2)
    plain = write_archs4_file(tmp_path / "a.h5", **kw)
    empty = write_archs4_file(tmp_path / "b.h5", empty_libraries=True, **kw)
    with h5py.File(plain) as f, h5py.File(empty) as g:
        a, b = f["data/expression"][()], g["data/expression"][()]
    zero = np.flatnonzero(b.sum(axis=0) == 0)
    assert zero.size > 0 and (a.sum(axis=0) > 0).all()
    same = np.setdiff1d(np.arange(a.shape[1]), zero)
    np.testing.assert_array_equal(a[:, same], b[:, same])  # only those samples differ


# -- characteristics() ---------------------------------------------------------------------
def test_characteristics_counts_match_the_truth(gene_file):
    ds = archs4x.open_dataset(gene_file, repair_text=True)
    truth = planted_characteristics(tour=True)
    for sel in (ds, ds.isel(sample=np.arange(0, 400, 3)), ds.archs4.search("liver")):
        rows = [truth[g] for g in sel.sample.values]
        table = sel.archs4.characteristics()
        want = pd.Series([k for t in rows for k in t]).value_counts()
        assert table["samples"].to_dict() == want.to_dict()
        missing = pd.Series([k for t in rows for k, v in t.items() if v is None])
        assert table["missing"].to_dict() == {
            k: int(missing.value_counts().get(k, 0)) for k in table.index
        }
        assert table["samples"].is_monotonic_decreasing
    top = ds.archs4.characteristics(top=2)
    assert len(top) == 2 and top.index[0] == "tissue"
    spelt = top.loc["tissue", "spellings"]
    assert "organ" in spelt and "tissue" in spelt


def test_characteristics_is_cached_on_disk(small_file, monkeypatch):
    ds = archs4x.open_dataset(small_file)
    cache = MetaCache(small_file)
    stem = charcache._stem(False)
    for name in ("table", "codes"):
        (cache.directory() / f"{stem}.{name}.arrow").unlink(missing_ok=True)
    charcache._parsed.clear()
    charcache._fields.clear()
    first = ds.archs4.characteristics()
    files = sorted(p.name for p in cache.directory().glob("characteristics.*.arrow"))
    assert files == [f"{stem}.codes.arrow", f"{stem}.table.arrow"]
    cached = cache.cached_fields()  # the parse is not mistaken for a metadata column
    assert "characteristics_ch1" in cached
    assert not any(c.startswith("characteristics.") for c in cached)

    def no_parse(*args, **kwargs):
        raise AssertionError("parsed again")

    monkeypatch.setattr(ParsedCharacteristics, "parse", no_parse)
    charcache._parsed.clear()  # a new process: memory empty, disk cache present
    pd.testing.assert_frame_equal(archs4x.open_dataset(small_file).archs4.characteristics(),
                                  first)  # fmt: skip


def test_changed_file_is_parsed_again(tmp_path):
    p = write_archs4_file(tmp_path / "x.h5", n_genes=100, n_samples=40, seed=1)
    before = archs4x.open_dataset(p).archs4.characteristics()
    q = write_archs4_file(tmp_path / "y.h5", n_genes=100, n_samples=40, seed=9)
    shutil.copyfile(q, p)
    os.utime(p, (1, 1))
    after = archs4x.open_dataset(p).archs4.characteristics()
    reference = archs4x.open_dataset(q).archs4.characteristics()
    pd.testing.assert_frame_equal(after, reference)
    assert not before.equals(after)


def test_characteristics_of_an_in_memory_dataset(gene_file):
    ds = archs4x.open_dataset(gene_file).isel(sample=slice(0, 50))
    relabelled = ds.assign_coords(sample=[f"S{i}" for i in range(50)])
    pd.testing.assert_frame_equal(relabelled.archs4.characteristics(),
                                  ds.archs4.characteristics())  # fmt: skip


def test_parse_of_nulls_and_empty_column():
    parsed = ParsedCharacteristics.parse(pa.array([None, None], pa.large_string()))
    assert parsed.keys == [] and len(parsed) == 2
    assert parsed.summary().empty
    empty = ParsedCharacteristics.parse(pa.array([], pa.large_string()))
    assert len(empty) == 0 and empty.summary().empty


def test_no_characteristics_field(gene_file):
    ds = archs4x.open_dataset(gene_file, drop_variables=["characteristics_ch1"])
    with pytest.raises(KeyError, match="characteristics_ch1"):
        ds.archs4.characteristics()


# -- with_characteristics() ---------------------------------------------------------------------
def test_with_characteristics_is_lazy_and_right_through_selections(gene_file, monkeypatch):
    ds = archs4x.open_dataset(gene_file, repair_text=True)
    truth = planted_characteristics(tour=True)
    calls = []
    real = charcache.file_characteristic

    def counting(*args):
        calls.append(args)
        return real(*args)

    from archs4x.query import charfields

    monkeypatch.setattr(charfields, "file_characteristic", counting)
    with raise_if_dask_computes():
        ds2 = ds.archs4.with_characteristics(["Tissue", "cell types", "age"])
        sub = ds2.isel(sample=[390, 5, 388, 17]).sortby("singlecellprobability")
        sub = sub.archs4.search("cell").isel(sample=slice(None, None, -1))
    assert calls == []  # nothing read until the values are used
    gsm = sub.sample.values.tolist()
    assert sub.tissue.values.tolist() == [truth[g].get("tissue") for g in gsm]
    assert sub.cell_type.values.tolist() == [truth[g].get("cell_type") for g in gsm]
    ages = [truth[g].get("age") for g in gsm]
    assert sub.age.values.tolist() == pytest.approx([np.nan if a is None else a for a in ages],
                                                    nan_ok=True)  # fmt: skip
    assert calls


def test_with_characteristics_default_keys_and_tools(gene_file):
    ds = archs4x.open_dataset(gene_file)
    ds2 = ds.archs4.with_characteristics()
    table = ds.archs4.characteristics()
    assert set(table.index[table["samples"] >= 4]) <= set(ds2.coords)
    meta = ds2.archs4.meta(["tissue", "cell_type"])
    assert meta.shape == (400, 2)
    counts = ds2.counts.isel(gene=0).groupby("tissue").sum()  # xarray groupby on the key
    liver = ds2.tissue.values == "liver"
    assert int(counts.sel(tissue="liver")) == int(ds.counts.isel(gene=0).values[liver].sum())
    assert ds2.archs4.filter("tissue == 'liver'").sizes["sample"] == int(liver.sum())
    assert ds2.archs4.facets("tissue").equals(ds.archs4.facets("tissue"))


def test_with_characteristics_unknown_key(gene_file):
    ds = archs4x.open_dataset(gene_file)
    with pytest.raises(KeyError, match="keys found: .*tissue"):
        ds.archs4.with_characteristics(["no such key"])


# -- the column parse is exactly the one-text parse ------------------------------------------
_KEYS = ["tissue", "Tissue", "organ", "cell type", "celltype", "Cell Types", "gender", "age",
         "age (years)", "Age (weeks)", "treatment", "cell cycle phase", "Cell Cycle Phase",
         "cellcyclephase", "âge", "time", "x" * 61]  # fmt: skip
_VALUES = ["liver", "T cell", "NA", "unknown", "", " ", "34", "34 yrs", "8 weeks", "P7",
           "40-50", "TNF-α, 10 ng/ml", "Cre:ERT2", "ZT 12:00", "a:b, c: d", "5 μM",
           "ratio 1:10", " padded "]  # fmt: skip
_pieces = st.one_of(
    st.builds(lambda k, v: f"{k}: {v}", st.sampled_from(_KEYS), st.sampled_from(_VALUES)),
    st.builds(lambda k: f"{k}:", st.sampled_from(_KEYS)),
    st.sampled_from(["", " ", "HepG2 cells", " passage 4", "10 ng/ml", "Cre:ERT2"]),
    st.text(alphabet=st.sampled_from("ab :,é\t"), max_size=8),
)
_texts = st.one_of(st.none(), st.lists(_pieces, max_size=7).map(",".join))


def _by_form(d):
    return {key_form(k): v for k, v in d.items()}


@given(st.lists(_texts, min_size=0, max_size=40))
@settings(max_examples=examples(150), deadline=None)
def test_column_parse_equals_the_one_text_parse(texts):
    parsed = ParsedCharacteristics.parse(pa.array(texts, pa.large_string()))
    got: list[dict] = [{} for _ in texts]
    for key in parsed.keys:
        column = parsed.field(key)
        values = _field_values(column)
        for i, v in enumerate(values):
            got[i][key] = v
    for i, text in enumerate(texts):
        want = _by_form(parse_characteristics(text))
        have = {key_form(k): v for k, v in got[i].items()}
        # a key the text does not give is missing in the column; a key it gives as
        # missing is missing too: compare the values of the keys the text gives
        for form, value in want.items():
            if isinstance(value, float):
                assert have[form] == pytest.approx(value, rel=1e-12), (text, form)
            else:
                assert have[form] == value, (text, form)
        extra = {f: v for f, v in have.items() if f not in want}
        assert all(v is None for v in extra.values()), (text, extra)
