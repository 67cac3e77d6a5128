"""The catalog of ARCHS4 release files: species x level x version, with URL, mirror, size, SHA1.

The catalog ships with archs4x (``archs4x/data/catalog.json``), so it works offline.
``refresh=True`` also reads the site's release list (the JSON at
``https://archs4.org/api/versionfile``, or ``$ARCHS4X_VERSIONFILE_URL``, or the ``url``
argument), whose entries (``version_major``, ``version_minor``, ``species``,
``data_level``, ``samples``, ``file_size``, ``checksum`` = SHA1) add or update rows for
the rest of the session.  Sizes and SHA1s are given only where published for a fixed
release.  ``"latest"`` resolves to the newest *fixed* release known (with its size and
SHA1 when published), never to the site's moving ``v2.latest.h5`` files, which are
overwritten at every release and so cannot be verified.

Unlike archs4py's ``config.json``, human transcript URLs point at transcript files.
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import asdict, dataclass, replace
from importlib import resources

import pandas as pd

__all__ = [
    "LEVELS",
    "SPECIES",
    "VERSIONFILE_URL",
    "Release",
    "parse_versionfile",
    "refresh_catalog",
    "release",
    "versions",
]

SPECIES = ("human", "mouse")
LEVELS = ("gene", "transcript", "tpm")
VERSIONFILE_URL = "https://archs4.org/api/versionfile"

_refreshed: dict[tuple[str, str, str], Release] = {}


@dataclass(frozen=True)
class Release:
    """One downloadable ARCHS4 file.

    Attributes
    ----------
    species, level, version : str
        ``human``/``mouse``, ``gene``/``transcript``/``tpm``, ``"2.5"`` or ``"latest"``.
    file : str
        File name (the name it is saved under).
    url, mirror : str
        Primary URL and fallback mirror (``""`` when there is no mirror).
    size : int or None
        Exact size in bytes, when published.
    sha1 : str or None
        SHA1 hex digest, when published.
    samples : int or None
        Number of samples, when known.
    note : str
        Caveats (moving target, unconfirmed name, ...).
    """

    species: str
    level: str
    version: str
    file: str
    url: str
    mirror: str = ""
    size: int | None = None
    sha1: str | None = None
    samples: int | None = None
    note: str = ""


def _bundle() -> dict:
    text = resources.files("archs4x").joinpath("data/catalog.json").read_text()
    return json.loads(text)


def _bundled_releases() -> list[Release]:
    return [Release(**r) for r in _bundle()["releases"]]


def _norm_species(value) -> str | None:
    s = str(value).lower()
    if "human" in s or "homo" in s or s == "hs":
        return "human"
    if "mouse" in s or "mus" in s or s == "mm":
        return "mouse"
    return None


def _norm_level(value) -> str | None:
    s = str(value).lower()
    for level in LEVELS:
        if s.startswith(level):
            return level
    return None


def parse_versionfile(doc: dict, base_url: str, mirror_url: str) -> list[Release]:
    """Turn the site's version JSON into :class:`Release` rows (unknown entries skipped).

    Examples
    --------
    >>> doc = {"versionfiles": [{"version_major": 2, "version_minor": 6, "species":
    ...     "human", "data_level": "gene", "samples": 10, "file_size": 99,
    ...     "checksum": "ab"}]}
    >>> r = parse_versionfile(doc, "https://h/files/", "https://m/")[0]
    >>> r.version, r.url, r.size, r.sha1
    ('2.6', 'https://h/files/human_gene_v2.6.h5', 99, 'ab')
    """
    out = []
    for e in doc.get("versionfiles", []):
        species, level = _norm_species(e.get("species")), _norm_level(e.get("data_level"))
        if species is None or level is None or e.get("version_major") is None:
            continue
        version = f"{e['version_major']}.{e.get('version_minor', 0)}"
        file = f"{species}_{level}_v{version}.h5"
        size = e.get("file_size")
        out.append(
            Release(
                species,
                level,
                version,
                file,
                base_url + file,
                mirror_url + file,
                int(size) if size not in (None, "") else None,
                str(e["checksum"]).lower() if e.get("checksum") else None,
                int(e["samples"]) if e.get("samples") not in (None, "") else None,
                "from the site's release list",
            )
        )
    return out


def refresh_catalog(url: str | None = None, *, timeout: float = 10.0) -> list[Release]:
    """Read the site's release list now and keep its rows for this session.

    Raises
    ------
    OSError
        If the list cannot be fetched or is not the expected JSON.
    """
    import requests

    src = url or os.environ.get("ARCHS4X_VERSIONFILE_URL") or VERSIONFILE_URL
    try:
        resp = requests.get(src, timeout=timeout)
        resp.raise_for_status()
        doc = resp.json()
    except requests.ConnectionError as exc:
        raise OSError(f"could not read the ARCHS4 release list at {src}: cannot connect") from exc
    except requests.Timeout as exc:
        raise OSError(f"could not read the ARCHS4 release list at {src}: timed out") from exc
    except requests.HTTPError as exc:
        status = exc.response.status_code if exc.response is not None else "error"
        raise OSError(f"could not read the ARCHS4 release list at {src}: HTTP {status}") from exc
    except (requests.RequestException, ValueError) as exc:
        raise OSError(f"could not read the ARCHS4 release list at {src}: {exc}") from exc
    if not isinstance(doc, dict) or "versionfiles" not in doc:
        raise OSError(f"{src} did not return a JSON object with 'versionfiles'")
    bundle = _bundle()
    rows = parse_versionfile(doc, bundle["base_url"], bundle["mirror_url"])
    for r in rows:
        _refreshed[(r.species, r.level, r.version)] = r
    return rows


def _releases(refresh_now: bool, url: str | None) -> list[Release]:
    if refresh_now:
        try:
            refresh_catalog(url)
        except OSError as exc:
            warnings.warn(f"{exc}; using the bundled catalog", RuntimeWarning, stacklevel=3)
    table = {(r.species, r.level, r.version): r for r in _bundled_releases()}
    for key, r in _refreshed.items():
        old = table.get(key)
        # Published facts win; keep the bundled note and URLs of names we already know.
        table[key] = replace(old, size=r.size, sha1=r.sha1, samples=r.samples) if old else r
    return list(table.values())


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(p) if p.isdigit() else -1 for p in version.split("."))


def _newest_fixed(rows: list[Release], species: str, level: str) -> Release | None:
    """The newest fixed (numbered) release of a species and level among ``rows``."""
    fixed = [r for r in rows if (r.species, r.level) == (species, level) and r.version != "latest"]
    return max(fixed, key=lambda r: _version_key(r.version)) if fixed else None


def _latest_rows(rows: list[Release]) -> list[Release]:
    """One ``latest`` row per species and level: a copy of the release it resolves to."""
    out = []
    for species in SPECIES:
        for level in LEVELS:
            newest = _newest_fixed(rows, species, level)
            if newest is not None:
                note = f"= {newest.version}, the newest fixed release known"
                out.append(replace(newest, version="latest", note=note))
    return out


def _check(kind: str, value, allowed) -> str:
    v = str(value).lower()
    if v not in allowed:
        raise ValueError(f"unknown {kind} {value!r}: choose from {', '.join(allowed)}")
    return v


def _order(r: Release) -> tuple:
    """Sort key: species, level, then ``latest`` and the newest version first."""
    if r.version == "latest":
        return (r.species, LEVELS.index(r.level), 0, ())
    return (r.species, LEVELS.index(r.level), 1, tuple(-p for p in _version_key(r.version)))


def versions(
    species: str | None = None,
    level: str | None = None,
    *,
    refresh: bool = False,
    url: str | None = None,
) -> pd.DataFrame:
    """The known ARCHS4 release files, newest first.

    Each species and level with a fixed release also has a ``latest`` row: a copy of the
    newest fixed release (what ``version="latest"`` downloads), its note saying which.

    Parameters
    ----------
    species : {"human", "mouse"}, optional
        Keep only this species.
    level : {"gene", "transcript", "tpm"}, optional
        Keep only this level.
    refresh : bool, default False
        Also read the site's release list (needs the network; on failure a warning is
        issued and the bundled catalog is used).
    url : str, optional
        Where to read the release list (default ``$ARCHS4X_VERSIONFILE_URL`` or
        ``https://archs4.org/api/versionfile``).

    Returns
    -------
    pandas.DataFrame
        One row per file: ``species, level, version, file, url, mirror, size, sha1,
        samples, note`` (``size``/``samples`` nullable integers, ``sha1`` None when not
        published).

    Raises
    ------
    ValueError
        For an unknown species or level.

    Examples
    --------
    >>> from archs4x.catalog import versions
    >>> v = versions("human", "gene")
    >>> v.version.tolist()[:3]
    ['latest', '2.5', '2.4']
    >>> int(v.set_index("version").loc["2.5", "size"])
    47865298452
    >>> v.iloc[0][["file", "note"]].tolist()
    ['human_gene_v2.5.h5', '= 2.5, the newest fixed release known']
    >>> versions("human", "transcript").url.str.contains("_transcript_").all()
    np.True_
    """
    if species is not None:
        species = _check("species", species, SPECIES)
    if level is not None:
        level = _check("level", level, LEVELS)
    known = _releases(refresh, url)
    rows = [
        r
        for r in known + _latest_rows(known)
        if (species is None or r.species == species) and (level is None or r.level == level)
    ]
    rows.sort(key=_order)
    df = pd.DataFrame([asdict(r) for r in rows], columns=list(Release.__dataclass_fields__))
    df["size"] = df["size"].astype("Int64")
    df["samples"] = df["samples"].astype("Int64")
    df["sha1"] = df["sha1"].astype(object).where(df["sha1"].notna(), None)
    return df


def release(
    species: str,
    level: str = "gene",
    version: str = "latest",
    *,
    refresh: bool = False,
    url: str | None = None,
) -> Release:
    """The :class:`Release` of one file.

    ``version="latest"`` gives the newest fixed release known, with its checks (its
    ``version`` is then the real one, e.g. ``"2.5"``).  An unknown version (or no fixed
    release for ``"latest"``) triggers one attempt to read the site's release list (a
    newer release may exist) before giving up.

    Raises
    ------
    ValueError
        Unknown species, level or version (the message lists the known versions).

    Examples
    --------
    >>> from archs4x.catalog import release
    >>> r = release("mouse", "gene", "2.5")
    >>> r.file, r.sha1
    ('mouse_gene_v2.5.h5', '22605c9b6c4e7502b0861d4d8591ce128907c39f')
    >>> release("human", "gene", "latest").version
    '2.5'
    """
    species = _check("species", species, SPECIES)
    level = _check("level", level, LEVELS)
    version = str(version).lower().removeprefix("v")
    for attempt in range(2):
        rows = _releases(refresh and attempt == 0, url)
        if version == "latest":
            newest = _newest_fixed(rows, species, level)
            if newest is not None:
                return newest
        for r in rows:
            if (r.species, r.level, r.version) == (species, level, version):
                return r
        if attempt == 0 and not refresh:  # a newer release may be on the site's list
            try:
                refresh_catalog(url)
            except OSError:
                break
    known = versions(species, level).version.tolist()
    if version == "latest":
        raise ValueError(
            f"no fixed release of {species} {level} files is known, so 'latest' cannot be "
            "resolved to a file with checks (the site's list was not readable or lists none); "
            "pass url= to download a file of your choice"
        )
    raise ValueError(
        f"unknown version {version!r} of {species} {level} files: known versions are "
        f"{', '.join(known)} (archs4x.versions(refresh=True) reads the site's list)"
    )
