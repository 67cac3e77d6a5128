"""The release catalog: bundled facts, refresh from a local stand-in for the site's JSON."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from archs4x import catalog
from archs4x.catalog import parse_versionfile, release, versions

from ._http import FileServer


@pytest.fixture(autouse=True)
def _fresh_session(monkeypatch):
    monkeypatch.setattr(catalog, "_refreshed", {})
    monkeypatch.setenv("ARCHS4X_VERSIONFILE_URL", "http://127.0.0.1:9/versionfile")  # offline


@pytest.fixture
def site(tmp_path):
    """A local stand-in for https://archs4.org/api/versionfile."""
    doc = {"versionfiles": [
        {"version_major": 2, "version_minor": 7, "species": "human", "data_level": "gene",
         "samples": 1_100_000, "file_size": 70_000_000_000, "checksum": "A" * 40},
        {"version_major": 2, "version_minor": 5, "species": "mouse", "data_level": "gene",
         "samples": 997515, "file_size": 38960132574, "checksum": "b" * 40},
        {"version_major": 2, "version_minor": 7, "species": "zebrafish", "data_level": "gene"},
    ]}  # fmt: skip
    (tmp_path / "versionfile").write_text(json.dumps(doc))
    with FileServer(tmp_path) as srv:
        yield srv.url("versionfile")


def test_bundled_catalog_has_published_facts():
    v = versions().set_index(["species", "level", "version"])
    human = v.loc[("human", "gene", "2.5")]
    assert human["size"] == 47_865_298_452
    assert human["sha1"] == "ae96de0519b9f008b0dc3a9f944ee9007daf2f6a"
    assert v.loc[("mouse", "gene", "2.5"), "size"] == 38_960_132_574
    for sp in ("human", "mouse"):  # "latest" rows are copies of the newest fixed release
        for lv in ("gene", "transcript"):
            latest, newest = v.loc[(sp, lv, "latest")], v.loc[(sp, lv)].iloc[1]
            assert latest["file"] == newest["file"] and latest["note"].startswith("= ")
        assert (sp, "tpm", "latest") not in v.index  # no fixed TPM release is known
    assert v.loc[("human", "gene", "latest"), "sha1"] == "ae96de0519b9f008b0dc3a9f944ee9007daf2f6a"
    assert not v.file.str.contains("latest").any()  # moving targets: cannot be verified


def test_latest_resolves_to_a_concrete_release_with_checks():
    human = release("human", "gene", "latest")
    assert (human.version, human.file) == ("2.5", "human_gene_v2.5.h5")
    assert human.size == 47_865_298_452 and human.sha1 is not None
    assert release("mouse", "gene").sha1 == "22605c9b6c4e7502b0861d4d8591ce128907c39f"
    assert release("human", "transcript", "latest").version == "2.2"
    with pytest.raises(ValueError, match="no fixed release of human tpm files"):
        release("human", "tpm", "latest")


def test_latest_follows_the_sites_list(site):
    assert release("human", "gene", "latest", refresh=True, url=site).version == "2.7"
    assert release("human", "gene", "latest").sha1 == "a" * 40  # kept for the session


def test_transcript_urls_point_at_transcript_files():
    """archs4py's config points human transcript URLs at the gene file."""
    t = versions(level="transcript")
    assert len(t) >= 4
    assert t.url.str.contains("_transcript_v").all()
    assert t.mirror.str.contains("_transcript_v").all()
    assert not t.url.isin(versions(level="gene").url).any()


def test_every_row_has_a_url_named_after_its_file():
    v = versions()
    assert (v.url.str.rsplit("/", n=1).str[-1] == v.file).all()
    assert v.groupby(["species", "level"]).version.first().eq("latest").all()  # newest first


def test_filters_and_bad_choices():
    assert set(versions("mouse").species) == {"mouse"}
    with pytest.raises(ValueError, match="unknown species 'rat'"):
        versions("rat")
    with pytest.raises(ValueError, match="unknown level 'exon'"):
        versions(level="exon")


def test_refresh_adds_and_updates_releases(site):
    v = versions("human", "gene", refresh=True, url=site)
    row = v.set_index("version").loc["2.7"]
    assert row["url"].endswith("/files/human_gene_v2.7.h5")
    assert row["size"] == 70_000_000_000 and row["sha1"] == "a" * 40
    assert v.version.tolist()[:2] == ["latest", "2.7"]
    # the refreshed rows stay for the session (offline again)
    assert release("human", "gene", "2.7").size == 70_000_000_000


def test_refresh_offline_warns_and_uses_bundle():
    with pytest.warns(RuntimeWarning, match="using the bundled catalog"):
        v = versions(refresh=True)
    assert len(v) == len(versions())


def test_unknown_version_consults_the_site_then_fails_clearly(site, monkeypatch):
    monkeypatch.setenv("ARCHS4X_VERSIONFILE_URL", site)
    assert release("human", "gene", "v2.7").sha1 == "a" * 40  # found on the site's list
    with pytest.raises(ValueError, match=r"unknown version '3.0'.*latest, 2.7, 2.5"):
        release("human", "gene", "3.0")


@given(
    species=st.sampled_from(["human", "Homo sapiens", "MOUSE", "mus musculus", "yeast"]),
    level=st.sampled_from(["gene", "transcript", "tpm", "Gene counts", "exon"]),
    major=st.integers(1, 9),
    minor=st.integers(0, 20),
)
def test_parse_versionfile_normalises_or_skips(species, level, major, minor):
    doc = {"versionfiles": [{"version_major": major, "version_minor": minor,
                             "species": species, "data_level": level}]}  # fmt: skip
    rows = parse_versionfile(doc, "https://h/", "https://m/")
    known = species.lower().split()[0] in ("human", "homo", "mouse", "mus")
    if not known or level == "exon":
        assert rows == []
    else:
        (r,) = rows
        assert r.species in ("human", "mouse") and r.level in ("gene", "transcript", "tpm")
        assert r.url == f"https://h/{r.species}_{r.level}_v{major}.{minor}.h5"
        assert r.size is None and r.sha1 is None
