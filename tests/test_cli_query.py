"""The query subcommands, run as the installed ``archs4x`` console script."""

from __future__ import annotations

import shutil
import subprocess
import sys

import h5py
import numpy as np
import pandas as pd
import pytest

ARCHS4X = shutil.which("archs4x")


def run(*args: str) -> subprocess.CompletedProcess:
    cmd = [ARCHS4X] if ARCHS4X else [sys.executable, "-m", "archs4x"]
    return subprocess.run([*cmd, *map(str, args)], capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def ref(small_file):
    with h5py.File(small_file, "r") as f:
        return {
            "counts": f["data/expression"][:],
            "gsm": [x.decode() for x in f["meta/samples/geo_accession"][()]],
            "title": [x.decode() for x in f["meta/samples/title"][()]],
            "series": [x.decode() for x in f["meta/samples/series_id"][()]],
            "symbol": [x.decode() for x in f["meta/genes/symbol"][()]],
        }


def test_search_prints_and_writes_parquet(small_file, ref, tmp_path):
    out = tmp_path / "hits.parquet"
    r = run("search", small_file, "rep1", "--fields", "title", "--out", out, "--show", "2")
    assert r.returncode == 0, r.stderr
    want = [i for i, t in enumerate(ref["title"]) if "rep1" in t]
    assert r.stdout.startswith(f"{len(want)} matching samples")
    assert ref["gsm"][want[0]] in r.stdout and ref["gsm"][want[2]] not in r.stdout
    df = pd.read_parquet(out)
    assert df.columns.tolist() == ["symbol", *[ref["gsm"][i] for i in want]]
    np.testing.assert_array_equal(df.iloc[:, 1:].to_numpy(), ref["counts"][:, want])
    assert df["symbol"].tolist() == ref["symbol"]
    assert "100%" in r.stderr  # progress bar


def test_search_errors_are_clear(small_file):
    r = run("search", small_file, "muscle (")
    assert r.returncode == 1
    assert "invalid regular expression" in r.stderr and "Traceback" not in r.stderr
    r = run("search", small_file, "x", "--fields", "nope")
    assert r.returncode == 1 and "available" in r.stderr
    r = run("search", small_file, "(rep1", "--literal", "--show", "0")
    assert r.returncode == 0 and r.stdout.strip() == "0 matching samples"


def test_samples_keep_order_report_missing_and_write_csv(small_file, ref, tmp_path):
    out = tmp_path / "s.csv"
    r = run("samples", small_file, ref["gsm"][9], "GSM0", ref["gsm"][2], "--out", out, "--quiet")
    assert r.returncode == 0, r.stderr
    assert "warning: 1 sample ids not found: GSM0" in r.stderr
    df = pd.read_csv(out, index_col=0)
    assert df.columns.tolist() == ["symbol", ref["gsm"][9], ref["gsm"][2]]
    np.testing.assert_array_equal(df.iloc[:, 1:].to_numpy(), ref["counts"][:, [9, 2]])
    r = run("samples", small_file, "GSM0", "--missing", "raise")
    assert r.returncode == 1 and "GSM0" in r.stderr


def test_series_writes_zarr(small_file, ref, tmp_path):
    gse = ref["series"][0].split(",")[0]
    out = tmp_path / "s.zarr"
    r = run("series", small_file, gse, "--out", out, "--quiet")
    assert r.returncode == 0, r.stderr
    import archs4x

    back = archs4x.open_zarr(out)
    want = [i for i, s in enumerate(ref["series"]) if gse in s.split(",")]
    assert back.sample.values.tolist() == [ref["gsm"][i] for i in want]
    np.testing.assert_array_equal(back.counts.values, ref["counts"][:, want])


def test_meta_tables(small_file, ref, tmp_path):
    r = run("meta", small_file, "--search", "rep2", "--fields", "title", "series_id")
    assert r.returncode == 0, r.stderr
    n = sum("rep2" in t for t in ref["title"])
    assert r.stdout.startswith(f"{n} samples")
    out = tmp_path / "m.csv"
    r = run("meta", small_file, "--samples", ref["gsm"][4], ref["gsm"][1], "--out", out)
    assert r.returncode == 0, r.stderr
    df = pd.read_csv(out, index_col=0)
    assert df.index.tolist() == [ref["gsm"][4], ref["gsm"][1]]
    assert df["title"].tolist() == [ref["title"][4], ref["title"][1]]
    r = run("meta", small_file, "--list-fields")
    assert "characteristics_ch1" in r.stdout.split()
