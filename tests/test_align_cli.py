"""``archs4x align fastq|folder`` end to end with the real kallisto."""
# ruff: noqa: F811  (pytest fixtures imported from tests._align_data)

from __future__ import annotations

import shutil
import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest

import archs4x
from archs4x import align
from archs4x.cli import main
from tests._align_data import fasta, kallisto_bin, reads, transcriptome  # noqa: F401

pytestmark = pytest.mark.usefixtures("kallisto_bin")


def test_cli_fastq_and_folder(fasta, reads, tmp_path, capsys):
    cache = str(tmp_path / "cache")
    ref_args = ["--cdna", str(fasta[0]), "--ncrna", str(fasta[1]), "--cache-dir", cache]
    out = tmp_path / "one.tsv"
    assert main(["align", "fastq", "human", str(reads.single), *ref_args, "-o", str(out)]) == 0
    err = capsys.readouterr().err
    assert "[1/1] single: 20,000 reads" in err
    table = pd.read_csv(out, sep="\t", index_col=0)
    ref = align.reference(None, cdna=fasta[0], ncrna=fasta[1], cache_dir=cache)
    direct = align.fastq(ref, reads.single)
    assert table["single"].tolist() == direct.counts.values[:, 0].tolist()
    d = tmp_path / "run"
    d.mkdir()
    shutil.copy(reads.paired[0], d / "p_1.fastq.gz")
    shutil.copy(reads.paired[1], d / "p_2.fq")
    shutil.copy(reads.single, d / "s.fq.gz")
    out2 = tmp_path / "run.csv"
    args = ["align", "folder", "human", str(d), *ref_args, "--level", "transcript", "-o", str(out2)]
    assert main([*args, "--workers", "2"]) == 0
    assert "[2/2]" in capsys.readouterr().err
    assert list(pd.read_csv(out2, index_col=0).columns) == ["p", "s"]
    bad = tmp_path / "bad.fq"
    bad.write_text("nope\n")
    assert main(["align", "fastq", "human", str(bad), *ref_args, "-q"]) == 1
    assert "does not start with '@'" in capsys.readouterr().err


def test_relative_paths_from_the_callers_folder(fasta, reads, tmp_path, monkeypatch, capsys):
    """kallisto runs in a temporary folder: every relative path (reads, FASTA, cache,
    output) is taken from the caller's working directory, on the CLI and in Python."""
    (tmp_path / "reads").mkdir()
    (tmp_path / "ref").mkdir()
    shutil.copy(reads.paired[0], tmp_path / "reads" / "s_1.fastq.gz")
    shutil.copy(reads.paired[1], tmp_path / "reads" / "s_2.fq")
    shutil.copy(fasta[0], tmp_path / "ref" / "cdna.fa.gz")
    shutil.copy(fasta[1], tmp_path / "ref" / "ncrna.fa.gz")
    monkeypatch.chdir(tmp_path)
    ref_args = ["--cdna", "ref/cdna.fa.gz", "--ncrna", "ref/ncrna.fa.gz", "--cache-dir", "cache"]
    code = main(["align", "fastq", "human", "reads/s_1.fastq.gz", "reads/s_2.fq", *ref_args,
                 "-o", "s.tsv", "-q"])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    table = pd.read_csv(tmp_path / "s.tsv", sep="\t", index_col=0)
    ref = align.reference(None, cdna="ref/cdna.fa.gz", ncrna="ref/ncrna.fa.gz", cache_dir="cache")
    assert all(p.is_absolute() for p in ref.fasta) and ref.index.is_absolute()
    direct = align.fastq(ref, ["reads/s_1.fastq.gz", "reads/s_2.fq"])
    assert table["s"].tolist() == direct.counts.values[:, 0].tolist()
    assert int(table["s"].sum()) > 0.9 * reads.truth.sum()
    res = align.folder(ref, "reads")
    assert res.counts.values[:, 0].tolist() == table["s"].tolist()


def test_inputs_are_checked_before_the_reference_download(tmp_path, monkeypatch, capsys):
    reference_module = sys.modules["archs4x.align.reference"]  # the module, not the function
    fetched = []
    monkeypatch.setattr(reference_module, "fetch", lambda *a, **k: fetched.append(a))
    assert main(["align", "folder", "human", str(tmp_path / "nonexistent"), "-q"]) == 1
    assert "no such folder" in capsys.readouterr().err
    assert main(["align", "fastq", "human", "missing_1.fq", "-q"]) == 1
    assert "no such FASTQ file: missing_1.fq" in capsys.readouterr().err
    (tmp_path / "x.fq").write_text("@r\nACGT\n+\nIIII\n")
    assert main(["align", "fastq", "human", str(tmp_path / "x.fq"), "-o", "x.xlsx"]) == 1
    assert ".tsv, .csv or .zarr" in capsys.readouterr().err
    assert fetched == []  # nothing was downloaded


@pytest.mark.parametrize("command", ["fastq", "folder"])
def test_help_describes_the_command_and_its_options(command):
    out = subprocess.run([sys.executable, "-m", "archs4x", "align", command, "--help"],
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    text = " ".join(out.split())
    assert "kallisto" in text and "ARCHS4" in text  # a description
    for option, words in [("--level", "gene counts"), ("--identifier", "Ensembl id"),
                          ("--check", "truncated")]:  # fmt: skip
        assert option in text and words in text, option


def test_zarr_output_opens_with_open_zarr_without_warnings(fasta, reads, tmp_path, capsys):
    cache = str(tmp_path / "cache")
    ref_args = ["--cdna", str(fasta[0]), "--ncrna", str(fasta[1]), "--cache-dir", cache]
    d = tmp_path / "run1"
    d.mkdir()
    shutil.copy(reads.single, d / "a.fq.gz")
    shutil.copy(reads.paired[0], d / "b_1.fastq.gz")
    shutil.copy(reads.paired[1], d / "b_2.fq")
    out = tmp_path / "run1.zarr"
    assert main(["align", "folder", "human", str(d), *ref_args, "-o", str(out), "-q"]) == 0
    tsv = tmp_path / "run1.tsv"
    assert main(["align", "folder", "human", str(d), *ref_args, "-o", str(tsv), "-q"]) == 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        z = archs4x.open_zarr(out)
        values = z.counts.values
    table = pd.read_csv(tsv, sep="\t", index_col=0)
    assert z.sample.values.tolist() == ["a", "b"] == table.columns.tolist()
    assert z.gene.values.tolist() == table.index.tolist()
    np.testing.assert_array_equal(values, table.to_numpy())
    assert values.dtype == np.uint32
