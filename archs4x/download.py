"""Resumable, verified downloads of ARCHS4 files.

:func:`counts` streams a release file to ``<name>.part`` with a progress bar and
renames it to its final name only once it is known to be whole and right:

* **Resuming never splices two versions.**  An interrupted ``.part`` is resumed with an
  HTTP ``Range`` request guarded by ``If-Range`` with the validator the server gave for
  the bytes already on disk (its strong ``ETag``, else its ``Last-Modified`` date, kept
  in ``<name>.part.json``); the ``206`` answer must carry the same validator and total
  size, else the ``.part`` is discarded and the download restarts from zero.  Without a
  validator there is nothing to resume safely: the download restarts from zero.  A
  server that ignores ``Range`` (``200``) restarts the file too.
* **A body must be known complete.**  It must reach the length the server announced; a
  body whose end cannot be known (no ``Content-Length``, not chunked: the server just
  closes the connection) is accepted only if it has the expected size.
* **Then verified**: size and SHA1 when known (a mismatch deletes the ``.part``) and, for
  ARCHS4 files, that the file opens as an ARCHS4 file of the expected level and shape.

Transient failures are retried with exponential backoff, then the mirror is tried.  No
telemetry: the only requests are the file downloads.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import requests
import urllib3

from .catalog import Release, release
from .errors import ChecksumError, DownloadError, NotArchs4Error
from .storage.locks import file_lock

__all__ = ["ChecksumError", "DownloadError", "check_archs4_file", "counts", "fetch"]

CHUNK = 1 << 16  # bytes per read: what a dropped connection can lose
# errors raised by the raw stream when a connection breaks mid-body
_STREAM_ERRORS = (urllib3.exceptions.HTTPError, http.client.HTTPException)
_TRANSIENT = {408, 425, 429, 500, 502, 503, 504}


class _Permanent(Exception):
    pass


class _Changed(ConnectionError):
    """The remote file changed under a resume: the ``.part`` was discarded."""


def _sidecar(part: Path) -> Path:
    return part.with_name(part.name + ".json")


def _hash_file(path: Path, upto: int, algo: str) -> hashlib._Hash:
    h = hashlib.new(algo)
    if upto <= 0:
        return h
    with open(path, "rb") as f:
        left = upto
        while left > 0:
            block = f.read(min(CHUNK * 128, left))
            if not block:
                break
            h.update(block)
            left -= len(block)
    return h


def _check_space(folder: Path, needed: int) -> None:
    free = shutil.disk_usage(folder).free
    if needed > free:
        raise DownloadError(
            28,  # ENOSPC
            f"not enough disk space in {folder}: {needed:,} bytes needed, {free:,} free",
        )


def _progress(total: int | None, initial: int, name: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, unit="B", unit_scale=True, unit_divisor=1024,
                desc=name, disable=not enabled, dynamic_ncols=True)  # fmt: skip


def _strong_etag(etag: str | None) -> str | None:
    """An ETag usable in ``If-Range`` (weak ones are not: RFC 9110, 13.1.5)."""
    return etag if etag and not etag.startswith("W/") else None


def _validator(state: dict) -> str | None:
    """What ``If-Range`` sends for the bytes on disk: the strong ETag, else the date."""
    return _strong_etag(state.get("etag")) or state.get("last_modified") or None


def _restart(part: Path, state: dict) -> None:
    """Forget the bytes on disk: the next request starts from zero."""
    part.unlink(missing_ok=True)
    _sidecar(part).unlink(missing_ok=True)
    for key in ("etag", "last_modified", "total"):
        state.pop(key, None)
    state["hash"] = hashlib.new(state["algo"])
    state["hashed"] = 0


def _same_file(state: dict, resp: requests.Response, total: int | None) -> bool:
    """Does a 206 answer come from the file whose head is on disk?  Same validator
    (the one ``If-Range`` sent) and same total size."""
    if _strong_etag(state.get("etag")):
        same = resp.headers.get("ETag") == state["etag"]
    elif state.get("last_modified"):
        same = resp.headers.get("Last-Modified") == state["last_modified"]
    else:
        same = False
    return same and (state.get("total") is None or total == state["total"])


def _attempt(url, part, state, *, timeout, progress, name):
    """One GET of ``url`` from the bytes on disk; returns when the body is complete."""
    offset = part.stat().st_size if part.exists() else 0
    if offset and _validator(state) is None:
        _restart(part, state)  # nothing proves the bytes on disk are of this file
        offset = 0
    if state.get("hashed") != offset:  # hash what is already on disk (resume)
        state["hash"] = _hash_file(part, offset, state["algo"])
        state["hashed"] = offset
    headers = {"Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
        headers["If-Range"] = _validator(state) or ""
    with requests.get(url, headers=headers, stream=True, timeout=timeout) as resp:
        if resp.status_code == 416 and offset:  # nothing left to send, or a stale part
            told = resp.headers.get("Content-Range", "").rpartition("/")[2]
            if told.isdigit() and int(told) == offset and told == str(state.get("total")):
                return
            _restart(part, state)
            raise _Changed("server refused the resume range; restarting from zero")
        if resp.status_code in (401, 403, 404, 410):
            raise _Permanent(f"HTTP {resp.status_code} for {url}")
        if resp.status_code in _TRANSIENT or resp.status_code >= 500:
            raise ConnectionError(f"HTTP {resp.status_code} for {url}")
        if resp.status_code not in (200, 206):
            raise _Permanent(f"unexpected HTTP {resp.status_code} for {url}")
        length = resp.headers.get("Content-Length")
        chunked = "chunked" in resp.headers.get("Transfer-Encoding", "").lower()
        if resp.status_code == 206:
            rng = resp.headers.get("Content-Range", "")
            start = rng.removeprefix("bytes ").split("-", 1)[0]
            if not offset or not start.isdigit() or int(start) != offset:
                raise _Permanent(f"server answered range {rng!r} for a request from {offset}")
            told = rng.rpartition("/")[2]
            total = int(told) if told.isdigit() else None
            if not _same_file(state, resp, total):
                _restart(part, state)
                raise _Changed(
                    f"{url} changed since the first part was downloaded (its ETag or "
                    "Last-Modified differs); restarting from zero"
                )
            state["total"] = total
            mode = "ab"
        else:  # 200: the whole file (the server ignored Range, or the file changed)
            offset = 0
            state["hash"] = hashlib.new(state["algo"])
            state["hashed"] = 0
            state["total"] = int(length) if length and length.isdigit() else None
            mode = "wb"
        state["etag"] = resp.headers.get("ETag")
        state["last_modified"] = resp.headers.get("Last-Modified")
        expected = state.get("size")
        if expected is not None and state["total"] is not None and state["total"] != expected:
            raise _Permanent(
                f"{url} has {state['total']:,} bytes but {expected:,} are expected"
                f"{state['note']}: the remote file changed, the URL holds "
                "another file, or the expected size is wrong"
            )
        if state["total"] is not None:
            _check_space(part.parent, state["total"] - offset)
        _sidecar(part).write_text(json.dumps({
            "url": url, "etag": state["etag"], "last_modified": state["last_modified"],
            "size": state["total"],
        }))  # fmt: skip
        h = state["hash"]
        with open(part, mode) as f, _progress(state["total"], offset, name, progress) as bar:
            try:
                # read1 returns what has arrived: a dropped connection loses nothing
                # already received, and the retry resumes from the exact byte.
                read = getattr(resp.raw, "read1", resp.raw.read)
                while block := read(CHUNK):
                    f.write(block)
                    h.update(block)
                    offset += len(block)
                    state["hashed"] = offset
                    bar.update(len(block))
            finally:
                f.flush()
                os.fsync(f.fileno())
    total = state["total"]
    if total is not None and offset != total:
        raise ConnectionError(f"connection ended at byte {offset:,} of {total:,}")
    if total is None and not chunked:
        # the server closed the connection without saying how long the body is
        if expected is None:
            raise _Permanent(
                f"{url}: the server sent no Content-Length, so a body cut short cannot be "
                f"told from a complete one ({offset:,} bytes received); pass size= to accept "
                "a body of that length"
            )
        if offset < expected:
            raise ConnectionError(f"connection ended at byte {offset:,} of {expected:,}")
        if offset > expected:
            raise _Permanent(
                f"{url}: received {offset:,} bytes, more than the {expected:,} expected"
            )


def check_archs4_file(path: str | os.PathLike, rel: Release | None = None) -> None:
    """Raise unless ``path`` opens as an ARCHS4 file (of ``rel``'s level and sample count).

    Raises
    ------
    archs4x.errors.NotArchs4Error
        Not HDF5, truncated, without the ARCHS4 layout, or of another level or number
        of samples than the release it should be.

    Examples
    --------
    >>> from archs4x.datasets import example_file
    >>> check_archs4_file(example_file())
    >>> check_archs4_file(example_file(), release("human", "transcript", "2.2"))
    Traceback (most recent call last):
    ...
    archs4x.errors.NotArchs4Error: ...: a gene-level file, but ... is transcript-level
    """
    from .storage.sources import open_source

    try:
        layout = open_source(path).layout()
    except NotArchs4Error:
        raise
    except (OSError, ValueError) as exc:
        raise NotArchs4Error(f"{path} is not an ARCHS4 HDF5 file: {exc}") from None
    if rel is None:
        return
    if rel.level in ("gene", "transcript") and layout.level != rel.level:
        raise NotArchs4Error(
            f"{path}: a {layout.level}-level file, but {rel.file} is {rel.level}-level"
        )
    if rel.samples is not None and layout.n_samples != rel.samples:
        raise NotArchs4Error(
            f"{path}: {layout.n_samples:,} samples, but {rel.file} has {rel.samples:,}"
        )


def fetch(
    url: str,
    dest: str | os.PathLike,
    *,
    mirror: str | None = None,
    sha1: str | None = None,
    md5: str | None = None,
    size: int | None = None,
    check: Callable[[Path], None] | None = None,
    overwrite: bool = False,
    progress: bool = True,
    retries: int = 5,
    timeout: float = 60.0,
    backoff: float = 1.0,
) -> Path:
    """Download ``url`` (or ``mirror``) to ``dest`` through ``dest.part``, verified.

    The engine behind :func:`counts`, the Ensembl reference and ENA read downloads; see
    :func:`counts` for the parameters.  ``md5`` verifies like ``sha1`` (ENA publishes
    MD5s); ``check(path)`` runs on the complete ``.part`` before the rename (raising
    deletes it).  An existing ``dest`` of the expected size is returned without
    downloading unless ``overwrite``.  Processes fetching the same ``dest`` at once take
    turns (a file lock), so they never write one ``.part`` together.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> fetch("http://127.0.0.1:9/x.h5", pathlib.Path(tempfile.mkdtemp()) / "x.h5",
    ...       retries=0, progress=False)
    Traceback (most recent call last):
    ...
    archs4x.errors.DownloadError: download of x.h5 failed: ...
    """
    return _fetch_locked(url, dest, mirror=mirror, sha1=sha1, md5=md5, size=size, check=check,
                         overwrite=overwrite, progress=progress, retries=retries,
                         timeout=timeout, backoff=backoff, note="")  # fmt: skip


def _fetch_locked(url, dest, *, overwrite, size, **kw) -> Path:
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(dest, beside=False):
        if dest.exists() and not overwrite and (size is None or dest.stat().st_size == size):
            return dest
        return _fetch(url, dest, size=size, **kw)


def _fetch(url, dest, *, mirror, sha1, md5, size, check, progress, retries, timeout, backoff,
           note) -> Path:  # fmt: skip
    part = dest.with_name(dest.name + ".part")
    if size is not None:
        _check_space(dest.parent, size - (part.stat().st_size if part.exists() else 0))
    algo, expected_digest = ("md5", md5) if md5 and not sha1 else ("sha1", sha1)
    state: dict = {"size": size, "algo": algo, "note": note}
    side = _sidecar(part)
    if part.exists() and side.exists():
        try:
            meta = json.loads(side.read_text())
            state.update(etag=meta.get("etag"), last_modified=meta.get("last_modified"),
                         total=meta.get("size"))  # fmt: skip
        except (ValueError, AttributeError):
            pass
    if part.exists() and size is not None and part.stat().st_size > size:
        _restart(part, state)  # longer than the file can be: not a prefix of it
    errors: list[str] = []
    done = False
    for source in [u for u in (url, mirror) if u]:
        for attempt in range(retries + 1):
            if attempt:
                time.sleep(min(60.0, backoff * 2 ** (attempt - 1)))
            try:
                _attempt(source, part, state, timeout=timeout, progress=progress,
                         name=dest.name)  # fmt: skip
                done = True
                break
            except _Permanent as exc:
                errors.append(str(exc))
                break
            except (requests.RequestException, ConnectionError, OSError, *_STREAM_ERRORS) as exc:
                if isinstance(exc, DownloadError):
                    raise
                errors.append(f"{source}: {type(exc).__name__}: {exc}")
        if done:
            break
    if not done:
        raise DownloadError(
            f"download of {dest.name} failed: " + "; ".join(errors[-3:] or ["no source"])
            + (f" (partial data kept in {part}; run again to resume)" if part.exists() else "")
        )  # fmt: skip
    got = part.stat().st_size
    if size is not None and got != size:
        _restart(part, state)
        raise DownloadError(f"{dest.name}: downloaded {got:,} bytes, expected {size:,}")
    if expected_digest:
        digest = state["hash"].hexdigest()
        if digest != expected_digest.lower():
            _restart(part, state)
            raise ChecksumError(
                f"{dest.name}: {algo.upper()} {digest} does not match the expected "
                f"{expected_digest.lower()}{note}; the download was deleted"
            )
    if check is not None:
        try:
            check(part)
        except Exception:
            _restart(part, state)
            raise
    os.replace(part, dest)
    side.unlink(missing_ok=True)
    return dest


def counts(
    species: str,
    path: str | os.PathLike = ".",
    level: str = "gene",
    version: str = "latest",
    *,
    url: str | None = None,
    mirror: str | None = None,
    sha1: str | None = None,
    size: int | None = None,
    verify: bool = True,
    overwrite: bool = False,
    progress: bool = True,
    retries: int = 5,
    timeout: float = 60.0,
) -> Path:
    """Download an ARCHS4 file, resumably and verified; return its path.

    Parameters
    ----------
    species : {"human", "mouse"}
    path : path-like, default "."
        Folder to save into (created if needed).
    level : {"gene", "transcript", "tpm"}, default "gene"
    version : str, default "latest"
        A version listed by :func:`archs4x.versions` (``"2.5"``, ...).  ``"latest"`` is
        the newest fixed release known (the site's release list is read first, then the
        bundled catalog), with its size and SHA1: never the site's moving
        ``v2.latest.h5`` file, which cannot be verified.
    url, mirror : str, optional
        Download the release from these URLs instead (e.g. a local copy): the release's
        size, SHA1 and shape are still checked, and the file keeps the release's name.
    sha1, size : optional
        Override the catalog's SHA1 and size (used to verify).
    verify : bool, default True
        Check the SHA1 when one is known (``False`` if a published checksum is wrong).
    overwrite : bool, default False
        Download again even if the final file exists.
    progress : bool, default True
        Show a progress bar (size, rate, ETA).
    retries : int, default 5
        Retries per source on transient errors (exponential backoff).
    timeout : float, default 60
        Seconds to wait for the server at connect and between received bytes.

    Returns
    -------
    pathlib.Path
        The verified file: the size and SHA1 of the release when published, and always
        that it opens as an ARCHS4 file of the release's level (and sample count, when
        known).  An existing final file of the right size is returned without
        downloading (it was verified when it was renamed).

    Raises
    ------
    ValueError
        Unknown species, level or version.
    DownloadError
        HTTP 404 (or other permanent HTTP error) on every source, retries exhausted
        (the ``.part`` is kept and the next call resumes it), not enough disk space, a
        size that differs from the release's, or a body that cannot be known complete.
    ChecksumError
        The SHA1 does not match (the ``.part`` is deleted).
    archs4x.errors.NotArchs4Error
        The complete file is not an ARCHS4 file of the release's shape (deleted).

    Examples
    --------
    >>> from archs4x.download import counts
    >>> counts("rat")
    Traceback (most recent call last):
    ...
    ValueError: unknown species 'rat': choose from human, mouse
    """
    rel = release(species, level, version, refresh=str(version).lower() == "latest")
    dest = Path(path).expanduser() / rel.file
    size = size if size is not None else rel.size
    sha1 = sha1 if sha1 is not None else rel.sha1
    return _fetch_locked(
        url or rel.url,
        dest,
        mirror=mirror if mirror is not None else (rel.mirror if url is None else None) or None,
        sha1=sha1 if verify else None,
        md5=None,
        size=size,
        check=lambda p: check_archs4_file(p, rel),
        overwrite=overwrite,
        progress=progress,
        retries=retries,
        timeout=timeout,
        backoff=1.0,
        note=f" (release {rel.species} {rel.level} {rel.version})",
    )
