"""Resumable, verified downloads of ARCHS4 files.

:func:`counts` streams a release file to ``<name>.part`` with a progress bar, resumes an
existing ``.part`` with an HTTP ``Range`` request (guarded by ``If-Range`` with the
ETag seen before, so a replaced remote file restarts from zero), copes with servers that
ignore ``Range`` (a ``200`` answer restarts the file), retries transient failures with
exponential backoff, falls back to the mirror, verifies the size and SHA1 when known,
and renames the file to its final name only after verification.  A checksum mismatch
deletes the ``.part`` and raises: nothing that looks complete is left behind.  No
telemetry: the only requests are the file downloads.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import shutil
import time
from pathlib import Path

import requests
import urllib3

from .catalog import release
from .errors import ChecksumError, DownloadError
from .storage.locks import file_lock

__all__ = ["ChecksumError", "DownloadError", "counts", "fetch"]

CHUNK = 1 << 16  # bytes per read: what a dropped connection can lose
# errors raised by the raw stream when a connection breaks mid-body
_STREAM_ERRORS = (urllib3.exceptions.HTTPError, http.client.HTTPException)
_TRANSIENT = {408, 425, 429, 500, 502, 503, 504}


class _Permanent(Exception):
    pass


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


def _attempt(url, part, state, *, timeout, progress, name):
    """One GET of ``url`` from ``state['offset']``; returns True when the body ended."""
    offset = part.stat().st_size if part.exists() else 0
    if state.get("hashed") != offset:  # hash what is already on disk (resume)
        state["hash"] = _hash_file(part, offset, state["algo"])
        state["hashed"] = offset
    headers = {"Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
        if state.get("etag"):
            headers["If-Range"] = state["etag"]
    with requests.get(url, headers=headers, stream=True, timeout=timeout) as resp:
        if resp.status_code == 416 and offset:  # nothing left to send, or a stale part
            total = resp.headers.get("Content-Range", "").rpartition("/")[2]
            if total.isdigit() and int(total) == offset:
                state["total"] = offset
                return True
            part.unlink()
            state.pop("etag", None)
            raise ConnectionError("server refused the resume range; restarting")
        if resp.status_code in (401, 403, 404, 410):
            raise _Permanent(f"HTTP {resp.status_code} for {url}")
        if resp.status_code in _TRANSIENT or resp.status_code >= 500:
            raise ConnectionError(f"HTTP {resp.status_code} for {url}")
        if resp.status_code not in (200, 206):
            raise _Permanent(f"unexpected HTTP {resp.status_code} for {url}")
        length = resp.headers.get("Content-Length")
        if resp.status_code == 206:
            rng = resp.headers.get("Content-Range", "")
            start = rng.removeprefix("bytes ").split("-", 1)[0]
            if not start.isdigit() or int(start) != offset:
                raise _Permanent(f"server answered range {rng!r} for a request from {offset}")
            total = rng.rpartition("/")[2]
            state["total"] = int(total) if total.isdigit() else None
            mode = "ab"
        else:  # 200: the whole file (the server ignored Range, or the file changed)
            offset = 0
            state["hash"] = hashlib.new(state["algo"])
            state["total"] = int(length) if length and length.isdigit() else None
            mode = "wb"
        expected = state.get("size")
        if expected is not None and state["total"] is not None and state["total"] != expected:
            raise _Permanent(
                f"{url} has {state['total']:,} bytes but the catalog says {expected:,}: "
                "the remote file changed or the catalog entry is wrong"
            )
        if state["total"] is not None:
            _check_space(part.parent, state["total"] - offset)
        etag = resp.headers.get("ETag")
        state["etag"] = etag
        _sidecar(part).write_text(json.dumps({"url": url, "etag": etag, "size": state["total"]}))
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
        if state["total"] is not None and offset != state["total"]:
            raise ConnectionError(f"connection ended at byte {offset:,} of {state['total']:,}")
        return True


def fetch(
    url: str,
    dest: str | os.PathLike,
    *,
    mirror: str | None = None,
    sha1: str | None = None,
    md5: str | None = None,
    size: int | None = None,
    overwrite: bool = False,
    progress: bool = True,
    retries: int = 5,
    timeout: float = 60.0,
    backoff: float = 1.0,
) -> Path:
    """Download ``url`` (or ``mirror``) to ``dest`` through ``dest.part``, verified.

    The engine behind :func:`counts`, the Ensembl reference and ENA read downloads; see
    :func:`counts` for the parameters.  ``md5`` verifies like ``sha1`` (ENA publishes
    MD5s).  An existing ``dest`` of the expected size is returned without downloading
    unless ``overwrite``.  Processes fetching the same ``dest`` at once take turns (a
    file lock), so they never write one ``.part`` together.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> fetch("http://127.0.0.1:9/x.h5", pathlib.Path(tempfile.mkdtemp()) / "x.h5",
    ...       retries=0, progress=False)
    Traceback (most recent call last):
    ...
    archs4x.errors.DownloadError: download of x.h5 failed: ...
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(dest, beside=False):
        if dest.exists() and not overwrite and (size is None or dest.stat().st_size == size):
            return dest
        return _fetch(
            url, dest, mirror=mirror, sha1=sha1, md5=md5, size=size,
            progress=progress, retries=retries, timeout=timeout, backoff=backoff,
        )  # fmt: skip


def _fetch(url, dest, *, mirror, sha1, md5, size, progress, retries, timeout, backoff) -> Path:
    part = dest.with_name(dest.name + ".part")
    if size is not None:
        _check_space(dest.parent, size - (part.stat().st_size if part.exists() else 0))
    algo, expected_digest = ("md5", md5) if md5 and not sha1 else ("sha1", sha1)
    state: dict = {"size": size, "algo": algo}
    side = _sidecar(part)
    if part.exists() and side.exists():
        try:
            meta = json.loads(side.read_text())
            state["etag"] = meta.get("etag")
        except ValueError:
            pass
    if size is not None and part.exists() and part.stat().st_size > size:
        part.unlink()  # longer than the file can be: not a prefix of it
    errors: list[str] = []
    done = False
    for source in [u for u in (url, mirror) if u]:
        for attempt in range(retries + 1):
            if attempt:
                time.sleep(min(60.0, backoff * 2 ** (attempt - 1)))
            try:
                done = _attempt(source, part, state, timeout=timeout, progress=progress,
                                name=dest.name)  # fmt: skip
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
        part.unlink()
        raise DownloadError(f"{dest.name}: downloaded {got:,} bytes, expected {size:,}")
    if expected_digest:
        digest = state["hash"].hexdigest()
        if digest != expected_digest.lower():
            part.unlink()
            side.unlink(missing_ok=True)
            raise ChecksumError(
                f"{dest.name}: {algo.upper()} {digest} does not match the expected "
                f"{expected_digest.lower()}; the download was deleted"
            )
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
        A version listed by :func:`archs4x.versions` (``"2.5"``, ``"latest"``, ...).
    url, mirror : str, optional
        Override the catalog's URLs (e.g. a local copy of the files).
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
        The verified file.  An existing final file of the right size is returned
        without downloading (it was verified when it was renamed).

    Raises
    ------
    ValueError
        Unknown species, level or version.
    DownloadError
        HTTP 404 (or other permanent HTTP error) on every source, retries exhausted
        (the ``.part`` is kept and the next call resumes it), not enough disk space, or
        a size that differs from the catalog.
    ChecksumError
        The SHA1 does not match (the ``.part`` is deleted).

    Examples
    --------
    >>> from archs4x.download import counts
    >>> counts("rat")
    Traceback (most recent call last):
    ...
    ValueError: unknown species 'rat': choose from human, mouse
    """
    rel = release(species, level, version)
    folder = Path(path).expanduser()
    dest = folder / (Path(url).name if url and not url.endswith("/") else rel.file)
    size = size if size is not None else (rel.size if url is None else None)
    sha1 = sha1 if sha1 is not None else (rel.sha1 if url is None else None)
    return fetch(
        url or rel.url,
        dest,
        mirror=mirror if mirror is not None else (rel.mirror if url is None else None),
        sha1=sha1 if verify else None,
        size=size,
        overwrite=overwrite,
        progress=progress,
        retries=retries,
        timeout=timeout,
    )
