"""The reference transcriptome: Ensembl FASTA, the transcript -> gene table, the index.

ARCHS4 v2 quantifies against Ensembl release 107's ``cdna.all`` plus ``ncrna`` FASTA
(:func:`reference` downloads both, resumably, into a cache folder).  The transcript ->
gene -> symbol / biotype table is read from the FASTA headers themselves (``gene:``,
``gene_biotype:``, ``transcript_biotype:``, ``gene_symbol:``), offline; ids lose their
version suffix (``ENST00000415118.1`` -> ``ENST00000415118``).  A gene without
``gene_symbol:`` gets its Ensembl id as symbol (as archs4py's BioMart mapping does).

The kallisto index is built once per reference: its file name is the SHA-256 of the
FASTA contents (and k), so a changed FASTA gets a new index; builders take a file lock
and write to a temporary name renamed into place, so concurrent builders (threads,
processes, cluster workers on a shared file system) never corrupt it.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import dask
import numpy as np
import pandas as pd

from ..download import fetch
from ..storage.locks import file_lock
from .kallisto import build_index, find_kallisto, kallisto_version

__all__ = [
    "ENSEMBL_URL",
    "SPECIES",
    "Reference",
    "ensembl_urls",
    "read_fasta_table",
    "reference",
    "versionless",
]

ENSEMBL_URL = "https://ftp.ensembl.org/pub"

#: species -> (Ensembl name, file prefix); assembly depends on the release
SPECIES = {
    "human": ("homo_sapiens", "Homo_sapiens"),
    "mouse": ("mus_musculus", "Mus_musculus"),
}
_ALIASES = {"homo_sapiens": "human", "mus_musculus": "mouse", "hsapiens": "human"}
_VERSION = re.compile(r"\.\d+$")
_FIELD = re.compile(rb"(\w+):(\S+)")
TABLE_COLUMNS = ["target", "gene", "symbol", "gene_biotype", "transcript_biotype"]


def versionless(ids) -> list[str]:
    """Drop Ensembl version suffixes (only a trailing ``.<digits>``).

    Examples
    --------
    >>> versionless(["ENST00000415118.1", "ENSG00000223972.5", "ENST00000456328", "tx.a"])
    ['ENST00000415118', 'ENSG00000223972', 'ENST00000456328', 'tx.a']
    """
    return [_VERSION.sub("", str(i)) for i in ids]


def _assembly(species: str, release: int) -> str:
    if species == "human":
        return "GRCh38"
    return "GRCm39" if release >= 103 else "GRCm38"


def canonical_species(species: str) -> str:
    s = str(species).lower()
    s = _ALIASES.get(s, s)
    if s not in SPECIES:
        raise ValueError(f"unknown species {species!r}: expected one of {sorted(SPECIES)}")
    return s


def ensembl_urls(species: str, release: int = 107, base_url: str = ENSEMBL_URL) -> list[str]:
    """The cDNA and ncRNA FASTA URLs of an Ensembl release (what ARCHS4 indexes).

    Examples
    --------
    >>> for u in ensembl_urls("mouse", 107):
    ...     print(u)
    https://ftp.ensembl.org/pub/release-107/fasta/mus_musculus/cdna/Mus_musculus.GRCm39.cdna.all.fa.gz
    https://ftp.ensembl.org/pub/release-107/fasta/mus_musculus/ncrna/Mus_musculus.GRCm39.ncrna.fa.gz
    """
    sp = canonical_species(species)
    name, prefix = SPECIES[sp]
    stem = f"{prefix}.{_assembly(sp, int(release))}"
    root = f"{base_url.rstrip('/')}/release-{int(release)}/fasta/{name}"
    return [f"{root}/cdna/{stem}.cdna.all.fa.gz", f"{root}/ncrna/{stem}.ncrna.fa.gz"]


def _open(path: Path):
    with open(path, "rb") as f:
        gz = f.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rb") if gz else open(path, "rb")


def read_fasta_table(paths) -> pd.DataFrame:
    """The transcript table of Ensembl FASTA files, from their headers only.

    Returns
    -------
    pandas.DataFrame
        Indexed by versionless transcript id, in FASTA order, with columns ``target``
        (the id as kallisto reports it), ``gene`` (versionless), ``symbol``,
        ``gene_biotype`` and ``transcript_biotype``.

    Raises
    ------
    ValueError
        A header lacks ``gene:``, no sequences, or two transcripts share an id once
        versions are dropped.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "x.fa"
    >>> _ = p.write_text(">ENST01.2 cdna chromosome:GRCh38:1:1:9:1 gene:ENSG07.5 "
    ...     "gene_biotype:protein_coding gene_symbol:ABC\\nACGT\\n")
    >>> read_fasta_table([p]).loc["ENST01", ["target", "gene", "symbol"]].tolist()
    ['ENST01.2', 'ENSG07', 'ABC']
    """
    rows = []
    for path in map(Path, paths):
        with _open(path) as f:
            for n, line in enumerate(f, 1):
                if not line.startswith(b">"):
                    continue
                head = line[1:].split(b" description:", 1)[0].rstrip()
                target = head.split(None, 1)[0].decode()
                fields = dict(_FIELD.findall(head))
                if b"gene" not in fields:
                    raise ValueError(
                        f"{path}: line {n}: FASTA header has no 'gene:' field "
                        f"(Ensembl cDNA/ncRNA headers are expected): {line[:120]!r}"
                    )
                gene = _VERSION.sub("", fields[b"gene"].decode())
                rows.append(
                    (
                        target,
                        gene,
                        fields.get(b"gene_symbol", gene.encode()).decode(),
                        fields.get(b"gene_biotype", b"").decode(),
                        fields.get(b"transcript_biotype", b"").decode(),
                    )
                )
    if not rows:
        raise ValueError(f"no FASTA records in {[str(p) for p in paths]}")
    table = pd.DataFrame(rows, columns=TABLE_COLUMNS)
    table.index = pd.Index(versionless(table["target"]), name="transcript")
    dup = table.index[table.index.duplicated()]
    if len(dup):
        raise ValueError(f"transcript ids repeat once versions are dropped: {list(dup[:5])}")
    return table


def _sha256(paths, k: int) -> str:
    h = hashlib.sha256(f"kallisto-index k={k}\n".encode())
    for p in paths:
        with open(p, "rb") as f:
            while b := f.read(1 << 20):
                h.update(b)
        h.update(b"\0")
    return h.hexdigest()


@dataclass(eq=False)
class Reference:
    """A transcriptome to quantify against: FASTA files, transcript table, index path.

    Attributes
    ----------
    fasta : tuple of Path
        The FASTA files, indexed together in this order.
    table : pandas.DataFrame
        Transcripts (versionless ids, FASTA order) -> ``target``, ``gene``, ``symbol``,
        ``gene_biotype``, ``transcript_biotype`` (see :func:`read_fasta_table`).
    index : Path
        Where the kallisto index lives (built by :meth:`build_index` / :meth:`index_task`).
    key : str
        SHA-256 of the FASTA contents and k.
    """

    fasta: tuple[Path, ...]
    table: pd.DataFrame = field(repr=False)
    index: Path
    key: str
    k: int = 31
    species: str | None = None
    release: int | None = None

    def __dask_tokenize__(self):
        return ("archs4x.align.Reference", self.key, str(self.index), self.k)

    @property
    def genes(self) -> pd.DataFrame:
        """One row per gene (sorted by Ensembl id): ``symbol`` and ``biotype``."""
        g = self.table.drop_duplicates("gene").set_index("gene").sort_index()
        out = g[["symbol", "gene_biotype"]].rename(columns={"gene_biotype": "biotype"})
        out.index.name = "gene"
        return out

    def gene_codes(self) -> np.ndarray:
        """For each transcript (table order), the row of its gene in :attr:`genes`."""
        return self.genes.index.get_indexer(self.table["gene"]).astype(np.intp)

    def index_ready(self, kallisto: str | None = None) -> bool:
        """True when the index exists and was built by this kallisto version."""
        meta = Path(f"{self.index}.json")
        if not (self.index.exists() and meta.exists()):
            return False
        try:
            built = json.loads(meta.read_text()).get("kallisto_version")
        except ValueError:
            return False
        return built == kallisto_version(find_kallisto(kallisto))

    def build_index(self, kallisto: str | None = None) -> Path:
        """Build the kallisto index unless it is already there; return its path.

        Safe to call from many threads, processes or cluster workers at once: one
        builds (under a file lock, into a temporary file renamed into place), the others
        wait and reuse it.
        """
        if self.index_ready(kallisto):
            return self.index
        with file_lock(self.index):
            if not self.index_ready(kallisto):
                exe = find_kallisto(kallisto)
                build_index(list(self.fasta), self.index, k=self.k, kallisto=exe)
                meta = {
                    "kallisto_version": kallisto_version(exe),
                    "k": self.k,
                    "sha256": self.key,
                    "fasta": [str(p) for p in self.fasta],
                }
                tmp = Path(f"{self.index}.json.tmp")
                tmp.write_text(json.dumps(meta, indent=1))
                os.replace(tmp, f"{self.index}.json")
        return self.index

    def index_task(self, kallisto: str | None = None):
        """The index build as a ``dask.delayed`` task (one key per reference)."""
        return dask.delayed(_build, pure=True)(self, kallisto, dask_key_name=f"index-{self.key}")


def _build(ref: Reference, kallisto: str | None) -> str:
    return str(ref.build_index(kallisto))


def _default_cache() -> Path:
    from .._options import cache_dir

    return cache_dir() / "align"


def reference(
    species: str | None = "human",
    release: int = 107,
    *,
    cdna: str | os.PathLike | None = None,
    ncrna: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    base_url: str = ENSEMBL_URL,
    k: int = 31,
) -> Reference:
    """The reference transcriptome of an Ensembl release, or of local FASTA files.

    Parameters
    ----------
    species : {"human", "mouse"} or None
        Downloads ``cdna.all`` and ``ncrna`` FASTA of Ensembl ``release`` (unless
        ``cdna`` is given).  Ignored except as a label when ``cdna`` is given.
    release : int, default 107
        Ensembl release (107 is ARCHS4 v2's).
    cdna, ncrna : path-like, optional
        Local FASTA files (gzipped or not) with Ensembl-style headers, used instead of
        downloading.  ``ncrna`` is optional.
    cache_dir : path-like, optional
        Where downloads and indexes are kept (default ``$ARCHS4X_CACHE_DIR/align``, i.e.
        ``~/.cache/archs4x/align``).
    base_url : str
        Ensembl FTP/HTTP root (a mirror, or a local server in tests).
    k : int, default 31
        k-mer length of the index (ARCHS4: kallisto's default 31).

    Returns
    -------
    Reference
        Nothing is indexed yet: the index is built by the first quantification (or
        :meth:`Reference.build_index`) and then reused.

    Raises
    ------
    ValueError
        Unknown species, headers without ``gene:``.
    archs4x.errors.DownloadError
        The release/species does not exist on the server (HTTP 404) or the download failed.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "t.fa").write_text(">ENST01.2 cdna chromosome:X:1:1:9:1 gene:ENSG07.5 "
    ...     "gene_biotype:lncRNA transcript_biotype:lncRNA\\nACGTACGTAC\\n")
    >>> ref = reference(None, cdna=d / "t.fa", cache_dir=d)
    >>> ref.genes
                       symbol biotype
    gene
    ENSG07             ENSG07  lncRNA
    >>> ref.index.parent == d / "index"
    True
    """
    cache = (Path(cache_dir).expanduser() if cache_dir is not None else _default_cache()).absolute()
    used_release: int | None = release
    if cdna is None:
        if species is None:
            raise ValueError("give a species ('human' or 'mouse') or local FASTA files (cdna=)")
        sp = canonical_species(species)
        folder = cache / "ensembl" / f"release-{int(release)}" / sp
        fasta = tuple(
            fetch(u, folder / u.rsplit("/", 1)[1], progress=False)
            for u in ensembl_urls(sp, release, base_url)
        )
        species = sp
    else:
        given = (cdna,) if ncrna is None else (cdna, ncrna)
        fasta = tuple(Path(p).expanduser().absolute() for p in given)  # used from other folders
        for p in fasta:
            if not p.is_file():
                raise FileNotFoundError(f"no such FASTA file: {p}")
        used_release = None
    key = _sha256(fasta, k)
    index = cache / "index" / f"{key[:20]}-k{k}.idx"
    table_cache = Path(f"{index}.table.parquet")
    if table_cache.exists():
        table = pd.read_parquet(table_cache)
    else:
        table = read_fasta_table(fasta)
        table_cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(f"{table_cache}.{os.getpid()}.tmp")
        table.to_parquet(tmp)
        os.replace(tmp, table_cache)
    return Reference(fasta, table, index, key, k, species, used_release)
