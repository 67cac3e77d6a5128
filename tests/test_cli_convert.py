"""``archs4x convert``: the command line over to_zarr."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import archs4x
from archs4x import open_zarr
from archs4x.cli import main


@pytest.mark.parametrize("layout", ["sample", "gene"])
def test_convert_round_trip(tmp_path, gene_file, layout, capsys):
    out = tmp_path / "x.zarr"
    assert main(["convert", str(gene_file), str(out), "--layout", layout]) == 0
    err = capsys.readouterr().err
    assert "units (100%)" in err and f"{layout} layout" in err
    z = open_zarr(out)
    np.testing.assert_array_equal(z.counts.values, archs4x.open_dataset(gene_file).counts.values)
    assert z.counts.encoding["archs4x_layout"] == layout


def test_convert_search_keeps_matching_samples(tmp_path, gene_file):
    from archs4x.query import search

    ds = archs4x.open_dataset(gene_file)
    terms = ["liver", "muscle"]
    expected = set()
    for t in terms:
        expected.update(search(ds, t).sample.values.tolist())
    assert 0 < len(expected) < ds.sizes["sample"]
    out = tmp_path / "s.zarr"
    assert main(["convert", str(gene_file), str(out), "--search", *terms, "--quiet"]) == 0
    z = open_zarr(out)
    assert set(z.sample.values.tolist()) == expected
    want = ds.sel(sample=z.sample.values).counts.values
    np.testing.assert_array_equal(z.counts.values, want)


def test_convert_errors(tmp_path, gene_file, small_file, capsys):
    out = tmp_path / "x.zarr"
    assert main(["convert", str(gene_file), str(out), "--quiet"]) == 0
    assert main(["convert", str(small_file), str(out), "--quiet"]) == 1
    assert "overwrite" in capsys.readouterr().err
    assert main(["convert", str(gene_file), str(tmp_path / "y"), "--search", "zzqqxx"]) == 1
    assert "no sample matches" in capsys.readouterr().err
    assert main(["convert", str(tmp_path / "missing.h5"), str(tmp_path / "z")]) == 1


def test_convert_runs_as_a_program(tmp_path, small_file):
    out = tmp_path / "p.zarr"
    proc = subprocess.run(
        [sys.executable, "-m", "archs4x", "convert", str(small_file), str(out), "--layout", "gene"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert open_zarr(out).sizes["sample"] == 60
