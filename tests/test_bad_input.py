"""Bad input gets a clear error and loses nothing."""

from __future__ import annotations

import shutil

import h5py
import numpy as np
import pytest

import archs4x
from archs4x import clear_caches as clear_cache
from archs4x.errors import ChunkDecodeError, NotArchs4Error


def test_missing_file(tmp_path):
    missing = tmp_path / "nope.h5"
    with pytest.raises(FileNotFoundError, match=r"nope\.h5"):
        archs4x.open_dataset(missing)


def test_directory(tmp_path):
    with pytest.raises(IsADirectoryError):
        archs4x.open_dataset(tmp_path)


def test_not_hdf5(tmp_path):
    p = tmp_path / "text.h5"
    p.write_text("this is not HDF5\n" * 100)
    with pytest.raises(ValueError, match="not a readable HDF5 file"):
        archs4x.open_dataset(p)


def test_truncated(tmp_path, small_file):
    p = tmp_path / "trunc.h5"
    data = small_file.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"truncated|not a readable"):
        archs4x.open_dataset(p).counts.values  # noqa: B018


@pytest.mark.parametrize(
    "builder, message",
    [
        (lambda f: f.create_dataset("x", data=[1]), "missing data/expression"),
        (
            lambda f: (f.create_dataset("data/expression", data=np.zeros((3, 2), "u4")),),
            "missing meta/samples",
        ),
        (
            lambda f: (
                f.create_dataset("data/expression", data=np.zeros((3, 2), "u4")),
                f.create_dataset("meta/samples/title", data=["a", "b"]),
            ),
            "geo_accession",
        ),
        (
            lambda f: (
                f.create_dataset("data/expression", data=np.zeros((3, 2), "u4")),
                f.create_dataset("meta/samples/geo_accession", data=["a", "b", "c"]),
            ),
            "expected \\(2,\\)",
        ),
        (
            lambda f: (
                f.create_dataset("data/expression", data=np.zeros((3, 2), "u4")),
                f.create_dataset("meta/samples/geo_accession", data=["a", "b"]),
            ),
            "meta/genes",
        ),
    ],
    ids=["no-expression", "no-samples", "no-gsm", "gsm-length", "no-genes"],
)
def test_not_archs4(tmp_path, builder, message):
    p = tmp_path / "other.h5"
    with h5py.File(p, "w") as f:
        builder(f)
    with pytest.raises(NotArchs4Error, match=message):
        archs4x.open_dataset(p)


def _chunk_location(path, coord):
    with h5py.File(path) as f:
        info = f["data/expression"].id.get_chunk_info_by_coord(coord)
        return info.byte_offset, info.size


@pytest.mark.parametrize("compression", ["gzip", "lzf"])
def test_corrupt_chunk_raises_never_zeros(tmp_path, compression):
    p = tmp_path / "corrupt.h5"
    archs4x.datasets.write_archs4_file(p, n_genes=2500, n_samples=10, seed=4,
                                       compression=compression)  # fmt: skip
    offset, size = _chunk_location(p, (2000, 6))
    with open(p, "r+b") as fh:
        fh.seek(offset + size // 3)
        fh.write(b"\xff\x00\x13\x37" * 8)
    clear_cache()
    ds = archs4x.open_dataset(p)
    with h5py.File(p) as f:
        good = f["data/expression"][:, [5]]
    np.testing.assert_array_equal(ds.counts.isel(sample=[5]).values, good)
    with pytest.raises(ChunkDecodeError, match=r"data/expression: chunk at offset \(2000, 6\)"):
        ds.counts.isel(sample=[5, 6]).values  # noqa: B018


def test_replaced_file_is_reopened(tmp_path, small_file):
    p = tmp_path / "swap.h5"
    shutil.copy(small_file, p)
    first = archs4x.open_dataset(p).counts.isel(sample=[0]).values
    archs4x.datasets.write_archs4_file(p, n_genes=2500, n_samples=60, seed=99)
    second = archs4x.open_dataset(p).counts.isel(sample=[0]).values
    assert not np.array_equal(first, second)
    with h5py.File(p) as f:
        np.testing.assert_array_equal(second[:, 0], f["data/expression"][:, 0])
