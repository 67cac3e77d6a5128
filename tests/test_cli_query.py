"""The query subcommands, run as the installed ``archs4x`` console script."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys

import h5py
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from archs4x.cli import main
from archs4x.write.tables import read_parquet_counts

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
            "gene": [x.decode() for x in f["meta/genes/ensembl_gene"][()]],
        }


def _read_csv(path, sep=","):
    """A counts table: two header rows (Ensembl id, symbol), one row per sample."""
    return pd.read_csv(path, sep=sep, header=[0, 1], index_col=0)


def test_search_prints_and_writes_parquet(small_file, ref, tmp_path):
    out = tmp_path / "hits.parquet"
    r = run("search", small_file, "rep1", "--fields", "title", "--out", out, "--show", "2")
    assert r.returncode == 0, r.stderr
    want = [i for i, t in enumerate(ref["title"]) if "rep1" in t]
    assert r.stdout.startswith(f"{len(want)} matching samples")
    assert ref["gsm"][want[0]] in r.stdout and ref["gsm"][want[2]] not in r.stdout
    df = read_parquet_counts(out)
    assert df.index.tolist() == [ref["gsm"][i] for i in want]
    assert df.columns.tolist() == ref["gene"]
    np.testing.assert_array_equal(df.to_numpy(), ref["counts"][:, want].T)
    meta = pq.read_schema(out).metadata
    assert json.loads(meta[b"archs4x.symbol"]) == ref["symbol"]
    assert pq.read_schema(out).field("counts").type.list_size == len(ref["gene"])
    assert "100%" in r.stderr and "writing hits.parquet" in r.stderr  # progress of the write
    assert not list(tmp_path.glob("*.part"))


@pytest.mark.parametrize("suffix", [".csv", ".tsv"])
def test_samples_keep_order_report_missing_and_write_text(small_file, ref, tmp_path, suffix):
    out = tmp_path / f"s{suffix}"
    r = run("samples", small_file, ref["gsm"][9], "GSM0", ref["gsm"][2], "--out", out, "--quiet")
    assert r.returncode == 0, r.stderr
    assert "warning: 1 sample ids not found: GSM0" in r.stderr
    df = _read_csv(out, "\t" if suffix == ".tsv" else ",")
    assert df.index.tolist() == [ref["gsm"][9], ref["gsm"][2]]
    assert df.columns.get_level_values(0).tolist() == ref["gene"]
    assert df.columns.get_level_values(1).tolist() == ref["symbol"]
    np.testing.assert_array_equal(df.to_numpy(), ref["counts"][:, [9, 2]].T)
    r = run("samples", small_file, "GSM0", "--missing", "raise")
    assert r.returncode == 1 and "GSM0" in r.stderr


def test_writes_stream_block_by_block(small_file, ref, tmp_path, monkeypatch, capsys):
    """Many small blocks (one sample each): the table is the reference, written in order,
    and only a block at a time was in flight."""
    from archs4x.cli import _query
    from archs4x.write import tables as _tables

    blocks = []
    real_write = _tables.CountsTableWriter.write
    monkeypatch.setattr(_query, "BLOCK_BYTES", 4 * len(ref["gene"]) * 3)  # 3 samples a block
    monkeypatch.setattr(_tables.CountsTableWriter, "write",
                        lambda self, ids, block: (blocks.append(len(ids)),
                                                  real_write(self, ids, block)))  # fmt: skip
    out = tmp_path / "all.csv"
    assert main(["search", str(small_file), ".", "--fields", "title", "--out", str(out),
                 "--show", "0", "--quiet"]) == 0  # fmt: skip
    n = len(ref["gsm"])
    assert blocks == [3] * (n // 3) + ([n % 3] if n % 3 else [])
    df = _read_csv(out)
    assert df.index.tolist() == ref["gsm"]
    np.testing.assert_array_equal(df.to_numpy(), ref["counts"].T)


def test_a_failed_write_leaves_nothing(small_file, tmp_path, monkeypatch, capsys):
    from archs4x.cli import _query
    from archs4x.write import tables as _tables

    monkeypatch.setattr(_query, "BLOCK_BYTES", 1)
    calls = []

    def fail_second(self, ids, block):
        calls.append(1)
        if len(calls) == 2:
            raise OSError("disk full (simulated)")
        self._file.write(b"")

    monkeypatch.setattr(_tables.CountsTableWriter, "write", fail_second)
    for suffix in (".csv", ".parquet"):
        calls.clear()
        out = tmp_path / f"x{suffix}"
        assert main(["search", str(small_file), "rep1", "--out", str(out), "--quiet"]) == 1
        assert "disk full" in capsys.readouterr().err
        assert list(tmp_path.iterdir()) == []  # neither the file nor its .part


def test_out_is_checked_before_any_work(tmp_path):
    """Bad outputs fail first: even the input file (missing here) is not opened."""
    missing = tmp_path / "missing.h5"
    (tmp_path / "afile").write_text("")
    cases = [
        ("m.xlsx", "use a .csv, .tsv, .parquet or .zarr path"),
        (tmp_path / "nofolder" / "x.csv", "folder .*nofolder does not exist"),
        (tmp_path / "afile" / "x.parquet", "does not exist"),
        (tmp_path, "use a .csv"),
    ]
    for out, msg in cases:
        r = run("search", missing, "x", "--out", out)
        assert r.returncode == 1 and "missing.h5" not in r.stderr, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1
        assert re.search(msg, r.stderr), (out, r.stderr)
    (tmp_path / "notzarr.zarr").mkdir()
    (tmp_path / "notzarr.zarr" / "keep.txt").write_text("mine")
    r = run("series", missing, "GSE1", "--out", tmp_path / "notzarr.zarr")
    assert r.returncode == 1 and "not a Zarr store" in r.stderr
    assert (tmp_path / "notzarr.zarr" / "keep.txt").read_text() == "mine"
    r = run("meta", missing, "--out", tmp_path / "m.zarr")
    assert r.returncode == 1 and "use a .csv, .tsv or .parquet path" in r.stderr


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".parquet", ".zarr"])
def test_empty_selection_writes_nothing_whatever_the_format(small_file, tmp_path, suffix):
    out = tmp_path / f"none{suffix}"
    r = run("search", small_file, "zzz no such thing", "--out", out)
    assert r.returncode == 1
    assert r.stdout.strip() == "0 matching samples"
    assert (
        r.stderr.strip() == f"archs4x search: error: 0 samples selected: nothing written to {out}"
    )
    assert list(tmp_path.iterdir()) == []


def test_search_errors_are_clear(small_file):
    r = run("search", small_file, "muscle (")
    assert r.returncode == 1
    assert "invalid regular expression" in r.stderr and "Traceback" not in r.stderr
    assert "--literal" in r.stderr and "regex=False" not in r.stderr
    r = run("search", small_file, "x", "--fields", "nope")
    assert r.returncode == 1 and "available" in r.stderr
    r = run("search", small_file, "(rep1", "--literal", "--show", "0")
    assert r.returncode == 0 and r.stdout.strip() == "0 matching samples"
    r = run("meta", small_file, "--search", "muscle (")
    assert r.returncode == 1 and "--literal" in r.stderr
    assert run("meta", small_file, "--search", "(rep1", "--literal").returncode == 0


def test_regex_timeout_names_literal(small_file, capsys):
    """A pattern that backtracks exponentially on every title (~20 characters) runs into
    the limit in Python's engine; the CLI names --literal."""
    import archs4x

    with archs4x.set_options(regex_timeout=0.5):
        code = main(["search", str(small_file), r"(.+.+)+!(?=z)", "--fields", "title"])
    err = capsys.readouterr().err
    assert code == 1 and "ran longer than 0.5 s" in err, err
    assert "--literal" in err and "regex=False" not in err


def test_show_must_not_be_negative(small_file):
    r = run("search", small_file, "rep1", "--show", "-1")
    assert r.returncode == 2 and "--show: must be 0 or more, got -1" in r.stderr


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


def _without_s3fs(*args: str) -> subprocess.CompletedProcess:
    """Run the CLI in a Python where ``import s3fs`` fails, as without the s3 extra."""
    code = ("import sys; sys.modules['s3fs'] = None\n"
            "from archs4x.cli import main; raise SystemExit(main(sys.argv[1:]))")  # fmt: skip
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True,
                          text=True, timeout=120)  # fmt: skip


@pytest.mark.parametrize(
    "args",
    [("search", "{file}", "rep1", "--out", "s3://bucket/x.csv"),
     ("search", "{file}", "rep1", "--out", "s3://bucket/x.zarr"),
     ("convert", "{file}", "s3://bucket/x.zarr")],
)  # fmt: skip
def test_s3_without_s3fs_is_one_line_naming_the_extra(small_file, args):
    r = _without_s3fs(*(a.format(file=small_file) for a in args))
    assert r.returncode == 1 and "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "pip install 'archs4x[s3]'" in lines[0], r.stderr
    assert lines[0].startswith(f"archs4x {args[0]}: error:")
