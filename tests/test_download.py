"""Resumable, verified downloads against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from archs4x.download import ChecksumError, DownloadError, counts, fetch

from ._http import FileServer

SIZE = 3 * 2**20 + 12345  # a few MiB: several 1 MiB blocks


@pytest.fixture(scope="module")
def payload(tmp_path_factory):
    root = tmp_path_factory.mktemp("www")
    data = bytes(range(256)) * (SIZE // 256) + b"x" * (SIZE % 256)
    (root / "human_gene_v2.5.h5").write_bytes(data)
    return root, data, hashlib.sha1(data).hexdigest()


@pytest.fixture
def server(payload):
    with FileServer(payload[0]) as srv:
        yield srv


def _get(server, dest, payload, **kw):
    _, data, sha1 = payload
    kw.setdefault("sha1", sha1)
    kw.setdefault("size", len(data))
    return fetch(server.url("human_gene_v2.5.h5"), dest, progress=False, backoff=0.01, **kw)


def test_download_verifies_and_renames(server, payload, tmp_path):
    out = _get(server, tmp_path / "f.h5", payload)
    assert out == tmp_path / "f.h5" and out.read_bytes() == payload[1]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.h5"]  # no .part left


def test_dropped_connection_resumes_with_range(server, payload, tmp_path):
    server.behaviour.drop_after, server.behaviour.drops = 1_000_000, 2
    out = _get(server, tmp_path / "f.h5", payload)
    assert out.read_bytes() == payload[1]
    ranges = [r[2] for r in server.stats.requests]
    assert ranges[0] is None and len(ranges) == 3
    starts = [int(r.removeprefix("bytes=").rstrip("-")) for r in ranges[1:]]
    assert 900_000 < starts[0] <= 1_000_000 < starts[1] <= 2_000_000  # resumed, not restarted
    assert server.stats.bytes_sent < SIZE + 2 * 2**16  # at most one read block lost per drop


def _sidecar(tmp_path, **validators):
    (tmp_path / "f.h5.part.json").write_text(json.dumps(validators))


def test_existing_part_is_resumed(server, payload, tmp_path):
    root, data, _ = payload
    (tmp_path / "f.h5.part").write_bytes(data[:123_456])
    _sidecar(tmp_path, etag=FileServer.etag(root / "human_gene_v2.5.h5"), size=SIZE)
    out = _get(server, tmp_path / "f.h5", payload)
    assert out.read_bytes() == data
    assert server.stats.bytes_sent == SIZE - 123_456
    assert server.stats.requests[0][2] == "bytes=123456-"


def test_a_part_without_validator_restarts_from_zero(server, payload, tmp_path):
    """Nothing proves the bytes on disk belong to the file on the server: no splice."""
    _, data, _ = payload
    (tmp_path / "f.h5.part").write_bytes(b"\0" * 123_456)  # bytes of who knows what
    out = _get(server, tmp_path / "f.h5", payload)
    assert out.read_bytes() == data
    assert server.stats.requests[0][2] is None and server.stats.bytes_sent == SIZE


def test_server_ignoring_range_restarts_from_zero(server, payload, tmp_path):
    _, data, _ = payload
    (tmp_path / "f.h5.part").write_bytes(data[:500_000])
    server.behaviour.ignore_range = True
    out = _get(server, tmp_path / "f.h5", payload)
    assert out.read_bytes() == data
    assert server.stats.requests[0][3] == 200 and server.stats.bytes_sent == SIZE


def test_changed_remote_file_restarts_via_if_range(server, payload, tmp_path):
    _, data, _ = payload
    part = tmp_path / "f.h5.part"
    part.write_bytes(b"\0" * 400_000)  # bytes of an older version of the file
    (tmp_path / "f.h5.part.json").write_text(json.dumps({"etag": '"old"'}))
    out = _get(server, tmp_path / "f.h5", payload)
    assert out.read_bytes() == data
    assert server.stats.requests[0][3] == 200  # If-Range did not match: whole file


def test_corrupt_bytes_raise_and_leave_nothing_complete(server, payload, tmp_path):
    server.behaviour.corrupt = True
    with pytest.raises(ChecksumError, match="does not match"):
        _get(server, tmp_path / "f.h5", payload)
    assert list(tmp_path.iterdir()) == []


def test_transient_errors_are_retried(server, payload, tmp_path):
    server.behaviour.fail_status, server.behaviour.failures = 503, 2
    assert _get(server, tmp_path / "f.h5", payload).read_bytes() == payload[1]
    assert [r[3] for r in server.stats.requests] == [503, 503, 200]


def test_retries_exhausted_keep_the_part_for_later(server, payload, tmp_path):
    server.behaviour.drop_after, server.behaviour.drops = 700_000, 10
    with pytest.raises(DownloadError, match="run again to resume"):
        _get(server, tmp_path / "f.h5", payload, retries=1)
    assert 1_200_000 < (tmp_path / "f.h5.part").stat().st_size <= 1_400_000
    assert not (tmp_path / "f.h5").exists()


def test_404_falls_back_to_mirror(server, payload, tmp_path):
    out = fetch(server.url("missing.h5"), tmp_path / "f.h5", mirror=server.url("human_gene_v2.5.h5"),
                sha1=payload[2], progress=False, backoff=0.01)  # fmt: skip
    assert out.read_bytes() == payload[1]
    assert [r[3] for r in server.stats.requests] == [404, 200]


def test_404_everywhere_is_a_clear_error(server, tmp_path):
    with pytest.raises(DownloadError, match="HTTP 404"):
        fetch(server.url("missing.h5"), tmp_path / "f.h5", progress=False, backoff=0.01)
    assert len(server.stats.requests) == 1  # 404 is not retried


def test_no_disk_space_fails_before_downloading(server, payload, tmp_path):
    with pytest.raises(DownloadError, match="not enough disk space"):
        _get(server, tmp_path / "f.h5", payload, size=10**18)
    assert server.stats.requests == []


def test_wrong_size_on_server_is_reported(server, payload, tmp_path):
    with pytest.raises(DownloadError, match="3,158,073 bytes but 3,158,074 are expected"):
        _get(server, tmp_path / "f.h5", payload, size=SIZE + 1, retries=0)


# -- servers that do not help: no ETag, a changing ETag, no Content-Length ---------------
def _versions(root):
    """Two versions of one file, same size, different bytes (and mtimes)."""
    v1 = bytes(range(256)) * 4096
    v2 = bytes(reversed(range(256))) * 4096
    path = root / "f.bin"
    path.write_bytes(v1)
    os.utime(path, (1_700_000_000, 1_700_000_000))

    def replace_with_v2():
        path.write_bytes(v2)
        os.utime(path, (1_700_000_100, 1_700_000_100))  # a later Last-Modified

    return v1, v2, replace_with_v2


def test_last_modified_only_server_never_splices_versions(tmp_path):
    (tmp_path / "www").mkdir()
    _v1, v2, replace = _versions(tmp_path / "www")
    with FileServer(tmp_path / "www") as srv:
        b = srv.behaviour
        b.send_etag, b.send_last_modified = False, True
        b.drop_after, b.drops, b.after_drop = 300_000, 1, replace
        out = fetch(srv.url("f.bin"), tmp_path / "f.bin", progress=False, backoff=0.01)
        reqs = srv.stats.requests
    assert out.read_bytes() == v2  # all of the new version, not v1's head + v2's tail
    assert [r[3] for r in reqs] == [200, 200] and reqs[1][2] == "bytes=300000-"


def test_no_validator_server_restarts_instead_of_resuming(tmp_path):
    (tmp_path / "www").mkdir()
    _v1, v2, replace = _versions(tmp_path / "www")
    with FileServer(tmp_path / "www") as srv:
        b = srv.behaviour
        b.send_etag = False
        b.drop_after, b.drops, b.after_drop = 300_000, 1, replace
        out = fetch(srv.url("f.bin"), tmp_path / "f.bin", progress=False, backoff=0.01)
        reqs = srv.stats.requests
    assert out.read_bytes() == v2
    assert [(r[2], r[3]) for r in reqs] == [(None, 200), (None, 200)]  # no Range sent


def test_etag_changing_on_the_206_restarts_from_zero(tmp_path):
    """A server that answers 206 whatever If-Range says, from a replaced file: its new
    ETag gives it away, and the download starts over rather than splice the two."""
    (tmp_path / "www").mkdir()
    _v1, v2, replace = _versions(tmp_path / "www")
    with FileServer(tmp_path / "www") as srv:
        b = srv.behaviour
        b.ignore_if_range = True
        b.drop_after, b.drops, b.after_drop = 300_000, 1, replace
        out = fetch(srv.url("f.bin"), tmp_path / "f.bin", progress=False, backoff=0.01)
        reqs = srv.stats.requests
    assert out.read_bytes() == v2
    assert [r[3] for r in reqs] == [200, 206, 200]
    assert not (tmp_path / "f.bin.part").exists()


def test_body_without_length_cut_short_is_never_renamed(payload, tmp_path):
    root, data, sha1 = payload
    with FileServer(root) as srv:
        srv.behaviour.no_length = True
        srv.behaviour.drop_after, srv.behaviour.drops = 100_000, 1
        with pytest.raises(DownloadError, match="no Content-Length"):
            fetch(srv.url("human_gene_v2.5.h5"), tmp_path / "f.h5", progress=False,
                  backoff=0.01)  # fmt: skip
        assert not (tmp_path / "f.h5").exists()
        # knowing the size, the short body is resumed (ETag + If-Range) to the end
        srv.behaviour.drop_after, srv.behaviour.drops = 100_000, 1
        out = fetch(srv.url("human_gene_v2.5.h5"), tmp_path / "g.h5", size=len(data),
                    sha1=sha1, progress=False, backoff=0.01)  # fmt: skip
        assert out.read_bytes() == data
        assert [r[3] for r in srv.stats.requests[-2:]] == [200, 206]


# -- counts(): the release's checks always apply ----------------------------------------
@pytest.fixture
def release_99(tmp_path, gene_file, monkeypatch):
    """A release this session's catalog knows (as if read from the site's list), served
    from 127.0.0.1 together with impostors."""
    from archs4x import catalog

    www = tmp_path / "www"
    www.mkdir()
    shutil.copy(gene_file, www / "human_gene_v9.9.h5")
    data = (www / "human_gene_v9.9.h5").read_bytes()
    (www / "small.h5").write_bytes(b"\x89HDF" + b"\0" * 4_000_000)  # not the release
    monkeypatch.setenv("ARCHS4X_VERSIONFILE_URL", "http://127.0.0.1:9/versionfile")
    with FileServer(www) as srv:
        rel = catalog.Release("human", "gene", "9.9", "human_gene_v9.9.h5",
                              srv.url("human_gene_v9.9.h5"), "", len(data),
                              hashlib.sha1(data).hexdigest(), 400)  # fmt: skip
        monkeypatch.setattr(catalog, "_refreshed", {("human", "gene", "9.9"): rel})
        yield srv, rel, data


def test_counts_keeps_the_release_checks_with_url(release_99, tmp_path):
    srv, _rel, data = release_99
    dest = tmp_path / "dl"
    with pytest.raises(DownloadError, match=r"4,000,004 bytes but .* expected \(release human"):
        counts("human", dest, version="9.9", url=srv.url("small.h5"), progress=False, retries=0)
    assert not (dest / "human_gene_v9.9.h5").exists() and not (dest / "small.h5").exists()
    out = counts("human", dest, version="9.9", url=srv.url("human_gene_v9.9.h5"), progress=False)
    assert out == dest / "human_gene_v9.9.h5" and out.read_bytes() == data
    srv.stats.reset()
    assert counts("human", dest, version="9.9", progress=False) == out
    assert srv.stats.requests == []  # the verified file is not fetched again


def test_counts_checks_the_file_is_archs4_of_the_release_shape(release_99, tmp_path,
                                                               monkeypatch, gene_file):  # fmt: skip
    from archs4x import catalog
    from archs4x.errors import NotArchs4Error

    srv, rel, _data = release_99
    unchecked = dataclasses.replace(rel, size=None, sha1=None)  # nothing published
    monkeypatch.setattr(catalog, "_refreshed", {("human", "gene", "9.9"): unchecked})
    with pytest.raises(NotArchs4Error, match="not a readable HDF5 file"):
        counts("human", tmp_path, version="9.9", url=srv.url("small.h5"), progress=False)
    assert list(tmp_path.glob("human_gene_v9.9.h5*")) == []  # deleted, never renamed
    wrong = dataclasses.replace(unchecked, samples=401)
    monkeypatch.setattr(catalog, "_refreshed", {("human", "gene", "9.9"): wrong})
    with pytest.raises(NotArchs4Error, match="400 samples, but human_gene_v9.9.h5 has 401"):
        counts("human", tmp_path, version="9.9", progress=False)
    tx = dataclasses.replace(unchecked, level="transcript", samples=None)
    monkeypatch.setattr(catalog, "_refreshed", {("human", "transcript", "9.9"): tx})
    with pytest.raises(NotArchs4Error, match="gene-level file, but .* transcript-level"):
        counts("human", tmp_path, "transcript", "9.9", progress=False)
    assert list(tmp_path.glob("*.h5*")) == []


def test_latest_is_a_concrete_release_with_its_checks(release_99, tmp_path):
    _srv, _rel, data = release_99
    with pytest.warns(RuntimeWarning, match="bundled catalog"):  # the site is offline
        out = counts("human", tmp_path, progress=False)  # version="latest"
    assert out.name == "human_gene_v9.9.h5" and out.read_bytes() == data


@pytest.mark.parametrize(
    "args, msg",
    [(("rat",), "unknown species"), (("human", ".", "exon"), "unknown level"),
     (("human", ".", "gene", "9.9"), "unknown version '9.9'")],
)  # fmt: skip
def test_counts_rejects_unknown_choices(args, msg, monkeypatch):
    monkeypatch.setenv("ARCHS4X_VERSIONFILE_URL", "http://127.0.0.1:9/versionfile")
    with pytest.raises(ValueError, match=msg):
        counts(*args, progress=False)


@settings(
    max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(cut=st.integers(1, SIZE - 1))
def test_any_interruption_point_resumes_to_the_same_bytes(server, payload, tmp_path_factory, cut):
    dest = tmp_path_factory.mktemp("h") / "f.h5"
    server.behaviour.drop_after, server.behaviour.drops = cut, 1
    assert _get(server, dest, payload).read_bytes() == payload[1]
