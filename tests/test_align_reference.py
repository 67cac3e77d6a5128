"""Reference: Ensembl download from a local server, offline transcript table, index once."""
# ruff: noqa: F811  (pytest fixtures imported from tests._align_data)

from __future__ import annotations

import multiprocessing
import shutil
import threading

import pytest

from archs4x import align
from archs4x.align.reference import ensembl_urls, read_fasta_table
from archs4x.download import DownloadError
from tests._align_data import fasta, kallisto_bin, make_transcriptome, transcriptome  # noqa: F401
from tests._http import FileServer


@pytest.fixture()
def ensembl(fasta, tmp_path):
    """A local server laid out like ftp.ensembl.org/pub for human release 107."""
    root = tmp_path / "pub"
    for url, src in zip(ensembl_urls("human", 107, "http://x"), fasta, strict=True):
        dest = root / url.split("http://x/", 1)[1]
        dest.parent.mkdir(parents=True)
        shutil.copy(src, dest)
    with FileServer(root) as srv:
        yield srv


def test_table_from_headers(fasta, transcriptome):
    t = read_fasta_table(fasta)
    assert list(t.index) == transcriptome.versionless  # FASTA order, versions dropped
    assert list(t.target) == transcriptome.ids  # kallisto's names keep the version
    assert t.gene.str.contains(".", regex=False).sum() == 0
    assert t.loc[t.gene == "ENSG00000000005", "symbol"].unique().tolist() == ["ENSG00000000005"]
    assert set(t.loc[t.gene == "ENSG00000000006", "transcript_biotype"]) == {"lncRNA"}


def test_headers_without_gene_are_refused(tmp_path):
    p = tmp_path / "plain.fa"
    p.write_text(">tx1 some description\nACGT\n")
    with pytest.raises(ValueError, match="no 'gene:' field"):
        align.reference(None, cdna=p, cache_dir=tmp_path)
    dup = tmp_path / "dup.fa"
    dup.write_text(">T1.1 cdna x gene:G1.1\nACGT\n>T1.2 cdna x gene:G1.1\nACGT\n")
    with pytest.raises(ValueError, match="repeat once versions are dropped"):
        align.reference(None, cdna=dup, cache_dir=tmp_path)
    with pytest.raises(ValueError, match="unknown species"):
        align.reference("zebrafish", cache_dir=tmp_path)


def test_download_is_resumable_and_cached(ensembl, fasta, tmp_path):
    ensembl.behaviour.drop_after = 1000  # the first response breaks off after 1000 bytes
    ensembl.behaviour.drops = 1
    ref = align.reference("human", 107, cache_dir=tmp_path / "c", base_url=ensembl.url())
    assert [p.read_bytes() for p in ref.fasta] == [p.read_bytes() for p in fasta]
    ranges = [r[2] for r in ensembl.stats.requests if r[0] == "GET"]
    assert "bytes=1000-" in ranges  # resumed, not restarted
    assert ref.species == "human" and ref.release == 107
    assert len(ref.table) == len(read_fasta_table(fasta))
    ensembl.stats.reset()
    again = align.reference("human", 107, cache_dir=tmp_path / "c", base_url=ensembl.url())
    assert ensembl.stats.requests == [] and again.key == ref.key
    with pytest.raises(DownloadError, match="HTTP 404"):
        align.reference("human", 99, cache_dir=tmp_path / "c", base_url=ensembl.url())


def _build(args):
    cdna, ncrna, cache = args
    return str(align.reference(None, cdna=cdna, ncrna=ncrna, cache_dir=cache).build_index())


def test_index_built_once_by_concurrent_builders(fasta, tmp_path, kallisto_bin):
    cache = tmp_path / "cache"
    ref = align.reference(None, cdna=fasta[0], ncrna=fasta[1], cache_dir=cache)
    assert not ref.index.exists()
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(2) as pool:
        paths = pool.map(_build, [(fasta[0], fasta[1], cache)] * 2)
    results = []
    threads = [threading.Thread(target=lambda: results.append(ref.build_index())) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert set(paths) == {str(ref.index)} and set(results) == {ref.index}
    leftovers = [p.name for p in ref.index.parent.iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []
    mtime = ref.index.stat().st_mtime_ns
    ref.build_index()
    assert ref.index.stat().st_mtime_ns == mtime  # reused, not rebuilt
    assert ref.index_ready()
    # a different transcriptome gets a different index (content hash)
    other = make_transcriptome(seed=5).write_fasta(tmp_path / "other")
    assert align.reference(None, cdna=other[0], cache_dir=cache).index != ref.index


def test_index_task_is_one_key(fasta, tmp_path):
    ref = align.reference(None, cdna=fasta[0], cache_dir=tmp_path)
    assert ref.index_task().key == ref.index_task().key == f"index-{ref.key}"
