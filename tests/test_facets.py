"""ds.archs4.facets: value counts of typed fields over any selection, and the CLI."""

from __future__ import annotations

import datetime
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import archs4x
import archs4x.accessor  # registers ds.archs4
from archs4x.cli import main

from ._hypothesis import examples
from ._laziness import raise_if_dask_computes
from ._metadata import metadata_frame


@pytest.fixture(scope="module")
def ds(gene_file):
    return archs4x.open_dataset(gene_file, repair_text=True)


@pytest.fixture(scope="module")
def frame(gene_file):
    """Stored fields decoded by h5py, characteristic keys from the planted truth."""
    return metadata_frame(gene_file, ("tissue", "cell_type", "sex", "age", "cell_cycle_phase"))


def reference(df: pd.DataFrame, field: str) -> tuple[dict, int]:
    """``({value: count}, missing)`` with pandas."""
    s = df[field]
    if field == "series_id":
        members = s.str.split(",").explode().str.strip()
        members = members[members != ""]
        return members.value_counts().to_dict(), int((s.str.strip() == "").sum())
    if field == "submission_date":
        dates = pd.to_datetime(s, format="%b %d %Y").dt.date
        return dates.value_counts().to_dict(), 0
    blank = s.isna() | s.map(lambda v: isinstance(v, str) and not v.strip())
    return s[~blank].value_counts().to_dict(), int(blank.sum())


FIELDS = ["tissue", "cell_type", "sex", "age", "series_id", "instrument_model",
          "submission_date", "singlecellprobability", "cell_cycle_phase"]  # fmt: skip


@given(
    field=st.sampled_from(FIELDS),
    rows=st.one_of(
        st.just(None),
        st.lists(st.integers(0, 399), min_size=0, max_size=60, unique=True),
    ),
)
@settings(max_examples=examples(80), deadline=None)
def test_facets_match_pandas_value_counts(ds, frame, field, rows):
    sel = ds if rows is None else ds.isel(sample=rows)
    sub = frame if rows is None else frame.iloc[rows]
    with raise_if_dask_computes():
        table = sel.archs4.facets(field)
    counts, missing = reference(sub, field)
    values = table["value"].tolist()
    got = dict(zip(values[: len(values) - bool(missing)], table["count"], strict=False))
    if field in ("age", "singlecellprobability"):
        counts = {float(k): v for k, v in counts.items()}
        got = {float(k): v for k, v in got.items()}
    assert got == counts
    if missing:
        assert values[-1] is None and table["count"].iloc[-1] == missing
    else:
        assert None not in values
    assert table.attrs["missing"] == missing and table.attrs["distinct"] == len(counts)
    body = table.iloc[: len(table) - bool(missing)]
    assert list(body["count"]) == sorted(body["count"], reverse=True)  # most common first
    n = max(sel.sizes["sample"], 1)
    np.testing.assert_allclose(table["fraction"], table["count"] / n)


def test_series_are_counted_per_value(ds, frame):
    table = ds.archs4.facets("series_id")
    multi = frame["series_id"][frame["series_id"].str.contains(",")]
    assert len(multi) > 0
    assert table["count"].sum() == len(frame) + len(multi)  # a sample in 2 series counts twice
    assert table.set_index("value").loc["GSE64016", "count"] == 12


def test_top_tidy_and_attrs(ds, frame):
    many = ds.archs4.facets(["tissue", "instrument_model", "series_id", "cell_type"], top=3)
    assert list(many) == ["tissue", "instrument_model", "series_id", "cell_type"]
    tissue = many["tissue"]
    assert len(tissue) == 4 and tissue["value"].iloc[-1] is None  # top 3 + missing
    counts, _ = reference(frame, "tissue")
    assert tissue.attrs["other"] == sum(counts.values()) - tissue["count"].iloc[:3].sum()
    tidy = ds.archs4.facets(["tissue", "sex"], top=2, tidy=True)
    assert tidy.columns.tolist() == ["field", "value", "count", "fraction"]
    assert tidy["field"].unique().tolist() == ["tissue", "sex"]
    single = ds.archs4.facets("sex")
    assert isinstance(single, pd.DataFrame)
    pd.testing.assert_frame_equal(single, ds.archs4.facets(["sex"])["sex"])


def test_dates_are_dates(ds):
    table = ds.archs4.facets("submission_date", top=1)
    assert table["value"].iloc[0] == datetime.date(2014, 12, 5)  # GSE64016's day
    assert table["count"].iloc[0] == 12


def test_facets_of_a_search(ds, frame):
    hits = ds.archs4.search("hepatocyte")
    table = hits.archs4.facets("tissue")
    sub = frame[frame["geo_accession"].isin(hits.sample.values)]
    counts, missing = reference(sub, "tissue")
    assert dict(zip(table["value"][:-1], table["count"][:-1], strict=True)) == counts
    assert table["count"].iloc[-1] == missing


def test_empty_selection_and_errors(ds):
    none = ds.archs4.filter("tissue == 'nowhere'").archs4.facets(["tissue", "age"])
    assert all(len(t) == 0 for t in none.values())
    with pytest.raises(KeyError, match="did you mean 'tissue'"):
        ds.archs4.facets("tisue")
    with pytest.raises(ValueError, match="top must be"):
        ds.archs4.facets("tissue", top=-1)
    with pytest.raises(ValueError, match="at least one field"):
        ds.archs4.facets([])


def _cli(capsys, *args):
    """Run the command line in this process: (exit status, stdout, stderr)."""
    capsys.readouterr()
    status = main(list(args))
    out = capsys.readouterr()
    return SimpleNamespace(returncode=status, stdout=out.out, stderr=out.err)


def test_cli_facets(gene_file, ds, tmp_path, capsys):
    out = tmp_path / "facets.csv"
    r = _cli(capsys, "facets", str(gene_file), "tissue", "series_id", "--top", "3",
             "--filter", "singlecellprobability < 0.5", "--out", str(out))  # fmt: skip
    assert r.returncode == 0, r.stderr
    bulk = ds.archs4.filter("singlecellprobability < 0.5")
    want = bulk.archs4.facets(["tissue", "series_id"], top=3, tidy=True)
    written = pd.read_csv(out)
    assert written["field"].tolist() == want["field"].tolist()
    assert written["count"].tolist() == want["count"].tolist()
    distinct = bulk.archs4.facets("tissue").attrs["distinct"]
    assert r.stdout.startswith(f"tissue: {distinct} values over {bulk.sizes['sample']} samples")
    keys = _cli(capsys, "facets", str(gene_file), "--top", "2")
    assert keys.returncode == 0 and "characteristics keys" in keys.stdout
    assert "tissue" in keys.stdout and "more keys" in keys.stdout
    bad = _cli(capsys, "facets", str(gene_file), "tisue")
    assert bad.returncode == 1 and "did you mean 'tissue'" in bad.stderr
