"""Shared fixtures: real files in the exact ARCHS4 layout, written by archs4x.datasets."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from archs4x.datasets import example_file, write_archs4_file


@pytest.fixture(scope="session")
def gene_file():
    """The embedded example: 4,500 genes x 400 samples, gzip, chunks (2000, 1)."""
    return example_file()


@pytest.fixture(scope="session")
def transcript_file():
    return example_file("transcript", n_genes=3_000, n_samples=120)


@pytest.fixture(scope="session")
def small_file(tmp_path_factory):
    """A small file (2,500 genes x 60 samples) for tests that modify or copy files."""
    p = tmp_path_factory.mktemp("small") / "small_gene.h5"
    return write_archs4_file(p, n_genes=2_500, n_samples=60, seed=3)


@pytest.fixture(scope="session")
def gene_matrix(gene_file):
    """The full counts of the example file, read by h5py: the reference for reads."""
    with h5py.File(gene_file, "r") as f:
        return np.asarray(f["data/expression"][:])
