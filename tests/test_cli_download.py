"""``archs4x versions`` and ``archs4x download`` against a real local HTTP server."""

from __future__ import annotations

import hashlib
import subprocess
import sys

import pytest

from archs4x.cli import main

from ._http import FileServer


@pytest.fixture
def site(tmp_path):
    data = b"ARCHS4" * 50_000
    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "mouse_gene_v2.5.h5").write_bytes(data)
    with FileServer(tmp_path / "www") as srv:
        yield srv, data, hashlib.sha1(data).hexdigest()


def test_versions_lists_catalog(capsys):
    assert main(["versions", "--species", "human", "--level", "gene"]) == 0
    out = capsys.readouterr().out
    assert "human_gene_v2.5.h5" in out and "47.9 GB" in out and "mouse" not in out


def test_versions_urls(capsys):
    assert main(["versions", "--level", "transcript", "--urls"]) == 0
    out = capsys.readouterr().out
    assert "https://s3.dev.maayanlab.cloud/archs4/files/human_transcript_v2.latest.h5" in out


def test_download_writes_verified_file(site, tmp_path, capsys):
    srv, data, sha1 = site
    url = srv.url("mouse_gene_v2.5.h5")
    code = main(["download", "mouse", "--version", "2.5", "--url", url, "--sha1", sha1,
                 "-o", str(tmp_path / "out"), "-q"])  # fmt: skip
    assert code == 0
    path = capsys.readouterr().out.strip()
    assert path.endswith("mouse_gene_v2.5.h5")
    assert (tmp_path / "out" / "mouse_gene_v2.5.h5").read_bytes() == data


def test_download_checksum_mismatch_exits_1(site, tmp_path, capsys):
    srv, _, _ = site
    code = main(["download", "mouse", "--url", srv.url("mouse_gene_v2.5.h5"), "--sha1",
                 "0" * 40, "-o", str(tmp_path / "out"), "-q"])  # fmt: skip
    assert code == 1
    assert "SHA1" in capsys.readouterr().err
    assert list((tmp_path / "out").iterdir()) == []


def test_download_unknown_species_exits_1(capsys):
    assert main(["download", "rat", "-q"]) == 1
    assert "unknown species 'rat'" in capsys.readouterr().err


def test_download_help_runs_as_a_program():
    out = subprocess.run([sys.executable, "-m", "archs4x", "download", "--help"],
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert "--version" in out and "resum" in out
