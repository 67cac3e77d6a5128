"""Alignment results, normalized and selected datasets: written by ``to_zarr``, read back by
``open_zarr`` and by plain ``xarray.open_zarr``, with no warning anywhere.

References: the Dataset written (its values computed by numpy, kallisto's own output
checked in ``test_align_quant.py``), read back through an independent reader (zarr-python
via xarray).
"""
# ruff: noqa: F811  (pytest fixtures imported from tests._align_data)

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import archs4x
from archs4x import open_zarr, to_zarr, verify_zarr
from tests._align_data import (  # noqa: F401  (fixtures)
    fasta,
    kallisto_bin,
    reads,
    ref,
    transcriptome,
)


def _round_trip(tmp_path, data, name: str, **kw) -> tuple[xr.Dataset, xr.Dataset]:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning on write or on either read
        out = to_zarr(data, tmp_path / f"{name}.zarr", **kw)
        ours = open_zarr(out).compute()
        plain = xr.open_zarr(out).compute()
    assert verify_zarr(out).ok
    return ours, plain


def _plain(ds: xr.Dataset) -> xr.Dataset:
    """``ds`` with a plain pandas index on ``sample`` (open_zarr's also knows positions)."""
    return ds.assign_coords(sample=ds.sample.values)


def _align_like(n_genes: int = 300, n_samples: int = 5) -> xr.Dataset:
    """The shape of an ``archs4x.align`` gene-level result (plain index, mixed coords)."""
    rng = np.random.default_rng(0)
    genes = np.array([f"ENSG{i:011d}" for i in range(n_genes)], dtype=object)
    names = np.array([f"run{i}" for i in range(n_samples)], dtype=object)
    return xr.Dataset(
        {"counts": (("gene", "sample"), rng.poisson(3, (n_genes, n_samples)).astype(np.uint32))},
        coords={
            "gene": genes,
            "symbol": ("gene", np.array([f"G{i % 97}" for i in range(n_genes)], dtype=object)),
            "sample": names,
            "paired": ("sample", np.arange(n_samples) % 2 == 0),
            "files": (
                "sample",
                np.array([f"{n}_1.fq.gz;{n}_2.fq.gz" for n in names], dtype=object),
            ),
            "n_processed": ("sample", np.arange(n_samples, dtype=np.int64) * 1000),
            "kallisto_seconds": ("sample", np.linspace(0.5, 2.0, n_samples)),
        },
        attrs={
            "level": "gene",
            "identifier": "ensembl",
            "ensembl_release": np.int64(107),
            "species": "human",
            "reference_sha256": "ab" * 32,
        },
    )


@pytest.mark.parametrize("layout", ["sample", "gene"])
def test_an_alignment_shaped_result(tmp_path, layout):
    ds = _align_like()
    ours, plain = _round_trip(tmp_path, ds, layout, layout=layout)
    xr.testing.assert_identical(_plain(ours), ds)
    for name in ds.variables:
        assert ours[name].dtype == ds[name].dtype, name
        np.testing.assert_array_equal(plain[name].values.astype(ds[name].dtype), ds[name].values)
    assert ours.attrs["ensembl_release"] == 107 and plain.attrs["species"] == "human"


def test_a_real_alignment_result(tmp_path, ref, reads):
    from archs4x import align

    ds = align.fastq(ref, {"se": reads.single, "pe": reads.paired}, return_type="gene")
    ours, plain = _round_trip(tmp_path, ds, "aligned")
    xr.testing.assert_identical(_plain(ours), ds.compute())
    np.testing.assert_array_equal(plain.counts.values, ds.counts.values)
    assert plain.n_processed.values.tolist() == ds.n_processed.values.tolist()
    # the lazy result (kallisto not run yet) is written the same
    lazy = align.fastq(ref, {"se": reads.single, "pe": reads.paired}, return_type="gene",
                       compute=False)  # fmt: skip
    again, _ = _round_trip(tmp_path, lazy, "lazy")
    timing = ["kallisto_seconds"]  # the one coordinate that differs between two runs
    xr.testing.assert_identical(again.drop_vars(timing), ours.drop_vars(timing))


def test_normalized_and_selected_datasets(tmp_path, gene_file):
    ds = archs4x.open_dataset(gene_file)
    sel = ds.archs4.search("liver").isel(gene=slice(0, 2500))
    assert 0 < sel.sizes["sample"] < ds.sizes["sample"]
    norm = archs4x.normalize(sel, "cpm")  # a DataArray named counts
    want = (sel.counts.values / sel.counts.values.sum(axis=0) * 1e6).astype(np.float64)
    ours, plain = _round_trip(tmp_path, norm, "cpm")
    np.testing.assert_allclose(ours.counts.values, want, rtol=1e-12)
    np.testing.assert_array_equal(plain.counts.values, ours.counts.values)
    assert ours.counts.attrs["normalization"] == "cpm" and ours.counts.dtype == np.float64
    assert ours.title.values.tolist() == sel.title.values.tolist()
    log = archs4x.normalize(sel, "cpm", log=True, dtype=np.float32).rename("log_cpm")
    ours, _ = _round_trip(tmp_path, log, "log", layout="gene")
    np.testing.assert_array_equal(ours.counts.values, log.values)


def test_unstorable_coordinates_are_refused_clearly(tmp_path):
    ds = _align_like().assign_coords(when=("sample", pd.date_range("2024-01-01", periods=5)))
    with pytest.raises(TypeError, match="coordinate 'when' has dtype datetime64"):
        to_zarr(ds, tmp_path / "d.zarr")
    mixed = _align_like().assign_coords(note=("sample", np.array(["a", None, "c", "d", "e"],
                                                                  dtype=object)))  # fmt: skip
    with pytest.raises(TypeError, match="coordinate 'note' holds NoneType"):
        to_zarr(mixed, tmp_path / "m.zarr")
