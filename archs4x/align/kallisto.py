"""Running kallisto: find the binary, build an index, quantify one sample.

Every call passes an argument list (never a shell string), checks kallisto's exit status
and raises :class:`KallistoError` with its stderr, and quantifies in a fresh temporary
folder that is removed afterwards, so parallel runs never share files.

The binary is, in order: the ``kallisto=`` argument, ``$ARCHS4X_KALLISTO``, ``kallisto``
on ``PATH``.  Install it with ``apt-get install kallisto`` (Debian/Ubuntu, 0.48.0) or
``conda install -c bioconda kallisto``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import KallistoError, KallistoNotFound

__all__ = [
    "KallistoError",
    "KallistoNotFound",
    "Quant",
    "build_index",
    "find_kallisto",
    "kallisto_version",
    "quant",
]

ABUNDANCE_COLUMNS = ["target_id", "length", "eff_length", "est_counts", "tpm"]


def find_kallisto(kallisto: str | os.PathLike | None = None) -> str:
    """The kallisto binary to run: ``kallisto``, else ``$ARCHS4X_KALLISTO``, else PATH.

    Raises
    ------
    KallistoNotFound
        Nothing usable was found (the message says how to install kallisto).

    Examples
    --------
    >>> find_kallisto("/no/such/kallisto")
    Traceback (most recent call last):
    ...
    archs4x.errors.KallistoNotFound: kallisto binary '/no/such/kallisto' not found...
    """
    choice = kallisto or os.environ.get("ARCHS4X_KALLISTO") or "kallisto"
    found = shutil.which(str(choice))
    if found is None:
        raise KallistoNotFound(
            f"kallisto binary {str(choice)!r} not found; install it with "
            "`apt-get install kallisto` or `conda install -c bioconda kallisto`, or pass "
            "kallisto=/path/to/kallisto (or set ARCHS4X_KALLISTO)"
        )
    return os.path.abspath(found)  # kallisto runs in a temporary folder


@lru_cache(maxsize=8)
def kallisto_version(kallisto: str | None = None) -> str:
    """The version string of the kallisto binary (e.g. ``"0.48.0"``)."""
    exe = find_kallisto(kallisto)
    out = _run([exe, "version"]).stdout
    return out.strip().rsplit(" ", 1)[-1]


def _run(args: list[str], cwd: str | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run(args, capture_output=True, text=True, cwd=cwd, check=False)
    if proc.returncode != 0:
        err = proc.stderr.strip()
        lines = [ln for ln in err.splitlines() if not ln.startswith("[index]")]
        tail = "\n".join(lines[-15:]) or "(no output)"
        raise KallistoError(
            f"kallisto failed (exit status {proc.returncode}): {' '.join(args)}\n{tail}"
        )
    return proc


def build_index(
    fasta: list[str | os.PathLike],
    index: str | os.PathLike,
    *,
    k: int = 31,
    kallisto: str | None = None,
) -> Path:
    """Run ``kallisto index`` on ``fasta`` (several files are concatenated) into ``index``.

    The index is written to a temporary name next to ``index`` and renamed into place, so
    a crash or a concurrent builder never leaves a partial index under the final name.

    Examples
    --------
    >>> import tempfile, pathlib, shutil
    >>> if shutil.which("kallisto"):
    ...     d = pathlib.Path(tempfile.mkdtemp())
    ...     seq = "ACGTTGCAAGCTAGCATCGATCGACTAGCTACGATCGTAGCTA" * 3
    ...     _ = (d / "t.fa").write_text(">T1.1\\n" + seq + "\\n")
    ...     build_index([d / "t.fa"], d / "t.idx").exists()
    ... else:
    ...     True
    True
    """
    exe = find_kallisto(kallisto)
    index = Path(index)
    index.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=index.name + ".", suffix=".tmp", dir=index.parent)
    os.close(fd)
    try:
        _run([exe, "index", "-i", tmp, "-k", str(int(k)), *map(str, fasta)])
        os.replace(tmp, index)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return index


@dataclass
class Quant:
    """kallisto's result for one sample: ``abundance`` (abundance.tsv) and ``run_info``."""

    abundance: pd.DataFrame
    run_info: dict
    seconds: float

    @property
    def n_processed(self) -> int:
        return int(self.run_info["n_processed"])

    @property
    def n_pseudoaligned(self) -> int:
        return int(self.run_info["n_pseudoaligned"])


def read_abundance(path: str | os.PathLike) -> pd.DataFrame:
    """Parse kallisto's ``abundance.tsv`` (checking its columns and values).

    Examples
    --------
    >>> import io
    >>> tsv = ("target_id\\tlength\\teff_length\\test_counts\\ttpm\\n"
    ...        "T1.1\\t1000\\t801\\t12.5\\t3.1\\n")
    >>> read_abundance(io.StringIO(tsv)).est_counts.tolist()
    [12.5]
    """
    df = pd.read_csv(path, sep="\t", dtype={"target_id": str})
    if list(df.columns) != ABUNDANCE_COLUMNS:
        raise KallistoError(f"unexpected abundance.tsv columns {list(df.columns)}")
    counts = df["est_counts"].to_numpy(dtype=np.float64)
    if not np.isfinite(counts).all() or (counts < 0).any():
        raise KallistoError("abundance.tsv holds negative or non-finite estimated counts")
    return df


def quant(
    index: str | os.PathLike,
    files: list[str | os.PathLike],
    *,
    fragment_length: float = 200,
    sd: float = 20,
    threads: int = 1,
    extra_args: Sequence[str] = (),
    kallisto: str | None = None,
    tmp_dir: str | os.PathLike | None = None,
) -> Quant:
    """Run ``kallisto quant`` on one sample in its own temporary folder.

    Every path (reads, index, binary, ``tmp_dir``) is made absolute against the caller's
    working directory first: kallisto runs inside the temporary folder.  One file is
    single-end (``--single -l fragment_length -s sd``, ARCHS4's 200/20); two
    files are paired-end (kallisto estimates the fragment length; ``-l``/``-s`` unused).

    Raises
    ------
    KallistoError
        kallisto exited with a non-zero status (stderr in the message), e.g. a corrupt
        index, or zero reads pseudoaligned.

    Examples
    --------
    >>> quant("no.idx", ["a.fq", "b.fq", "c.fq"])
    Traceback (most recent call last):
    ...
    ValueError: a sample has one (single-end) or two (paired-end) FASTQ files, got 3
    """
    files = [os.path.abspath(os.path.expanduser(f)) for f in files]
    index_path = os.path.abspath(os.path.expanduser(index))
    tmp_dir = None if tmp_dir is None else os.path.abspath(os.path.expanduser(tmp_dir))
    if len(files) not in (1, 2):
        raise ValueError(
            f"a sample has one (single-end) or two (paired-end) FASTQ files, got {len(files)}"
        )
    for f in files:
        if not os.path.isfile(f):
            raise FileNotFoundError(f"no such FASTQ file: {f}")
    if not os.path.isfile(index_path):
        raise FileNotFoundError(f"no such kallisto index: {index_path}")
    exe = find_kallisto(kallisto)
    with tempfile.TemporaryDirectory(prefix="archs4x-kallisto-", dir=tmp_dir) as out:
        args = [exe, "quant", "-i", index_path, "-o", out, "-t", str(int(threads))]
        if len(files) == 1:
            args += ["--single", "-l", repr(float(fragment_length)), "-s", repr(float(sd))]
        args += [*map(str, extra_args), *map(str, files)]
        t0 = time.perf_counter()
        _run(args, cwd=out)
        seconds = time.perf_counter() - t0
        abundance = read_abundance(os.path.join(out, "abundance.tsv"))
        with open(os.path.join(out, "run_info.json")) as info:
            run_info = json.load(info)
    return Quant(abundance, run_info, seconds)
