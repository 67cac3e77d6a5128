"""ds.archs4.filter: the expression language, typed fields, laziness, errors, the CLI."""

from __future__ import annotations

import re
from types import SimpleNamespace

import h5py
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st

import archs4x
import archs4x.accessor  # registers ds.archs4
from archs4x.cli import main
from archs4x.datasets.synthetic import write_archs4_file
from archs4x.query import parse_filter
from archs4x.query.filters import And, Clause, Not, Or, tokenize

from ._hypothesis import examples
from ._laziness import raise_if_dask_computes
from ._metadata import metadata_frame
from ._reads import get_reader


@pytest.fixture(scope="module")
def ds(gene_file):
    # repaired text: the planted truth is of the text as written
    return archs4x.open_dataset(gene_file, repair_text=True)


@pytest.fixture(scope="module")
def frame(gene_file):
    """The reference: stored fields decoded by h5py, characteristics from the planted truth."""
    keys = ("tissue", "cell_type", "sex", "age", "cell_line", "treatment")
    df = metadata_frame(gene_file, keys)
    df["age"] = df["age"].astype(float)
    return df


# -- a pandas reference for the language ------------------------------------------------------
KINDS = {
    "tissue": "text", "cell_type": "text", "sex": "text", "cell_line": "text",
    "treatment": "text", "title": "text", "instrument_model": "text", "age": "number",
    "singlecellprobability": "number", "channel_count": "number",
    "submission_date": "date", "last_update_date": "date", "series_id": "multi",
}  # fmt: skip


def _ref_clause(df: pd.DataFrame, field: str, op: str, value) -> np.ndarray:
    negated = {"is not null": "is null", "!=": "==", "not in": "in"}
    if op in negated:  # a != b is not (a == b): missing values pass
        return ~_ref_clause(df, field, negated[op], value)
    kind = KINDS[field]
    s = df[field]
    if kind == "number":
        x = pd.to_numeric(s, errors="coerce").astype(float).to_numpy()
    elif kind == "date":
        x = pd.to_datetime(s, format="%b %d %Y").to_numpy()
        value = None if value is None else (
            [np.datetime64(v) for v in value] if isinstance(value, tuple) else
            np.datetime64(value))  # fmt: skip
    else:
        x = s.to_numpy(dtype=object)
    if op == "is null":
        if kind in ("number", "date"):
            return pd.isna(x)
        return np.array([v is None or not str(v).strip() for v in x])
    if kind == "multi":
        members = [[m.strip() for m in v.split(",") if m.strip()] for v in x]
        if op == "==":
            return np.array([value in m for m in members])
        if op == "in":
            return np.array([any(v in value for v in m) for m in members])
        return np.array([any(_ref_test(op, value, v) for v in m) for m in members])
    if op in ("contains", "startswith", "matches"):
        return np.array([v is not None and _ref_test(op, value, v) for v in x])
    if op == "in":
        if kind == "text":
            return np.array([v is not None and v in value for v in x])
        return np.isin(x, np.asarray(value, dtype=x.dtype))
    if kind == "text":
        ops = {"==": lambda a, b: a == b, "<": lambda a, b: a < b, "<=": lambda a, b: a <= b,
               ">": lambda a, b: a > b, ">=": lambda a, b: a >= b}  # fmt: skip
        return np.array([v is not None and ops[op](v, value) for v in x])
    with np.errstate(invalid="ignore"):
        return {"==": x == value, "<": x < value, "<=": x <= value, ">": x > value,
                ">=": x >= value}[op]  # fmt: skip


def _ref_test(op: str, term: str, text: str) -> bool:
    if op == "contains":
        return re.search(re.escape(term), text, re.IGNORECASE) is not None
    if op == "startswith":
        return re.match(re.escape(term), text, re.IGNORECASE) is not None
    return re.search(term, text, re.IGNORECASE) is not None


def _reference(df: pd.DataFrame, node) -> np.ndarray:
    if isinstance(node, Clause):
        return _ref_clause(df, node.field, node.op, node.value)
    if isinstance(node, Not):
        return ~_reference(df, node.item)
    masks = [_reference(df, item) for item in node.items]
    return np.logical_and.reduce(masks) if isinstance(node, And) else np.logical_or.reduce(masks)


# -- random expressions -----------------------------------------------------------------------
TEXT_VALUES = ["liver", "brain", "T cell", "hepatocyte", "female", "male", "Male", "HepG2", "H1",
               "DMSO", "none", "TNF-α, 10 ng/ml, 6 h", "Illumina HiSeq 2500", "", "zzz"]  # fmt: skip
TERMS = ["liv", "CELL", "rep1", "α", "ml, 6", "bulk", r"rep[12]$", r"^h.*[0-9]", r"\d{2}"]
DATES = ["2010-06-01", "2014-12-05", "2016", "2019-01", "2023-12-31"]
SERIES = ["GSE64016", "GSE10000", "GSE10007", "GSE10014", "GSE10003", "GSE1"]


def _quote(v) -> str:
    if isinstance(v, str):
        return "'" + v.replace("\\", "\\\\").replace("'", "\\'") + "'"
    return repr(v)


@st.composite
def clauses(draw):
    field = draw(st.sampled_from(sorted(KINDS)))
    kind = KINDS[field]
    ops = ["==", "!=", "in", "not in", "is null", "is not null"]
    if kind in ("number", "date", "text"):
        ops += ["<", "<=", ">", ">="]
    if kind in ("text", "multi"):
        ops += ["contains", "startswith", "matches"]
    op = draw(st.sampled_from(ops))

    def one():
        if kind == "number":
            return draw(st.sampled_from([0, 1, 0.5, 0.05, 30, 54, 9606, 18.0, 1e3]))
        if kind == "date":
            return draw(st.sampled_from(DATES))
        if kind == "multi":
            return draw(st.sampled_from(SERIES))
        return draw(st.sampled_from(TEXT_VALUES))

    if op in ("is null", "is not null"):
        return f"{field} {op}", Clause(field, op, None, 0, 0)
    if op in ("in", "not in"):
        values = tuple(draw(st.lists(st.builds(one), min_size=0, max_size=3)))
        text = f"{field} {op} [{', '.join(map(_quote, values))}]"
        return text, Clause(field, op, values, 0, 0)
    if op in ("contains", "startswith", "matches"):
        term = draw(st.sampled_from(TERMS if op == "matches" else TEXT_VALUES[:-2] + TERMS[:5]))
        return f"{field} {op} {_quote(term)}", Clause(field, op, term, 0, 0)
    value = one()
    return f"{field} {op} {_quote(value)}", Clause(field, op, value, 0, 0)


def _combine(children):
    return st.one_of(
        st.tuples(children, children).map(lambda ab: (f"({ab[0][0]}) and ({ab[1][0]})",
                                                      And((ab[0][1], ab[1][1])))),
        st.tuples(children, children).map(lambda ab: (f"({ab[0][0]}) or ({ab[1][0]})",
                                                      Or((ab[0][1], ab[1][1])))),
        children.map(lambda a: (f"not ({a[0]})", Not(a[1]))),
    )  # fmt: skip


expressions = st.recursive(clauses(), _combine, max_leaves=5)


@given(expr=expressions, subset=st.sampled_from(["all", "every third", "search"]))
@settings(max_examples=examples(150), deadline=None)
def test_filter_matches_a_pandas_reference(ds, frame, expr, subset):
    text, tree = expr
    if subset == "all":
        sel, rows = ds, np.arange(len(frame))
    elif subset == "every third":
        rows = np.arange(len(frame))[::-3]  # a reversed selection
        sel = ds.isel(sample=rows)
    else:
        sel = ds.archs4.search("cell")
        rows = np.flatnonzero(np.isin(frame["geo_accession"], sel.sample.values))
    with raise_if_dask_computes():
        got = sel.archs4.filter(text)
    want = _reference(frame.iloc[rows].reset_index(drop=True), tree)
    assert got.sample.values.tolist() == frame["geo_accession"].iloc[rows][want].tolist(), text


@pytest.mark.parametrize(
    ("expr", "n_clauses"),
    [
        ("tissue == 'liver' and singlecellprobability < 0.5 and submission_date >= '2019-01-01'", 3),
        ("not (sex == 'male' or sex is null) and age >= 30", 3),
        ("series_id in ['GSE64016', 'GSE10000'] or title matches 'rep[12]$'", 2),
        ("`cell type` == 'hepatocyte' and characteristics.tissue != 'liver'", 2),
    ],
)  # fmt: skip
def test_expressions_parse_and_run(ds, frame, expr, n_clauses):
    tree = parse_filter(expr)
    assert len(list(tree.fields())) == n_clauses
    got = ds.archs4.filter(expr)
    renamed = {"cell type": "cell_type", "characteristics.tissue": "tissue"}

    def plain(node):
        if isinstance(node, Clause):
            return Clause(renamed.get(node.field, node.field), node.op, node.value, 0, 0)
        if isinstance(node, Not):
            return Not(plain(node.item))
        return type(node)(tuple(plain(i) for i in node.items))

    want = _reference(frame, plain(tree))
    assert got.sample.values.tolist() == frame["geo_accession"][want].tolist()


def test_series_membership(ds, frame):
    multi = frame["series_id"][frame["series_id"].str.contains(",")].iloc[0]
    second = multi.split(",")[1]
    got = ds.archs4.filter(f"series_id == '{second}'")
    assert multi in got.series_id.values.tolist()
    assert got.sample.values.tolist() == ds.archs4.series(second).sample.values.tolist()


def test_dates_compare_as_dates(ds, frame):
    got = ds.archs4.filter("submission_date >= '2014-12-05' and submission_date < '2015'")
    dates = pd.to_datetime(frame["submission_date"], format="%b %d %Y")
    want = (dates >= "2014-12-05") & (dates < "2015-01-01")
    assert want.sum() > 0
    assert got.sample.values.tolist() == frame["geo_accession"][want].tolist()
    # the ARCHS4 form works as a literal too
    same = ds.archs4.filter("submission_date >= 'Dec 05 2014' and submission_date < '2015'")
    assert same.sample.values.tolist() == got.sample.values.tolist()


def test_numbers_in_text_and_read_counts(tmp_path):
    for version, name in (("2.2", "readsaligned"), ("2.6", "alignedreads")):
        p = write_archs4_file(tmp_path / f"v{version}.h5", n_genes=50, n_samples=60,
                              version=version, seed=5)  # fmt: skip
        with h5py.File(p) as f:
            reads = f[f"meta/samples/{name}"][()].astype(float)
        d = archs4x.open_dataset(p)
        cut = float(np.median(reads))
        for field in ("readsaligned", "alignedreads"):  # either name, whatever the release
            got = d.archs4.filter(f"{field} > {cut} and channel_count == 1")
            assert got.sizes["sample"] == int((reads > cut).sum()) > 0
    with pytest.raises(TypeError, match="readsaligned is a number field"):
        d.archs4.filter("readsaligned > 'abc'")


def test_filter_chains_and_stays_lazy(gene_file, ds):
    base = archs4x.open_dataset(gene_file)
    with raise_if_dask_computes():
        chained = base.archs4.search("hepatocyte|neuron").archs4.filter("tissue == 'liver'")
        chained = chained.archs4.filter("singlecellprobability < 0.5").archs4.rand(3, seed=2)
        whole = base.archs4.filter("tissue == 'liver' and singlecellprobability < 0.5")
    assert set(chained.sample.values) <= set(whole.sample.values)
    assert isinstance(chained.counts.data, type(base.counts.data))  # still lazy


def test_filter_reads_only_the_selected_chunks(small_file):
    d = archs4x.open_dataset(small_file)
    sel = d.archs4.filter("singlecellprobability < 0.5 and submission_date >= '2012'")
    n = sel.sizes["sample"]
    assert 0 < n < d.sizes["sample"]
    reader = get_reader(small_file)
    before = reader.stats.chunks
    values = sel.counts.values
    row_chunks = -(-d.sizes["gene"] // 2000)
    assert reader.stats.chunks - before == n * row_chunks
    with h5py.File(small_file) as f:
        cols = np.flatnonzero(np.isin(f["meta/samples/geo_accession"][()].astype(str),
                                      sel.sample.values))  # fmt: skip
        np.testing.assert_array_equal(values, f["data/expression"][:, cols])


def test_filter_on_an_xarray_engine_dataset(gene_file, ds):
    opened = xr.open_dataset(gene_file, engine="archs4", chunks={})
    expr = "tissue in ['liver', 'brain'] and age > 25"
    with raise_if_dask_computes():
        got = opened.archs4.filter(expr)
    assert got.sample.values.tolist() == ds.archs4.filter(expr).sample.values.tolist()


def test_filter_on_relabelled_samples(ds):
    sub = ds.isel(sample=slice(0, 120))
    relabelled = sub.assign_coords(sample=[f"S{i}" for i in range(120)])
    expr = "tissue == 'brain' or (series_id == 'GSE10014' and sex is not null)"
    a = sub.archs4.filter(expr)
    b = relabelled.archs4.filter(expr)
    assert a.sizes["sample"] > 0
    assert [int(s[1:]) for s in b.sample.values] == [
        sub.indexes["sample"].get_loc(s) for s in a.sample.values
    ]


def test_empty_result_keeps_everything(ds):
    none = ds.archs4.filter("tissue == 'no such tissue'")
    assert none.sizes["sample"] == 0
    assert set(none.coords) == set(ds.coords) and set(none.data_vars) == set(ds.data_vars)


# -- errors -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("expr", "caret", "message"),
    [
        ("tissue = 'liver'", 7, "unexpected '='"),
        ("tissue == 'liver", 10, "unterminated string"),
        ("tissue == 'liver' and", 21, "expected a field name"),
        ("tissue == 'liver' liver", 18, "expected 'and', 'or'"),
        ("(tissue == 'liver'", 18, "expected '\\)'"),
        ("tissue in ['a' 'b']", 15, "expected ',' or ']'"),
        ("tissue in 'a'", 10, "expected '\\[' to start a list"),
        ("age > ", 6, "expected a value"),
        ("age >= 5abc", 7, "malformed number"),
        ("tissue is 'x'", 10, "expected 'null'"),
        ("tissue not 'x'", 11, "expected 'in' after 'not'"),
        ("tissue contains 5", 16, "expected a 'string'"),
        ("tissue", 6, "expected an operator"),
        ("", 0, "empty expression"),
        ("and == 1", 0, "backquotes"),
        ("age > 5 $", 8, "unexpected '\\$'"),
    ],
)
def test_syntax_errors_show_a_caret(ds, expr, caret, message):
    with pytest.raises(ValueError, match=message) as info:
        ds.archs4.filter(expr)
    lines = str(info.value).splitlines()
    assert lines[1:] == ["    " + expr, "    " + " " * caret + "^"]


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("singlecellprobability > 'abc'", "singlecellprobability is a number field"),
        ("age == 'adult'", "age is a number field"),
        ("tissue == 5", "tissue is a text field"),
        ("tissue in ['liver', 3]", "tissue is a text field"),
        ("submission_date > 2019", "submission_date is a date field"),
        ("submission_date > 'last year'", "submission_date is a date field"),
        ("series_id < 'GSE5'", "series_id holds several values"),
        ("age contains '3'", "'contains' tests text"),
        ("series_id == 10000", "series_id is a multi-valued text field"),
    ],
)
def test_type_mismatch_is_a_type_error(ds, expr, message):
    with pytest.raises(TypeError, match=re.escape(message)):
        ds.archs4.filter(expr)


def test_unknown_field_names_close_matches(ds):
    with pytest.raises(KeyError, match="did you mean 'tissue'"):
        ds.archs4.filter("tisue == 'liver'")
    with pytest.raises(KeyError, match="'submission_date'"):
        ds.archs4.filter("submision_date > '2019'")
    with pytest.raises(KeyError, match="not a sample field or characteristic"):
        ds.archs4.filter("zzzz == 1")


def test_invalid_regex_is_a_value_error(ds):
    with pytest.raises(ValueError, match=r"invalid regular expression.*in: title matches"):
        ds.archs4.filter("title matches 'rep('")


def test_tokenizer_escapes_and_numbers():
    toks = tokenize(r"""a == 'it\'s' or b == "say \"hi\"" or c matches 'day \d' or d > 5_000""")
    strings = [t.value for t in toks if t.kind == "string"]
    assert strings == ["it's", 'say "hi"', r"day \d"]
    assert [t.value for t in toks if t.kind == "number"] == [5000]
    assert [t.value for t in tokenize("x > -1.5e3")][2] == -1500.0
    keywords = [t.value for t in tokenize("x AND y Or NOT z") if t.kind == "keyword"]
    assert keywords == ["and", "or", "not"]


def test_never_eval(ds):
    with pytest.raises(ValueError):
        ds.archs4.filter("__import__('os').system('echo hacked')")


# -- the command line ---------------------------------------------------------------------------
def _cli(capsys, *args):
    """Run the command line in this process: (exit status, stdout, stderr)."""
    capsys.readouterr()
    status = main(list(args))
    out = capsys.readouterr()
    return SimpleNamespace(returncode=status, stdout=out.out, stderr=out.err)


def test_cli_filter(gene_file, ds, tmp_path, capsys):
    expr = "tissue == 'liver' and singlecellprobability < 0.5"
    out = tmp_path / "liver.csv"
    r = _cli(capsys, "filter", str(gene_file), expr, "--show", "3", "--out", str(out), "--quiet")
    assert r.returncode == 0, r.stderr
    want = ds.archs4.filter(expr)
    assert r.stdout.splitlines()[0] == f"{want.sizes['sample']} matching samples"
    table = pd.read_csv(out, index_col=0, dtype=str)
    gsm = want.sample.values.tolist()
    labels = [*table.index, *table.columns]  # samples as rows or as columns
    assert [x for x in labels if str(x).startswith("GSM")] == gsm
    bad = _cli(capsys, "filter", str(gene_file), "age >> 3")
    assert bad.returncode == 1 and "^" in bad.stderr and "Traceback" not in bad.stderr
    wrong = _cli(capsys, "filter", str(gene_file), "age > 'x'")
    assert wrong.returncode == 1 and "number field" in wrong.stderr
    assert "Traceback" not in wrong.stderr
