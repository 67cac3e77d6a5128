"""FASTQ files: find the samples of a folder, pair mates by name, and check the reads.

Mates are paired by file name: ``NAME_1`` / ``NAME_2``, ``NAME_R1`` / ``NAME_R2`` (also
Illumina's ``NAME_R1_001``), ``NAME.1`` / ``NAME.2``, with extension ``.fastq`` or ``.fq``,
gzipped (``.gz``) or not.  The orphan-read file ``NAME.fastq`` that ``fasterq-dump
--split-3`` leaves next to ``NAME_1`` / ``NAME_2`` is ignored (ARCHS4 ignores it too).  A
file without a mate is a single-end sample.  Pairs are checked: the first reads of both
mates must carry the same ids.

kallisto itself accepts broken input silently (a truncated ``.gz`` or a mate with fewer
reads is quantified from whatever it could read), so :func:`count_records` reads a file to
its end, checks the gzip stream and the 4-line structure, and the pipeline compares the
count with the reads kallisto processed.
"""

from __future__ import annotations

import gzip
import os
import re
import types
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path

from ..errors import FastqError

__all__ = [
    "FastqError",
    "Sample",
    "check_head",
    "check_pair",
    "count_records",
    "find_samples",
    "pair_files",
    "split_name",
]

_EXT = re.compile(r"\.(fastq|fq)(\.gz)?$", re.IGNORECASE)
# mate suffix: _1 _2, _R1 _R2 (optionally Illumina's _001), .1 .2 ; checked on the stem
_MATE = re.compile(r"^(?P<base>.+?)(?P<sep>[._])(?P<r>[Rr]?)(?P<mate>[12])(?P<tail>_001)?$")


@dataclass(frozen=True)
class Sample:
    """One sample: its name and its one (single-end) or two (paired-end) FASTQ files."""

    name: str
    files: tuple[Path, ...]

    @property
    def paired(self) -> bool:
        return len(self.files) == 2


def split_name(path: str | os.PathLike) -> tuple[str, int | None]:
    """Split a FASTQ file name into (sample name, mate number or None).

    Examples
    --------
    >>> split_name("data/SRR1_2.fastq.gz"), split_name("x.R1.fq"), split_name("S_R2_001.fq.gz")
    (('SRR1', 2), ('x', 1), ('S', 2))
    >>> split_name("my.sample.1.fq"), split_name("SRR1.fastq"), split_name("run_10.fastq")
    (('my.sample', 1), ('SRR1', None), ('run_10', None))
    """
    name = Path(path).name
    m = _EXT.search(name)
    if not m:
        raise ValueError(f"{name!r} is not a FASTQ file name (.fastq, .fq, optionally .gz)")
    stem = name[: m.start()]
    mm = _MATE.match(stem)
    if mm:
        return mm["base"], int(mm["mate"])
    return stem, None


def pair_files(paths) -> list[Sample]:
    """Group FASTQ files into samples by name (see the module docstring for the rules).

    Parameters
    ----------
    paths : iterable of path-like
        FASTQ files (``.fastq``/``.fq``, optionally ``.gz``).

    Returns
    -------
    list of Sample
        Sorted by sample name; paired samples list mate 1 first.

    Raises
    ------
    ValueError
        A name is not a FASTQ file name, or two files claim the same sample and mate.

    Examples
    --------
    >>> [(s.name, [f.name for f in s.files]) for s in pair_files(
    ...     ["a_1.fq.gz", "a_2.fq.gz", "a.fq.gz", "b.R2.fastq", "b.R1.fastq", "c.fastq"])]
    [('a', ['a_1.fq.gz', 'a_2.fq.gz']), ('b', ['b.R1.fastq', 'b.R2.fastq']), ('c', ['c.fastq'])]
    """
    mates: dict[str, dict[int, Path]] = {}
    plain: dict[str, Path] = {}
    for p in map(Path, paths):
        base, mate = split_name(p)
        if mate is None:
            if base in plain:
                raise ValueError(f"two files for sample {base!r}: {plain[base]} and {p}")
            plain[base] = p
            continue
        slot = mates.setdefault(base, {})
        if mate in slot:
            raise ValueError(f"two files for mate {mate} of sample {base!r}: {slot[mate]}, {p}")
        slot[mate] = p
    samples: dict[str, Sample] = {}
    for base, slot in mates.items():
        if len(slot) == 2:
            samples[base] = Sample(base, (slot[1], slot[2]))
            plain.pop(base, None)  # the --split-3 orphan reads file
        else:
            ((mate, p),) = slot.items()
            if base in plain:
                raise ValueError(f"{p} has no mate but {plain[base]} names the same sample")
            warnings.warn(f"{p} has no mate {3 - mate}: quantified as single-end", stacklevel=2)
            samples[base] = Sample(base, (p,))
    for base, p in plain.items():
        samples[base] = Sample(base, (p,))
    return [samples[k] for k in sorted(samples)]


def find_samples(folder: str | os.PathLike) -> list[Sample]:
    """The samples of the FASTQ files directly inside ``folder`` (see :func:`pair_files`).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> for n in ["x_1.fastq", "x_2.fastq", "notes.txt"]:
    ...     _ = (d / n).write_text("")
    >>> [s.name for s in find_samples(d)]
    ['x']
    """
    given = folder
    folder = Path(folder).expanduser().absolute()  # samples are run from other folders
    if not folder.is_dir():
        raise FileNotFoundError(f"no such folder: {given}")
    files = [p for p in folder.iterdir() if p.is_file() and _EXT.search(p.name)]
    if not files:
        raise FileNotFoundError(f"no FASTQ files (.fastq, .fq, .gz) in {folder}")
    return pair_files(sorted(files))


_fast_gzip: types.ModuleType  # isal.igzip when installed, else gzip (same open() API)
try:  # ISA-L inflates ~2.5x faster than zlib when installed (it releases the GIL too)
    from isal import igzip as _fast_gzip
    from isal.isal_zlib import error as _isal_error

    _GZIP_ERRORS: tuple = (EOFError, zlib.error, gzip.BadGzipFile, _isal_error)
except ImportError:  # pragma: no cover
    _fast_gzip = gzip
    _GZIP_ERRORS = (EOFError, zlib.error, gzip.BadGzipFile)


def _open(path: Path, fast: bool = False):
    with open(path, "rb") as f:
        gz = f.read(2) == b"\x1f\x8b"
    if gz:
        return (_fast_gzip if fast else gzip).open(path, "rb")
    return open(path, "rb")


def _read_id(line: bytes) -> bytes:
    rid = line[1:].split(None, 1)[0] if len(line) > 1 else b""
    if rid.endswith((b"/1", b"/2")):
        rid = rid[:-2]
    return rid


def check_head(path: str | os.PathLike, n: int = 1000) -> list[bytes]:
    """Check the FASTQ structure of the first ``n`` records and return their read ids.

    Raises
    ------
    FastqError
        Empty file, not FASTQ, a record without ``@`` / ``+``, or sequence and quality of
        different lengths (the message names the file and line).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "r.fastq"
    >>> _ = p.write_bytes(b"@r1 x\\nACGT\\n+\\nIIII\\n@r2/1\\nAC\\n+\\nII\\n")
    >>> check_head(p)
    [b'r1', b'r2']
    >>> _ = p.write_bytes(b"@r1\\nACGT\\n+\\nII\\n")
    >>> check_head(p)
    Traceback (most recent call last):
    ...
    archs4x.errors.FastqError: ...r.fastq: record 1 (line 1): sequence and quality lengths ...
    """
    path = Path(path)
    ids: list[bytes] = []
    try:
        with _open(path) as f:
            for rec in range(n):
                lines = [f.readline() for _ in range(4)]
                if not lines[0]:
                    break
                at = 4 * rec + 1
                head, seq, plus, qual = (ln.rstrip(b"\r\n") for ln in lines)
                if not head.startswith(b"@"):
                    raise FastqError(
                        f"{path}: not FASTQ: line {at} does not start with '@' ({head[:40]!r})"
                    )
                if not all(ln.endswith(b"\n") for ln in lines[:3]) or not lines[3]:
                    raise FastqError(f"{path}: record {rec + 1} (line {at}) is truncated")
                if not plus.startswith(b"+"):
                    raise FastqError(f"{path}: record {rec + 1}: line {at + 2} is not '+'")
                if len(seq) != len(qual):
                    raise FastqError(
                        f"{path}: record {rec + 1} (line {at}): sequence and quality lengths "
                        f"differ ({len(seq)} != {len(qual)})"
                    )
                ids.append(_read_id(head))
    except (OSError, EOFError, zlib.error) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise FastqError(f"{path}: cannot be read as FASTQ: {exc}") from exc
    if not ids:
        raise FastqError(f"{path}: empty FASTQ file (no reads)")
    return ids


def check_pair(first: str | os.PathLike, second: str | os.PathLike, n: int = 1000) -> None:
    """Check that two mate files start with the same read ids (and are valid FASTQ).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "a_1.fq").write_bytes(b"@r1/1\\nAC\\n+\\nII\\n")
    >>> _ = (d / "a_2.fq").write_bytes(b"@r9/2\\nAC\\n+\\nII\\n")
    >>> check_pair(d / "a_1.fq", d / "a_2.fq")
    Traceback (most recent call last):
    ...
    archs4x.errors.FastqError: mates do not match: read 1 is 'r1' in ...a_1.fq but 'r9' in ...
    """
    a, b = check_head(first, n), check_head(second, n)
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            raise FastqError(
                f"mates do not match: read {i + 1} is {x.decode(errors='replace')!r} in "
                f"{first} but {y.decode(errors='replace')!r} in {second}"
            )
    if len(a) != len(b):
        raise FastqError(f"mates do not match: {first} and {second} have different read counts")


def count_records(path: str | os.PathLike, block: int = 1 << 20) -> int:
    """Read a FASTQ file to its end and return its number of records.

    A gzipped file must be complete (CRC and length checked) and the line count a
    multiple of 4.  Decompression releases the GIL, so this can run next to kallisto.

    Raises
    ------
    FastqError
        Truncated or corrupt gzip stream, or an incomplete last record.

    Examples
    --------
    >>> import tempfile, pathlib, gzip
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "r.fq.gz"
    >>> _ = p.write_bytes(gzip.compress(b"@r1\\nAC\\n+\\nII\\n" * 5))
    >>> count_records(p)
    5
    >>> _ = p.write_bytes(p.read_bytes()[:-6])
    >>> count_records(p)
    Traceback (most recent call last):
    ...
    archs4x.errors.FastqError: ...r.fq.gz: truncated or corrupt gzip stream (...)
    """
    path = Path(path)
    lines = 0
    last = b"\n"
    try:
        with _open(path, fast=True) as f:
            while buf := f.read(block):
                lines += buf.count(b"\n")
                last = buf[-1:]
    except _GZIP_ERRORS as exc:
        raise FastqError(f"{path}: truncated or corrupt gzip stream ({exc})") from exc
    if last != b"\n":
        lines += 1
    if lines % 4:
        raise FastqError(f"{path}: {lines} lines is not a whole number of 4-line records")
    return lines // 4
