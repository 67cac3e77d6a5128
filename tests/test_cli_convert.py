"""``archs4x convert``: the command line over to_zarr."""

from __future__ import annotations

import re
import subprocess
import sys

import h5py
import numpy as np
import pytest

from archs4x import open_zarr
from archs4x.cli import main


@pytest.mark.parametrize("layout", ["sample", "gene"])
def test_convert_round_trip(tmp_path, gene_file, gene_matrix, layout, capsys):
    out = tmp_path / "x.zarr"
    assert main(["convert", str(gene_file), str(out), "--layout", layout]) == 0
    err = capsys.readouterr().err
    assert "units (100%)" in err and f"{layout} layout" in err
    z = open_zarr(out)
    np.testing.assert_array_equal(z.counts.values, gene_matrix)  # h5py's read of the file
    assert z.counts.encoding["archs4x_layout"] == layout


def test_convert_search_keeps_matching_samples(tmp_path, gene_file, gene_matrix):
    # the reference, restated without archs4x: h5py's fields, Python's re, the README's
    # default search fields, case-insensitive; a sample matching any term is kept
    fields = ("characteristics_ch1", "extract_protocol_ch1", "source_name_ch1", "title")
    with h5py.File(gene_file, "r") as f:
        gsm = f["meta/samples/geo_accession"].asstr()[:].tolist()
        text = {name: f[f"meta/samples/{name}"].asstr()[:].tolist() for name in fields}
    terms = ["liver", "muscle"]
    keep = [i for i in range(len(gsm))
            if any(re.search(t, text[name][i], re.IGNORECASE) for t in terms for name in fields)]  # fmt: skip
    assert 0 < len(keep) < len(gsm)
    out = tmp_path / "s.zarr"
    assert main(["convert", str(gene_file), str(out), "--search", *terms, "--quiet"]) == 0
    z = open_zarr(out)
    assert z.sample.values.tolist() == [gsm[i] for i in keep]  # file order
    np.testing.assert_array_equal(z.counts.values, gene_matrix[:, keep])


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
    with h5py.File(small_file, "r") as f:
        want = f["data/expression"][:]
        gsm = f["meta/samples/geo_accession"].asstr()[:].tolist()
    z = open_zarr(out)
    assert z.sample.values.tolist() == gsm and z.sizes["sample"] == 60
    np.testing.assert_array_equal(z.counts.values, want)
