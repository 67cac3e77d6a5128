"""Fetch raw reads of SRA/ENA runs: ``fasterq-dump`` when installed, else ENA over HTTP.

``fasterq-dump --split-3 --skip-technical`` is what ARCHS4 ran (Debian package
``sra-toolkit``); it is used when found on PATH (or given).  Otherwise the run's gzipped
FASTQ files are downloaded from ENA: the file report API
(``https://www.ebi.ac.uk/ena/portal/api/filereport?accession=...&result=read_run&fields=fastq_ftp,...``)
lists them with their sizes and MD5s, and each is fetched resumably and verified.  The
``--split-3`` orphan-read file ENA also lists next to ``_1``/``_2`` is skipped (ARCHS4
ignores it) unless ``orphans=True``.

File names that come from outside (ENA's report, fasterq-dump's output) are checked: only
plain names (letters, digits, ``._-``) are written, always directly inside ``outdir``.
"""

from __future__ import annotations

import concurrent.futures
import io
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Literal

import pandas as pd
import requests

from ..download import fetch
from ..errors import DownloadError, UnknownAccessionError
from .fastq import split_name

__all__ = ["ENA_URL", "UnknownAccessionError", "ena_files", "load"]

ENA_URL = "https://www.ebi.ac.uk/ena/portal/api"
_ACCESSION = re.compile(r"^[A-Z]{2,6}\d{1,12}$")
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$")


def _check_accession(acc: str) -> str:
    acc = str(acc).strip()
    if not _ACCESSION.match(acc):
        raise ValueError(
            f"{acc!r} is not an SRA/ENA accession (e.g. SRR14457464, ERR000001, SRX..., PRJNA...)"
        )
    return acc


def _safe_target(outdir: Path, name: str) -> Path:
    if not _SAFE_NAME.match(name) or name in (".", ".."):
        raise ValueError(f"refusing unsafe file name from outside: {name!r}")
    target = (outdir / name).resolve()
    if target.parent != outdir.resolve():
        raise ValueError(f"refusing a file name that escapes {outdir}: {name!r}")
    return target


def ena_files(
    accession: str, *, ena_url: str = ENA_URL, timeout: float = 60.0
) -> dict[str, list[tuple[str, int | None, str | None]]]:
    """The FASTQ files ENA lists for an accession: ``{run: [(url, bytes, md5), ...]}``.

    URLs are as ENA gives them (``ftp.sra.ebi.ac.uk/vol1/fastq/...``, no scheme).

    Raises
    ------
    UnknownAccessionError
        ENA has no run for the accession, or the run has no FASTQ files.
    """
    acc = _check_accession(accession)
    params = {
        "accession": acc,
        "result": "read_run",
        "fields": "run_accession,fastq_ftp,fastq_bytes,fastq_md5",
        "format": "tsv",
    }
    r = requests.get(f"{ena_url.rstrip('/')}/filereport", params=params, timeout=timeout)
    if r.status_code in (204, 400, 404):
        raise UnknownAccessionError(f"unknown accession {acc!r}: ENA has no runs for it")
    r.raise_for_status()
    text = r.text.strip()
    if not text or "\n" not in text:
        raise UnknownAccessionError(f"unknown accession {acc!r}: ENA has no runs for it")
    table = pd.read_csv(io.StringIO(text), sep="\t", dtype=str).fillna("")
    if "fastq_ftp" not in table or "run_accession" not in table:
        raise DownloadError(f"unexpected ENA file report for {acc}: columns {list(table)}")
    out: dict[str, list] = {}
    for row in table.itertuples(index=False):
        run = _check_accession(row.run_accession)
        urls = [u for u in row.fastq_ftp.split(";") if u]
        if not urls:
            raise UnknownAccessionError(f"run {run} ({acc}) has no FASTQ files at ENA")
        sizes = [int(b) if b else None for b in getattr(row, "fastq_bytes", "").split(";")]
        md5s = [m or None for m in getattr(row, "fastq_md5", "").split(";")]
        sizes += [None] * (len(urls) - len(sizes))
        md5s += [None] * (len(urls) - len(md5s))
        out[run] = list(zip(urls, sizes, md5s, strict=False))
    return out


def _drop_orphans(files: list[tuple]) -> list[tuple]:
    mates = [split_name(u.rsplit("/", 1)[-1])[1] for u, *_ in files]
    if 1 in mates and 2 in mates:
        return [f for f, m in zip(files, mates, strict=True) if m is not None]
    return files


def _load_ena(acc, outdir, ena_url, scheme, orphans) -> dict[str, list[Path]]:
    runs = ena_files(acc, ena_url=ena_url)
    result = {}
    for run, files in runs.items():
        paths = []
        for url, size, md5 in files if orphans else _drop_orphans(files):
            if "://" not in url:
                url = f"{scheme}://{url}"
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"unsupported URL scheme in ENA report: {url}")
            target = _safe_target(outdir, url.rsplit("/", 1)[-1])
            paths.append(fetch(url, target, size=size, md5=md5, progress=False))
        result[run] = paths
    return result


def _load_fasterq(acc, outdir, exe, threads) -> dict[str, list[Path]]:
    done = sorted(p for p in outdir.glob(f"{acc}*.fastq") if split_name(p)[0] == acc)
    if done:
        return {acc: [p for p in done if split_name(p)[1] is not None] or done}
    with tempfile.TemporaryDirectory(prefix=f".{acc}-", dir=outdir) as tmp:
        args = [exe, "--split-3", "--skip-technical", "--threads", str(int(threads)),
                "-O", tmp, "-t", tmp, acc]  # fmt: skip
        proc = subprocess.run(args, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            msg = "\n".join(x.strip() for x in (proc.stderr, proc.stdout) if x.strip())
            raise DownloadError(
                f"fasterq-dump failed for {acc} (exit status {proc.returncode}): "
                f"{msg[-2000:] or '(no output)'}"
            )
        made = []
        for p in sorted(Path(tmp).iterdir()):
            if p.is_file() and p.name.endswith(".fastq"):
                target = _safe_target(outdir, p.name)
                os.replace(p, target)
                made.append(target)
    if not made:
        raise UnknownAccessionError(f"fasterq-dump wrote no FASTQ files for {acc}")
    mates = [p for p in made if split_name(p)[1] is not None]
    return {acc: mates or made}


def load(
    accessions: str | list[str],
    outdir: str | os.PathLike,
    *,
    method: Literal["auto", "fasterq-dump", "ena"] = "auto",
    fasterq_dump: str | None = None,
    ena_url: str = ENA_URL,
    scheme: str = "https",
    orphans: bool = False,
    threads: int = 2,
    workers: int = 4,
    progress: bool = False,
) -> dict[str, list[Path]]:
    """Download the raw reads of SRA/ENA runs into ``outdir``; return their FASTQ paths.

    Parameters
    ----------
    accessions : str or list of str
        Run accessions (``SRR...``, ``ERR...``, ``DRR...``); with ENA also experiments,
        samples or studies (all their runs).
    outdir : path-like
        Output folder (created).  Files already complete there are not downloaded again;
        partial downloads resume.
    method : {"auto", "fasterq-dump", "ena"}
        "auto" uses fasterq-dump when found on PATH, else ENA.  fasterq-dump runs in the
        working directory, so runs fetched there by ``prefetch`` (``SRR.../SRR....sra``)
        are used without the network.
    fasterq_dump : str, optional
        Path of the fasterq-dump binary.
    ena_url : str
        ENA portal API root (a local server in tests).
    scheme : str, default "https"
        Scheme for ENA's scheme-less FASTQ locations.
    orphans : bool, default False
        Also fetch the orphan-read file of paired runs.
    threads, workers : int
        fasterq-dump threads; accessions fetched at once.
    progress : bool
        Print one line per finished run to stderr.

    Returns
    -------
    dict
        ``{run accession: [FASTQ paths]}`` (mate 1 first), ready for :func:`folder`.

    Raises
    ------
    ValueError
        A malformed accession (checked before any network access).
    UnknownAccessionError
        ENA knows no run with FASTQ files for an accession.
    archs4x.errors.DownloadError (or ChecksumError on an MD5 mismatch)
        A download failed or did not match ENA's size/MD5, or fasterq-dump failed (its
        exit status and stderr are in the message).

    Examples
    --------
    >>> load(["SRR1; rm -rf /"], "/tmp/x")
    Traceback (most recent call last):
    ...
    ValueError: 'SRR1; rm -rf /' is not an SRA/ENA accession (e.g. SRR14457464, ...)
    """
    accs = [accessions] if isinstance(accessions, str) else list(accessions)
    accs = [_check_accession(a) for a in accs]
    if method not in ("auto", "fasterq-dump", "ena"):
        raise ValueError(f"method must be 'auto', 'fasterq-dump' or 'ena', not {method!r}")
    exe = None
    if method != "ena":
        exe = shutil.which(fasterq_dump or "fasterq-dump")
        exe = None if exe is None else os.path.abspath(exe)
        if exe is None and method == "fasterq-dump":
            raise FileNotFoundError(
                "fasterq-dump not found: install sra-toolkit (apt-get install sra-toolkit) "
                "or use method='ena'"
            )
    outdir = Path(outdir).expanduser().absolute()  # fasterq-dump runs in its own folder
    outdir.mkdir(parents=True, exist_ok=True)

    def one(acc):
        if exe is not None:
            return _load_fasterq(acc, outdir, exe, threads)
        return _load_ena(acc, outdir, ena_url, scheme, orphans)

    result: dict[str, list[Path]] = {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        futures = {pool.submit(one, a): a for a in accs}
        for n, fut in enumerate(concurrent.futures.as_completed(futures), 1):
            got = fut.result()
            result.update(got)
            if progress:
                for run, paths in got.items():
                    names = ", ".join(p.name for p in paths)
                    print(f"[{n}/{len(accs)}] {futures[fut]}: {run} -> {names}", file=sys.stderr)
    order = {a: i for i, a in enumerate(accs)}
    return dict(sorted(result.items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0])))
