"""``archs4x versions`` and ``archs4x download`` against a real local HTTP server."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys

import pytest

from archs4x.cli import main

from ._http import FileServer


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("ARCHS4X_VERSIONFILE_URL", "http://127.0.0.1:9/versionfile")


@pytest.fixture
def site(tmp_path, small_file, monkeypatch):
    """A release the session's catalog knows (size, SHA1, samples), served locally."""
    from archs4x import catalog

    (tmp_path / "www").mkdir()
    shutil.copy(small_file, tmp_path / "www" / "mouse_gene_v9.9.h5")
    data = (tmp_path / "www" / "mouse_gene_v9.9.h5").read_bytes()
    sha1 = hashlib.sha1(data).hexdigest()
    with FileServer(tmp_path / "www") as srv:
        rel = catalog.Release("mouse", "gene", "9.9", "mouse_gene_v9.9.h5",
                              srv.url("mouse_gene_v9.9.h5"), "", len(data), sha1)  # fmt: skip
        monkeypatch.setattr(catalog, "_refreshed", {("mouse", "gene", "9.9"): rel})
        yield srv, data, sha1


def test_versions_lists_catalog(capsys):
    assert main(["versions", "--species", "human", "--level", "gene"]) == 0
    out = capsys.readouterr().out
    assert "human_gene_v2.5.h5" in out and "47.9 GB" in out and "mouse" not in out
    assert "= 2.5, the newest fixed release known" in out  # what "latest" downloads


def test_versions_urls(capsys):
    assert main(["versions", "--level", "transcript", "--urls"]) == 0
    out = capsys.readouterr().out
    assert "https://s3.dev.maayanlab.cloud/archs4/files/human_transcript_v2.2.h5" in out
    assert "v2.latest.h5" not in out  # moving targets cannot be verified: not offered


def test_versions_refresh_offline_is_one_clean_line():
    proc = subprocess.run([sys.executable, "-m", "archs4x", "versions", "--refresh"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    assert proc.stderr.strip() == (
        "archs4x versions: warning: could not read the ARCHS4 release list at "
        "http://127.0.0.1:9/versionfile: cannot connect; using the bundled catalog"
    )
    assert "human_gene_v2.5.h5" in proc.stdout


def test_download_writes_verified_file(site, tmp_path, capsys):
    _srv, data, _sha1 = site
    code = main(["download", "mouse", "--version", "9.9", "-o", str(tmp_path / "out"), "-q"])
    assert code == 0, capsys.readouterr().err
    path = capsys.readouterr().out.strip()
    assert path.endswith("mouse_gene_v9.9.h5")
    assert (tmp_path / "out" / "mouse_gene_v9.9.h5").read_bytes() == data
    # "latest" is 9.9 here, the newest fixed release this session knows
    code = main(["download", "mouse", "-o", str(tmp_path / "out2"), "-q"])
    assert code == 0 and (tmp_path / "out2" / "mouse_gene_v9.9.h5").read_bytes() == data
    assert "warning: could not read the ARCHS4 release list" in capsys.readouterr().err


def test_download_checksum_mismatch_exits_1(site, tmp_path, capsys):
    srv, _, _ = site
    code = main(["download", "mouse", "--version", "9.9", "--url", srv.url("mouse_gene_v9.9.h5"),
                 "--sha1", "0" * 40, "-o", str(tmp_path / "out"), "-q"])  # fmt: skip
    assert code == 1
    err = capsys.readouterr().err
    assert "SHA1" in err and "the download was deleted" in err
    assert list((tmp_path / "out").iterdir()) == []


def test_download_unknown_species_exits_1(capsys):
    assert main(["download", "rat", "-q"]) == 1
    assert "unknown species 'rat'" in capsys.readouterr().err


def test_download_help_runs_as_a_program():
    out = subprocess.run([sys.executable, "-m", "archs4x", "download", "--help"],
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert "--version" in out and "resum" in out
