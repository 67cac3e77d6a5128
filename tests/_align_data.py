"""A small synthetic transcriptome and reads simulated from known abundances.

Used by the alignment tests and benchmark: a few genes, tens of transcripts, FASTA headers
in Ensembl's exact style (``>ENST... cdna chromosome:... gene:ENSG....5 gene_biotype:...
transcript_biotype:... gene_symbol:...``, version suffixes included), split like Ensembl
into a cDNA and an ncRNA file, gzipped.  Reads are drawn from fragments of the transcripts
(both strands), so kallisto's estimated counts should track the true counts closely.
"""

from __future__ import annotations

import gzip
import os as _os
import shutil as _shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

_COMP = bytes.maketrans(b"ACGT", b"TGCA")


def revcomp(seq: bytes) -> bytes:
    return seq.translate(_COMP)[::-1]


@dataclass
class Transcriptome:
    """Transcript sequences with their Ensembl-style annotation."""

    ids: list[str]  # versioned transcript ids, FASTA order (cDNA first, then ncRNA)
    genes: list[str]  # versioned gene id of each transcript
    symbols: list[str]  # gene symbol of each transcript ("" = no symbol in the header)
    gene_biotypes: list[str]
    transcript_biotypes: list[str]
    seqs: list[bytes]
    noncoding: list[bool] = field(default_factory=list)

    @property
    def versionless(self) -> list[str]:
        return [t.rsplit(".", 1)[0] for t in self.ids]

    def header(self, i: int) -> str:
        kind = "ncrna" if self.noncoding[i] else "cdna"
        sym = f" gene_symbol:{self.symbols[i]}" if self.symbols[i] else ""
        return (
            f">{self.ids[i]} {kind} chromosome:GRCh38:1:{1000 * i + 1}:{1000 * i + 900}:1 "
            f"gene:{self.genes[i]} gene_biotype:{self.gene_biotypes[i]} "
            f"transcript_biotype:{self.transcript_biotypes[i]}{sym} "
            f"description:synthetic gene [Source:HGNC Symbol;Acc:HGNC:{i}]"
        )

    def write_fasta(self, folder: Path) -> tuple[Path, Path]:
        """Write ``cdna.all.fa.gz`` and ``ncrna.fa.gz`` (Ensembl's split); return both paths."""
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
    n_genes: int = 6, per_gene: tuple[int, int] = (3, 8), seed: int = 0, length=(600, 1500)
) -> Transcriptome:
    """Random transcripts; those of one gene share a 5' exon (so some reads are ambiguous).

    Gene 2 has two symbols' worth of trouble: genes 2 and 3 share a symbol (a duplicated
    symbol, as in Ensembl); gene 4 has no symbol in its headers.  The last gene's
    transcripts are non-coding (they go to the ncRNA file).
    """
    rng = np.random.default_rng(seed)
    t = Transcriptome([], [], [], [], [], [], [])
    tx = 100
    for g in range(n_genes):
        gene = f"ENSG{g + 1:011d}.{(g % 3) + 5}"
        symbol = {3: "GENE2", 4: ""}.get(g, f"GENE{g}")
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
    """Reads per transcript drawn from log-normal abundances (a few transcripts get zero)."""
    rng = np.random.default_rng(seed)
    w = rng.lognormal(0, 1.2, len(t.ids))
    w[rng.choice(len(w), size=max(1, len(w) // 10), replace=False)] = 0
    return rng.multinomial(n_reads, w / w.sum())


def _qual(n: int) -> bytes:
    return b"I" * n


def simulate_reads(
    t: Transcriptome,
    counts: np.ndarray,
    out: Path | tuple[Path, Path],
    *,
    read_len: int = 75,
    frag_mean: int = 200,
    frag_sd: int = 20,
    seed: int = 0,
    prefix: str = "SIM",
) -> None:
    """Write one (single-end) or two (paired, mates ``/1``-less SRA style) FASTQ files.

    ``out`` ending in ``.gz`` is gzipped.  Read ids are ``{prefix}.{n}``, the same in both
    mates, like ``fasterq-dump`` output.
    """
    rng = np.random.default_rng(seed)
    paired = isinstance(out, tuple)
    paths = out if paired else (out,)
    handles = [
        gzip.open(p, "wb", compresslevel=1) if str(p).endswith(".gz") else open(p, "wb")
        for p in paths
    ]
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
                h.write(rid + b"\n" + r + b"\n+\n" + _qual(len(r)) + b"\n")
    finally:
        for h in handles:
            h.close()


# ---------------------------------------------------------------------------- fixtures
# Imported by the tests/test_align_*.py modules.


def require_kallisto() -> str:
    """kallisto's path; skip the test without it, unless ARCHS4X_REQUIRE_KALLISTO=1 (CI)."""
    exe = _shutil.which(_os.environ.get("ARCHS4X_KALLISTO") or "kallisto")
    if exe is None:
        msg = (
            "kallisto is not installed (apt-get install kallisto, or set ARCHS4X_KALLISTO); "
            "alignment tests need the real binary"
        )
        if _os.environ.get("ARCHS4X_REQUIRE_KALLISTO") == "1":
            pytest.fail(msg + " and ARCHS4X_REQUIRE_KALLISTO=1")
        pytest.skip(msg)
    return exe


@pytest.fixture(scope="module")
def kallisto_bin():
    return require_kallisto()


@pytest.fixture(scope="module")
def transcriptome():
    return make_transcriptome()


@pytest.fixture(scope="module")
def fasta(transcriptome, tmp_path_factory):
    return transcriptome.write_fasta(tmp_path_factory.mktemp("fasta"))


@pytest.fixture(scope="module")
def ref(fasta, tmp_path_factory, kallisto_bin):
    from archs4x.align import reference

    r = reference(None, cdna=fasta[0], ncrna=fasta[1], cache_dir=tmp_path_factory.mktemp("cache"))
    r.build_index()
    return r


@dataclass
class Reads:
    truth: np.ndarray
    single: Path
    paired: tuple[Path, Path]


@pytest.fixture(scope="module")
def reads(transcriptome, tmp_path_factory):
    d = tmp_path_factory.mktemp("reads")
    truth = true_counts(transcriptome, 20_000, seed=1)
    single = d / "single.fastq.gz"
    simulate_reads(transcriptome, truth, single, seed=2)
    paired = (d / "pair_1.fastq.gz", d / "pair_2.fq")
    simulate_reads(transcriptome, truth, paired, seed=3)
    return Reads(truth, single, paired)
