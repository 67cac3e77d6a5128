"""``archs4x align fastq|folder`` end to end with the real kallisto."""
# ruff: noqa: F811  (pytest fixtures imported from tests._align_data)

from __future__ import annotations

import shutil

import pandas as pd
import pytest

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
