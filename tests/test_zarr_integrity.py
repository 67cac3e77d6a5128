"""Every byte of a store is checked: flipped bits, truncated, deleted and replaced objects.

Reads raise :class:`archs4x.StoreIntegrityError` naming the array and the chunk, never
return wrong numbers or fill zeros; ``verify_zarr`` / ``archs4x verify`` find the same
damage; rerunning ``to_zarr`` repairs it.  References: the source Dataset (itself equal
to h5py, ``test_reader.py``) and bytes damaged on purpose.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import archs4x
from archs4x import StoreIntegrityError, open_zarr, to_zarr, verify_zarr
from archs4x.cli import main
from archs4x.storage.zarrstore import crc32c

from ._hypothesis import examples

OPTS = {"sample": {"layout": "sample", "chunks": (4500, 1), "shards": (4500, 8)},
        "gene": {"layout": "gene", "chunks": (500, 40), "shards": (1000, 40)}}  # fmt: skip


@pytest.fixture(scope="module")
def src(gene_file):
    return archs4x.open_dataset(gene_file).isel(sample=slice(0, 40))


@pytest.fixture(scope="module")
def stores(src, tmp_path_factory):
    base = tmp_path_factory.mktemp("integrity")
    return {layout: Path(to_zarr(src, base / f"{layout}.zarr", **opts))
            for layout, opts in OPTS.items()}  # fmt: skip


def _read_all(store: Path) -> np.ndarray:
    archs4x.clear_caches()  # no shard index cached from an earlier read
    return open_zarr(store).counts.values


@settings(max_examples=examples(25), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
@given(layout=st.sampled_from(["sample", "gene"]), where=st.floats(0, 1, exclude_max=True),
       bit=st.integers(0, 7))  # fmt: skip
def test_any_flipped_bit_raises_naming_array_and_chunk(stores, src, layout, where, bit):
    store = stores[layout]
    shard = store / "counts" / "c" / "1" / "0" if layout == "gene" else store / "counts/c/0/2"
    good = shard.read_bytes()
    pos = int(where * len(good))
    bad = bytearray(good)
    bad[pos] ^= 1 << bit
    shard.write_bytes(bytes(bad))
    try:
        with pytest.raises(StoreIntegrityError, match=r"'counts'") as info:
            _read_all(store)
        assert "chunk (" in str(info.value) or "shard index" in str(info.value)
        assert "c/" in str(info.value)  # the object is named
    finally:
        shard.write_bytes(good)
    np.testing.assert_array_equal(_read_all(store), src.counts.values)


@pytest.mark.parametrize("layout", ["sample", "gene"])
def test_truncated_and_deleted_shards_raise_never_zeros(stores, layout):
    store = stores[layout]
    shard = sorted((store / "counts" / "c").rglob("*"))[-1]
    good = shard.read_bytes()
    try:
        for cut in (len(good) - 1, len(good) // 2, 10, 0):
            shard.write_bytes(good[:cut])
            with pytest.raises(StoreIntegrityError, match="counts"):
                _read_all(store)
        shard.unlink()
        with pytest.raises(StoreIntegrityError, match=r"missing.*'counts'|'counts'.*missing"):
            _read_all(store)
    finally:
        shard.write_bytes(good)


def test_deleted_chunk_key_of_an_unsharded_store_raises(tmp_path, src):
    out = Path(to_zarr(src, tmp_path / "u.zarr", chunks=(4500, 4), shards=None))
    z = open_zarr(out)
    (out / "counts" / "c" / "0" / "3").unlink()  # samples 12-15
    np.testing.assert_array_equal(z.isel(sample=[0, 20]).counts.values,
                                  src.isel(sample=[0, 20]).counts.values)  # fmt: skip
    with pytest.raises(StoreIntegrityError, match=r"chunk counts/c/0/3 of array 'counts'"):
        z.isel(sample=[13]).counts.values  # noqa: B018


def test_a_chunk_missing_from_its_shard_index_raises(tmp_path, src):
    """A shard whose index says "empty" for a chunk (a writer that skipped it) is damage."""
    out = Path(to_zarr(src, tmp_path / "m.zarr", **OPTS["sample"]))
    shard = out / "counts" / "c" / "0" / "1"
    raw = bytearray(shard.read_bytes())
    n = 8 * 16 + 4
    index = np.frombuffer(bytes(raw[-n:-4]), dtype="<u8").copy().reshape(8, 2)
    index[3] = 2**64 - 1
    body = index.tobytes()
    raw[-n:] = body + crc32c(body).to_bytes(4, "little")  # a sound index, a missing chunk
    shard.write_bytes(bytes(raw))
    z = open_zarr(out)
    with pytest.raises(StoreIntegrityError, match=r"chunk \(0, 11\).*missing from its shard"):
        z.isel(sample=[11]).counts.values  # noqa: B018
    assert any("(0, 11)" in p for p in verify_zarr(out).problems)


def test_damaged_coordinates_raise(tmp_path, src):
    out = Path(to_zarr(src, tmp_path / "c.zarr"))
    title = out / "title" / "c" / "0"
    raw = bytearray(title.read_bytes())
    raw[len(raw) // 2] ^= 0x10
    title.write_bytes(bytes(raw))
    z = open_zarr(out)  # sample fields are read when used
    with pytest.raises(StoreIntegrityError, match=r"array 'title' chunk \(0,\)"):
        z.title.values  # noqa: B018
    (out / "sample" / "c" / "0").unlink()
    with pytest.raises(StoreIntegrityError, match="'sample'"):
        open_zarr(out)


def test_verify_reports_each_kind_of_damage(tmp_path, src, capsys):
    out = Path(to_zarr(src, tmp_path / "v.zarr", **OPTS["sample"]))
    report = verify_zarr(out)
    # 40 counts chunks, one chunk per coordinate, 5 progress records
    assert report.ok and report.units == 5 and report.chunks == 40 + len(src.coords) + 5
    assert main(["verify", str(out), "--quiet"]) == 0
    shards = sorted((out / "counts" / "c" / "0").iterdir(), key=lambda p: int(p.name))
    raw = bytearray(shards[0].read_bytes())
    raw[100] ^= 1
    shards[0].write_bytes(bytes(raw))  # a flipped bit in sample 0's chunk
    shards[1].write_bytes(shards[1].read_bytes()[:-7])  # truncated
    shards[2].unlink()  # deleted
    (out / "archs4x_progress" / "write" / "c" / "3").unlink()  # a lost record
    report = verify_zarr(out, progress=True)
    assert "archs4x verify" in capsys.readouterr().err  # progress
    text = "\n".join(report.problems)
    assert not report.ok
    assert "array 'counts' chunk (0, 0) in shard counts/c/0/0: checksum mismatch" in text
    assert "counts/c/0/1" in text and "truncated" in text
    assert "shard counts/c/0/2 of array 'counts' is missing" in text
    assert "unit 3 of 'counts'" in text
    assert main(["verify", str(out)]) == 1
    err = capsys.readouterr()
    assert "DAMAGED" in err.out and "damaged or incomplete" in err.err
    assert json.loads(_cli_json(out, capsys))["ok"] is False


def _cli_json(out, capsys) -> str:
    main(["verify", str(out), "--json"])
    return capsys.readouterr().out


def test_a_shard_from_another_job_is_caught_by_its_unit_digest(tmp_path, src):
    """Checksums hold inside a foreign shard; the digest recorded per unit does not."""
    a = Path(to_zarr(src, tmp_path / "a.zarr", **OPTS["sample"]))
    b = Path(to_zarr(src.isel(sample=slice(None, None, -1)), tmp_path / "b.zarr",
                     **OPTS["sample"]))  # fmt: skip
    shutil.copyfile(b / "counts/c/0/1", a / "counts/c/0/1")
    report = verify_zarr(a)
    assert [p for p in report.problems if "unit 1 of 'counts'" in p and "digest" in p]
    to_zarr(src, a, **OPTS["sample"])  # the same call again: verified, unit 1 rewritten
    assert verify_zarr(a).ok
    np.testing.assert_array_equal(_read_all(a), src.counts.values)


def test_rerun_on_a_complete_store_repairs_it(tmp_path, src):
    """Was: a deleted shard read as 258 zero samples, and to_zarr said "complete"."""
    out = Path(to_zarr(src, tmp_path / "r.zarr", **OPTS["sample"]))
    (out / "counts/c/0/4").unlink()
    raw = bytearray((out / "counts/c/0/0").read_bytes())
    raw[7] ^= 0x40
    (out / "counts/c/0/0").write_bytes(bytes(raw))
    with pytest.raises(StoreIntegrityError):
        _read_all(out)
    to_zarr(src, out, **OPTS["sample"])
    assert verify_zarr(out).ok
    np.testing.assert_array_equal(_read_all(out), src.counts.values)


def test_resume_reverifies_the_units_it_skips(tmp_path, src):
    out = Path(to_zarr(src, tmp_path / "s.zarr", **OPTS["gene"]))
    root = json.loads((out / "zarr.json").read_text())
    root["attributes"]["archs4x_zarr"]["complete"] = False  # as if killed before the end
    (out / "zarr.json").write_text(json.dumps(root))
    shard = out / "counts/c/0/0"
    shard.write_bytes(shard.read_bytes()[:-3])  # damaged after it was recorded
    to_zarr(src, out, **OPTS["gene"])
    assert verify_zarr(out).ok
    np.testing.assert_array_equal(_read_all(out), src.counts.values)


def test_url_stores_are_checked_the_same(src):
    """An fsspec store (here ``memory://``): reads batch range requests, checks every chunk."""
    import fsspec

    url = "memory://archs4x-integrity/s.zarr"
    to_zarr(src, url, overwrite=True, **OPTS["sample"])
    np.testing.assert_array_equal(_read_all(url), src.counts.values)
    fs = fsspec.filesystem("memory")
    key = "/archs4x-integrity/s.zarr/counts/c/0/3"
    good = fs.cat_file(key)
    bad = bytearray(good)
    bad[len(bad) // 3] ^= 0x02
    fs.pipe_file(key, bytes(bad))
    with pytest.raises(StoreIntegrityError, match=r"array 'counts' chunk \(0, \d+\)"):
        _read_all(url)
    fs.rm(key)
    with pytest.raises(StoreIntegrityError, match="missing"):
        _read_all(url)
    assert not verify_zarr(url).ok
    to_zarr(src, url, **OPTS["sample"])  # repaired by the same call
    assert verify_zarr(url).ok
    np.testing.assert_array_equal(_read_all(url), src.counts.values)


def test_rerun_repairs_damaged_coordinates(tmp_path, src):
    out = Path(to_zarr(src, tmp_path / "c.zarr"))
    (out / "title" / "c" / "0").write_bytes(b"garbage")
    (out / "symbol" / "zarr.json").unlink()
    assert not verify_zarr(out).ok
    to_zarr(src, out)
    assert verify_zarr(out).ok
    z = open_zarr(out)
    assert z.title.values.tolist() == src.title.values.tolist()
    assert z.symbol.values.tolist() == src.symbol.values.tolist()


def test_verify_of_a_file_says_it_is_not_a_store(tmp_path):
    import archs4x

    path = tmp_path / "x.h5"
    path.write_text("not a store")
    with pytest.raises(ValueError, match="is a file, not a Zarr store"):
        archs4x.verify_zarr(path)
