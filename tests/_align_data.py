"""Pytest fixtures for the alignment tests: a synthetic transcriptome, its FASTA, reads.

The simulator itself is public, in :mod:`archs4x.align.simulate` (re-exported here for the
tests and the benchmark).  Reads are drawn from fragments of the transcripts (both
strands), so kallisto's estimated counts should track the true counts closely.
"""

from __future__ import annotations

import os as _os
import shutil as _shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from archs4x.align.simulate import (
    Transcriptome,
    make_transcriptome,
    revcomp,
    simulate_reads,
    true_counts,
)

__all__ = [
    "Reads",
    "Transcriptome",
    "make_transcriptome",
    "require_kallisto",
    "revcomp",
    "simulate_reads",
    "true_counts",
]


# ---------------------------------------------------------------------------- fixtures
# Imported by the tests/test_align_*.py modules.


def require_kallisto() -> str:
    """kallisto's path; skip the test without it, unless ARCHS4X_REQUIRE_KALLISTO=1 (CI)."""
    exe = _shutil.which(_os.environ.get("ARCHS4X_KALLISTO") or "kallisto")
    if exe is None:
        msg = (
            "kallisto is not installed (apt-get install kallisto, or set ARCHS4X_KALLISTO); "
            "alignment tests need the real binary"
        )
        if _os.environ.get("ARCHS4X_REQUIRE_KALLISTO") == "1":
            pytest.fail(msg + " and ARCHS4X_REQUIRE_KALLISTO=1")
        pytest.skip(msg)
    return exe


@pytest.fixture(scope="module")
def kallisto_bin():
    return require_kallisto()


@pytest.fixture(scope="module")
def transcriptome():
    return make_transcriptome()


@pytest.fixture(scope="module")
def fasta(transcriptome, tmp_path_factory):
    return transcriptome.write_fasta(tmp_path_factory.mktemp("fasta"))


@pytest.fixture(scope="module")
def ref(fasta, tmp_path_factory, kallisto_bin):
    from archs4x.align import reference

    r = reference(None, cdna=fasta[0], ncrna=fasta[1], cache_dir=tmp_path_factory.mktemp("cache"))
    r.build_index()
    return r


@dataclass
class Reads:
    truth: np.ndarray
    single: Path
    paired: tuple[Path, Path]


@pytest.fixture(scope="module")
def reads(transcriptome, tmp_path_factory):
    d = tmp_path_factory.mktemp("reads")
    truth = true_counts(transcriptome, 20_000, seed=1)
    single = d / "single.fastq.gz"
    simulate_reads(transcriptome, truth, single, seed=2)
    paired = (d / "pair_1.fastq.gz", d / "pair_2.fq")
    simulate_reads(transcriptome, truth, paired, seed=3)
    return Reads(truth, single, paired)
