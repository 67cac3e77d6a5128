"""A small synthetic transcriptome and RNA-seq reads simulated from known abundances.

For trying :mod:`archs4x.align` without downloading anything, and for checking it: the
true number of reads of every transcript is known, so kallisto's estimates can be
compared with it.

- :func:`make_transcriptome`: a few genes with several transcripts each, FASTA headers in
  Ensembl's exact style (``>ENST... cdna chromosome:... gene:ENSG....5
  gene_biotype:... transcript_biotype:... gene_symbol:...``, version suffixes included),
  written like Ensembl as a gzipped cDNA and an ncRNA file
  (:meth:`Transcriptome.write_fasta`).
- :func:`true_counts`: reads per transcript drawn from log-normal abundances.
- :func:`simulate_reads`: single- or paired-end FASTQ files with those counts, reads drawn
  from fragments of both strands, named like ``fasterq-dump`` output.

Examples
--------
>>> from archs4x.align.simulate import make_transcriptome, true_counts
>>> t = make_transcriptome(n_genes=3, seed=1)
>>> len(set(t.genes)), len(t.ids) == len(t.seqs) == len(true_counts(t, 100))
(3, True)
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["Transcriptome", "make_transcriptome", "revcomp", "simulate_reads", "true_counts"]

_COMP = bytes.maketrans(b"ACGT", b"TGCA")


def revcomp(seq: bytes) -> bytes:
    """Reverse complement of a DNA sequence (upper-case ``ACGT`` bytes).

    Parameters
    ----------
    seq : bytes
        The sequence.

    Returns
    -------
    bytes
        The reverse complement (other bytes are kept, reversed).

    Examples
    --------
    >>> revcomp(b"AACGTT"), revcomp(b"ACCG")
    (b'AACGTT', b'CGGT')
    """
    return seq.translate(_COMP)[::-1]


@dataclass
class Transcriptome:
    """Transcript sequences with their Ensembl-style annotation (one entry per transcript).

    Attributes
    ----------
    ids : list of str
        Versioned transcript ids (``ENST00000000101.3``), FASTA order (cDNA first, then
        ncRNA).
    genes : list of str
        Versioned gene id of each transcript.
    symbols : list of str
        Gene symbol of each transcript (``""``: no ``gene_symbol:`` in the header).
    gene_biotypes, transcript_biotypes : list of str
    seqs : list of bytes
        The sequences (``ACGT``).
    noncoding : list of bool
        Whether the transcript goes to the ncRNA file.

    Examples
    --------
    >>> t = make_transcriptome(n_genes=2, per_gene=(1, 1), seed=0)
    >>> t.header(0).split()[1:4]
    ['cdna', 'chromosome:GRCh38:1:1:900:1', 'gene:ENSG00000000001.5']
    >>> t.versionless[0], t.gene_ids[0]
    ('ENST00000000129', 'ENSG00000000001')
    """

    ids: list[str]
    genes: list[str]
    symbols: list[str]
    gene_biotypes: list[str]
    transcript_biotypes: list[str]
    seqs: list[bytes]
    noncoding: list[bool] = field(default_factory=list)

    @property
    def versionless(self) -> list[str]:
        """Transcript ids without their version suffix, as :mod:`archs4x.align` reports them."""
        return [t.rsplit(".", 1)[0] for t in self.ids]

    @property
    def gene_ids(self) -> list[str]:
        """Gene id of each transcript without its version suffix."""
        return [g.rsplit(".", 1)[0] for g in self.genes]

    def header(self, i: int) -> str:
        """The Ensembl-style FASTA header line of transcript ``i`` (with the ``>``)."""
        kind = "ncrna" if self.noncoding[i] else "cdna"
        sym = f" gene_symbol:{self.symbols[i]}" if self.symbols[i] else ""
        return (
            f">{self.ids[i]} {kind} chromosome:GRCh38:1:{1000 * i + 1}:{1000 * i + 900}:1 "
            f"gene:{self.genes[i]} gene_biotype:{self.gene_biotypes[i]} "
            f"transcript_biotype:{self.transcript_biotypes[i]}{sym} "
            f"description:synthetic gene [Source:HGNC Symbol;Acc:HGNC:{i}]"
        )

    def write_fasta(self, folder: str | os.PathLike) -> tuple[Path, Path]:
        """Write ``synthetic.cdna.all.fa.gz`` and ``synthetic.ncrna.fa.gz`` (Ensembl's split).

        Parameters
        ----------
        folder : path
            Created if missing.

        Returns
        -------
        tuple of Path
            The cDNA and the ncRNA file, ready for
            ``archs4x.align.reference(None, cdna=..., ncrna=...)``.

        Examples
        --------
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as d:
        ...     cdna, ncrna = make_transcriptome(n_genes=2, seed=0).write_fasta(d)
        ...     cdna.name, ncrna.stat().st_size > 0
        ('synthetic.cdna.all.fa.gz', True)
        """
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        paths = (folder / "synthetic.cdna.all.fa.gz", folder / "synthetic.ncrna.fa.gz")
        for path, want_nc in zip(paths, (False, True), strict=True):
            with gzip.open(path, "wt") as f:
                for i in range(len(self.ids)):
                    if self.noncoding[i] == want_nc:
                        s = self.seqs[i].decode()
                        f.write(self.header(i) + "\n")
                        f.writelines(s[j : j + 60] + "\n" for j in range(0, len(s), 60))
        return paths


def make_transcriptome(
    n_genes: int = 6,
    per_gene: tuple[int, int] = (3, 8),
    seed: int = 0,
    length: tuple[int, int] = (600, 1500),
    *,
    gene_ids: Sequence[str] | None = None,
    symbols: Sequence[str] | None = None,
) -> Transcriptome:
    """Random transcripts; those of one gene share a 5' exon, so some reads are ambiguous.

    By default genes are named ``ENSG00000000001.5``, ``ENSG00000000002.6``, ... with
    symbols ``GENE0``, ``GENE1``, ... and two annotation quirks found in Ensembl: the
    fourth gene repeats the third one's symbol (a duplicated symbol) and the fifth has no
    ``gene_symbol:`` in its headers.  The last gene's transcripts are non-coding
    (``lncRNA``; they go to the ncRNA file).

    Parameters
    ----------
    n_genes : int, default 6
        Number of genes (ignored when ``gene_ids`` is given).
    per_gene : (int, int), default (3, 8)
        Inclusive range of the number of transcripts per gene.
    seed : int, default 0
        Seed of the sequences, lengths and ids (deterministic).
    length : (int, int), default (600, 1500)
        Range of transcript lengths (plus a 120 nt shared exon).
    gene_ids : sequence of str, optional
        Gene ids to use instead (e.g. genes of an ARCHS4 file, so that the aligned counts
        can be merged with it).  A version suffix ``.1`` is added when they have none.
    symbols : sequence of str, optional
        Symbols of the genes (same length as ``gene_ids``, or ``n_genes``).

    Returns
    -------
    Transcriptome

    Examples
    --------
    >>> t = make_transcriptome()
    >>> len(t.ids), sorted(set(t.symbols))
    (40, ['', 'GENE0', 'GENE1', 'GENE2', 'GENE5'])
    >>> t = make_transcriptome(gene_ids=["ENSG00000000001", "ENSG00000000008"],
    ...                        symbols=["ACTB", "GAPDH"])
    >>> sorted(set(t.gene_ids)), sorted(set(t.symbols))
    (['ENSG00000000001', 'ENSG00000000008'], ['ACTB', 'GAPDH'])
    """
    if gene_ids is not None:
        gene_ids = [str(g) for g in gene_ids]
        n_genes = len(gene_ids)
    if n_genes < 1:
        raise ValueError(f"n_genes must be >= 1, got {n_genes}")
    if symbols is not None and len(symbols) != n_genes:
        raise ValueError(f"symbols has {len(symbols)} entries for {n_genes} genes")
    if not 1 <= per_gene[0] <= per_gene[1]:
        raise ValueError(f"per_gene must be (low, high) with 1 <= low <= high, got {per_gene}")
    if not 0 < length[0] < length[1]:
        raise ValueError(f"length must be (low, high) with 0 < low < high, got {length}")
    rng = np.random.default_rng(seed)
    t = Transcriptome([], [], [], [], [], [], [])
    tx = 100
    for g in range(n_genes):
        if gene_ids is None:
            gene = f"ENSG{g + 1:011d}.{(g % 3) + 5}"
        else:
            gene = gene_ids[g] if "." in gene_ids[g] else f"{gene_ids[g]}.1"
        if symbols is None:
            symbol = {3: "GENE2", 4: ""}.get(g, f"GENE{g}")
        else:
            symbol = str(symbols[g])
        nc = g == n_genes - 1
        exon = rng.choice(list(b"ACGT"), size=120).astype(np.uint8).tobytes()
        for _ in range(int(rng.integers(per_gene[0], per_gene[1] + 1))):
            n = int(rng.integers(*length))
            body = rng.choice(list(b"ACGT"), size=n).astype(np.uint8).tobytes()
            tx += int(rng.integers(1, 50))
            t.ids.append(f"ENST{tx:011d}.{int(rng.integers(1, 15))}")
            t.genes.append(gene)
            t.symbols.append(symbol)
            t.gene_biotypes.append("lncRNA" if nc else "protein_coding")
            t.transcript_biotypes.append(
                "lncRNA" if nc else str(rng.choice(["protein_coding", "retained_intron"]))
            )
            t.seqs.append(exon + body)
            t.noncoding.append(nc)
    return t


def true_counts(t: Transcriptome, n_reads: int, seed: int = 0) -> np.ndarray:
    """Reads per transcript drawn from log-normal abundances (about 10% get zero).

    Parameters
    ----------
    t : Transcriptome
    n_reads : int
        Total number of reads (fragments).
    seed : int, default 0

    Returns
    -------
    numpy.ndarray
        int64, one count per transcript of ``t`` (FASTA order), summing to ``n_reads``.

    Examples
    --------
    >>> t = make_transcriptome(n_genes=2, seed=0)
    >>> c = true_counts(t, 1000, seed=3)
    >>> c.shape == (len(t.ids),), int(c.sum()), bool((c == 0).any())
    (True, 1000, True)
    """
    if n_reads < 0:
        raise ValueError(f"n_reads must be >= 0, got {n_reads}")
    rng = np.random.default_rng(seed)
    w = rng.lognormal(0, 1.2, len(t.ids))
    w[rng.choice(len(w), size=max(1, len(w) // 10), replace=False)] = 0
    return rng.multinomial(n_reads, w / w.sum())


def simulate_reads(
    t: Transcriptome,
    counts: np.ndarray,
    out: str | os.PathLike | tuple[str | os.PathLike, str | os.PathLike],
    *,
    read_len: int = 75,
    frag_mean: int = 200,
    frag_sd: int = 20,
    seed: int = 0,
    prefix: str = "SIM",
) -> None:
    """Write one (single-end) or two (paired-end) FASTQ files with known read counts.

    Each read comes from a fragment (normal length ``frag_mean`` +/- ``frag_sd``, at least
    ``read_len``) at a uniform position of its transcript, on either strand; the second
    mate is the reverse complement of the fragment's other end.

    Parameters
    ----------
    t : Transcriptome
    counts : array of int
        Reads per transcript (e.g. from :func:`true_counts`).
    out : path or (path, path)
        One path: single-end; a pair: the two mates.  Paths ending in ``.gz`` are gzipped.
    read_len : int, default 75
    frag_mean, frag_sd : int, default 200, 20
    seed : int, default 0
    prefix : str, default "SIM"
        Read ids are ``{prefix}.{n}``, the same in both mates, like ``fasterq-dump``.

    Examples
    --------
    >>> import gzip, tempfile
    >>> from pathlib import Path
    >>> t = make_transcriptome(n_genes=2, seed=0)
    >>> with tempfile.TemporaryDirectory() as d:
    ...     simulate_reads(t, true_counts(t, 50), Path(d) / "a.fastq.gz")
    ...     lines = gzip.open(Path(d) / "a.fastq.gz", "rt").read().splitlines()
    >>> len(lines), lines[0], len(lines[1])
    (200, '@SIM.1 1 length=75', 75)
    """
    counts = np.asarray(counts)
    if counts.shape != (len(t.ids),):
        raise ValueError(f"counts has shape {counts.shape}; expected ({len(t.ids)},)")
    if (counts < 0).any():
        raise ValueError("counts must be >= 0")
    if read_len > min(len(s) for s in t.seqs):
        raise ValueError(f"read_len={read_len} is longer than the shortest transcript")
    rng = np.random.default_rng(seed)
    paired = isinstance(out, tuple)
    paths: tuple[str | os.PathLike, ...] = out if isinstance(out, tuple) else (out,)
    handles = [
        gzip.open(p, "wb", compresslevel=1) if str(p).endswith(".gz") else open(p, "wb")
        for p in paths
    ]
    qual = b"I" * read_len
    try:
        order = np.repeat(np.arange(len(counts)), counts)
        rng.shuffle(order)
        for n, i in enumerate(order):
            seq = t.seqs[i]
            flen = int(np.clip(rng.normal(frag_mean, frag_sd), read_len, len(seq)))
            start = int(rng.integers(0, len(seq) - flen + 1))
            frag = seq[start : start + flen]
            if rng.random() < 0.5:
                frag = revcomp(frag)
            rid = f"@{prefix}.{n + 1} {n + 1} length={read_len}".encode()
            reads = [frag[:read_len], revcomp(frag)[:read_len]] if paired else [frag[:read_len]]
            for h, r in zip(handles, reads, strict=True):
                h.write(rid + b"\n" + r + b"\n+\n" + qual + b"\n")
    finally:
        for h in handles:
            h.close()
