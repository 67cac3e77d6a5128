"""Resumable, verified downloads against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import hashlib
import json

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


def test_existing_part_is_resumed(server, payload, tmp_path):
    _, data, _ = payload
    (tmp_path / "f.h5.part").write_bytes(data[:123_456])
    out = _get(server, tmp_path / "f.h5", payload)
    assert out.read_bytes() == data
    assert server.stats.bytes_sent == SIZE - 123_456


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
    with pytest.raises(DownloadError, match="catalog says"):
        _get(server, tmp_path / "f.h5", payload, size=SIZE + 1, retries=0)


def test_counts_uses_catalog_and_url_override(server, payload, tmp_path):
    _, data, sha1 = payload
    url = server.url("human_gene_v2.5.h5")
    out = counts("human", tmp_path, version="2.5", url=url, sha1=sha1, progress=False)
    assert out.name == "human_gene_v2.5.h5" and out.read_bytes() == data
    server.stats.reset()
    assert counts("human", tmp_path, version="2.5", url=url, progress=False) == out
    assert server.stats.requests == []  # the verified file is not fetched again


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
