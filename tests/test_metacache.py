"""The columnar metadata cache: correct, invalidated when the file changes, safe to share."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

import h5py
import numpy as np
import pyarrow as pa
import pytest

from archs4x import clear_caches as clear_cache
from archs4x.datasets import write_archs4_file
from archs4x.query import metacache
from archs4x.query.metacache import MetaCache
from archs4x.storage.text import decode_strings, repair_mojibake


@pytest.fixture
def own_file(tmp_path):
    """A file of this test's own (so replacing it cannot disturb other tests)."""
    return write_archs4_file(tmp_path / "f.h5", n_genes=30, n_samples=50, seed=1)


def test_columns_equal_h5py(gene_file):
    mc = MetaCache(gene_file)
    with h5py.File(gene_file, "r") as f:
        for name, d in f["meta/samples"].items():
            col = mc.column(name)
            raw = d[()]
            if raw.dtype == object:
                assert col.type == pa.large_string()
                assert col.to_pylist() == decode_strings(raw).tolist()
            else:
                np.testing.assert_array_equal(col.to_numpy(), raw)
    assert "title" in mc.cached_fields()
    assert mc.column("title") is mc.column("title")  # served from memory the second time


def test_repaired_column(gene_file):
    raw = MetaCache(gene_file).column("characteristics_ch1").to_pylist()
    fixed = MetaCache(gene_file, repair=True).column("characteristics_ch1").to_pylist()
    assert fixed == [repair_mojibake(s) for s in raw]
    assert fixed != raw


def test_fixed_length_strings(tmp_path):
    p = write_archs4_file(tmp_path / "fixed.h5", n_genes=20, n_samples=12, string_kind="fixed")
    with h5py.File(p, "r") as f:
        want = decode_strings(f["meta/samples/title"][()]).tolist()
    assert MetaCache(p).column("title").to_pylist() == want


def test_unknown_field(gene_file):
    with pytest.raises(KeyError, match="available: channel_count"):
        MetaCache(gene_file).column("nope")


def test_modified_file_is_never_served_stale(own_file, tmp_path):
    old = MetaCache(own_file).column("title").to_pylist()
    old_dirs = {p.parent for p in metacache.root().glob("*/manifest.json")
                if str(own_file.resolve()) in p.read_text()}  # fmt: skip
    assert old_dirs
    # replace the file with different content (another seed), as a new release would
    replacement = write_archs4_file(tmp_path / "g.h5", n_genes=30, n_samples=50, seed=9)
    time.sleep(0.01)
    shutil.copyfile(replacement, own_file)
    clear_cache()
    new = MetaCache(own_file).column("title").to_pylist()
    with h5py.File(replacement, "r") as f:
        assert new == decode_strings(f["meta/samples/title"][()]).tolist()
    assert new != old
    assert not any(d.exists() for d in old_dirs)  # the stale cache was removed


def test_bounded_blocks(own_file, monkeypatch):
    monkeypatch.setattr(metacache, "BLOCK_ROWS", 7)
    metacache.clear(own_file)
    col = MetaCache(own_file).column("series_id")
    assert col.num_chunks == 8  # 50 rows in blocks of 7
    with h5py.File(own_file, "r") as f:
        assert col.to_pylist() == decode_strings(f["meta/samples/series_id"][()]).tolist()


_BUILD = """
import sys
from archs4x.query.metacache import MetaCache, clear
mc = MetaCache(sys.argv[1])
print(len(mc.column("characteristics_ch1")), mc.column("characteristics_ch1")[3])
"""


def test_concurrent_processes_share_safely(tmp_path):
    p = write_archs4_file(tmp_path / "c.h5", n_genes=20, n_samples=3000, seed=2)
    env = {**os.environ, "ARCHS4X_CACHE_DIR": str(tmp_path / "cache")}
    procs = [
        subprocess.Popen([sys.executable, "-c", _BUILD, str(p)], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(3)
    ]  # fmt: skip
    outs = [proc.communicate(timeout=120) for proc in procs]
    assert all(proc.returncode == 0 for proc in procs), [e for _, e in outs]
    assert len({o for o, _ in outs}) == 1 and outs[0][0].startswith("3000 ")
    leftovers = list((tmp_path / "cache").rglob("*.tmp"))
    assert leftovers == []
    files = list((tmp_path / "cache").rglob("characteristics_ch1.*.arrow"))
    assert len(files) == 1


def test_clear(own_file):
    mc = MetaCache(own_file)
    mc.column("title")
    metacache.clear(own_file)
    assert mc.cached_fields() == ()
    with h5py.File(own_file, "r") as f:
        want = [t.decode() for t in f["meta/samples/title"][()]]
    assert mc.column("title").to_pylist() == want  # rebuilt on demand
    assert mc.cached_fields() == ("title",)
