"""Quantification with the real kallisto on a synthetic transcriptome (no network)."""
# ruff: noqa: F811  (pytest fixtures imported from tests._align_data)

from __future__ import annotations

import gzip
import shutil
import subprocess
import threading

import dask
import numpy as np
import pandas as pd
import pytest

from archs4x import align
from archs4x.align import FastqError, KallistoError
from tests._align_data import (  # noqa: F401  (fixtures)
    fasta,
    kallisto_bin,
    reads,
    ref,
    simulate_reads,
    transcriptome,
    true_counts,
)
from tests._laziness import raise_if_dask_computes

pytestmark = pytest.mark.usefixtures("kallisto_bin")


def direct_quant(kallisto_bin, ref, files, out, single=True):
    args = [kallisto_bin, "quant", "-i", str(ref.index), "-o", str(out)]
    if single:
        args += ["--single", "-l", "200", "-s", "20"]
    subprocess.run([*args, *map(str, files)], check=True, capture_output=True)
    return pd.read_csv(out / "abundance.tsv", sep="\t", index_col=0)


def test_single_end_tracks_truth_and_equals_direct_run(ref, reads, kallisto_bin, tmp_path):
    ds = align.fastq(ref, reads.single, return_type="transcript", name="s")
    est = ds.est_counts.sel(sample="s").values
    assert np.corrcoef(est, reads.truth)[0, 1] > 0.99
    direct = direct_quant(kallisto_bin, ref, [reads.single], tmp_path / "d")
    np.testing.assert_array_equal(est, direct.loc[ref.table.target, "est_counts"].to_numpy())
    np.testing.assert_array_equal(ds.counts.values[:, 0], np.rint(est).astype(np.uint32))
    assert ds.counts.dtype == np.uint32
    assert bool(ds.paired.values[0]) is False
    assert int(ds.n_processed.values[0]) == reads.truth.sum()
    # versionless ids, Ensembl-style coordinates
    assert ds.transcript.values[0] == ref.table.index[0] and "." not in ds.transcript.values[0]
    assert set(ds.ensembl_gene.values) == set(ref.table.gene)


def test_paired_end_tracks_truth_and_equals_direct_run(ref, reads, kallisto_bin, tmp_path):
    ds = align.fastq(ref, list(reads.paired), return_type="transcript")
    assert ds.sample.values.tolist() == ["pair"]
    est = ds.est_counts.values[:, 0]
    assert np.corrcoef(est, reads.truth)[0, 1] > 0.99
    direct = direct_quant(kallisto_bin, ref, reads.paired, tmp_path / "d", single=False)
    np.testing.assert_array_equal(est, direct.loc[ref.table.target, "est_counts"].to_numpy())
    assert bool(ds.paired.values[0]) is True


def test_gene_counts_are_rounded_sums_of_transcripts(ref, reads):
    both = {"se": reads.single, "pe": reads.paired}
    tx = align.fastq(ref, both, return_type="transcript")
    genes = align.fastq(ref, both, return_type="gene")
    assert genes.counts.dtype == np.uint32 and genes.counts.dims == ("gene", "sample")
    expected = (
        tx.est_counts.to_pandas().groupby(tx.ensembl_gene.values).sum().round().astype(np.uint32)
    )
    got = genes.counts.to_pandas()
    assert list(got.index) == sorted(expected.index)
    pd.testing.assert_frame_equal(got, expected.loc[got.index], check_names=False)
    # truth at gene level
    truth = pd.Series(reads.truth, index=ref.table.gene.values).groupby(level=0).sum()
    assert np.corrcoef(got["se"], truth.loc[got.index])[0, 1] > 0.99
    assert genes.symbol.sel(gene="ENSG00000000005").item() == "ENSG00000000005"  # no symbol
    assert set(genes.biotype.values) == {"protein_coding", "lncRNA"}


def test_symbol_identifier_sums_duplicate_symbols(ref, reads):
    ens = align.fastq(ref, reads.single, return_type="gene", name="x")
    sym = align.fastq(ref, reads.single, return_type="gene", identifier="symbol", name="x")
    by_hand = ens.counts.to_pandas()["x"].groupby(ens.symbol.values).sum()
    assert sym.counts.to_pandas()["x"].to_dict() == by_hand.to_dict()
    assert int(sym.n_merged.sel(gene="GENE2")) == 2
    with pytest.raises(ValueError, match="applies to gene counts"):
        align.fastq(ref, reads.single, return_type="transcript", identifier="symbol")


def test_tpm(ref, reads):
    ds = align.fastq(ref, reads.single, return_type="tpm")
    assert ds.tpm.dims == ("transcript", "sample")
    assert ds.tpm.sum().item() == pytest.approx(1e6, rel=1e-4)


def test_lazy_until_computed(ref, reads):
    with raise_if_dask_computes():
        lazy = align.fastq(ref, reads.single, compute=False)
    assert lazy.counts.chunks is not None
    assert (lazy.counts.compute().values == align.fastq(ref, reads.single).counts.values).all()


def test_parallel_samples_do_not_collide(ref, transcriptome, tmp_path, kallisto_bin):
    # 6 different samples run concurrently on 4 threads: each equals its own direct run
    samples = {}
    for i in range(6):
        p = tmp_path / f"s{i}.fastq"
        simulate_reads(transcriptome, true_counts(transcriptome, 3000, seed=10 + i), p, seed=i)
        samples[f"s{i}"] = p
    with dask.config.set(scheduler="threads", num_workers=4):
        ds = align.fastq(ref, samples, return_type="transcript")
    for i in (0, 5):
        direct = direct_quant(kallisto_bin, ref, [samples[f"s{i}"]], tmp_path / f"d{i}")
        got = ds.est_counts.sel(sample=f"s{i}").values
        np.testing.assert_array_equal(got, direct.loc[ref.table.target, "est_counts"].to_numpy())
    # and concurrent calls from several threads (separate graphs) agree too
    out = {}

    def run(k):
        out[k] = align.fastq(ref, samples["s1"], name="s1").counts.values

    threads = [threading.Thread(target=run, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all((out[k] == out[0]).all() for k in out)


def test_folder_pairs_awkward_names(ref, reads, tmp_path):
    d = tmp_path / "run"
    d.mkdir()
    shutil.copy(reads.paired[0], d / "my.sample_R1_001.fastq.gz")
    shutil.copy(reads.paired[1], d / "my.sample_R2_001.fastq")
    shutil.copy(reads.single, d / "SRR1 b.fq.gz")
    shutil.copy(reads.paired[0], d / "x.1.fq.gz")
    shutil.copy(reads.paired[1], d / "x.2.fq")
    shutil.copy(reads.single, d / "x.fq.gz")  # --split-3 orphan: ignored
    (d / "notes.txt").write_text("not reads")
    seen = []
    ds = align.folder(ref, d, progress=lambda name, res: seen.append(name))
    assert ds.sample.values.tolist() == ["SRR1 b", "my.sample", "x"]
    assert ds.paired.values.tolist() == [False, True, True]
    assert sorted(seen) == sorted(ds.sample.values.tolist())
    np.testing.assert_array_equal(ds.counts.sel(sample="x"), ds.counts.sel(sample="my.sample"))


def test_progress_lines(ref, reads, capsys):
    align.fastq(ref, reads.single, name="p1", progress=True)
    err = capsys.readouterr().err
    assert "[1/1] p1: 20,000 reads" in err and "pseudoaligned" in err


def test_kallisto_failure_raises_with_stderr(ref, reads, tmp_path):
    bad = tmp_path / "bad.idx"
    bad.write_bytes(b"not an index at all" * 100)
    with pytest.raises(KallistoError, match=r"(?s)exit status.*incompatible indices"):
        align.kallisto.quant(bad, [reads.single])
    # through the pipeline: a cached index that got corrupted after it was built
    broken = align.reference(None, cdna=ref.fasta[0], cache_dir=tmp_path / "cache")
    broken.build_index()
    broken.index.write_bytes(b"\0" * 64)
    with pytest.raises(KallistoError, match=r"(?s)kallisto failed \(exit status \d+\).*quant"):
        align.fastq(broken, reads.single)


def test_corrupt_fastq_raises_clear_errors(ref, reads, tmp_path):
    garbage = tmp_path / "garbage.fastq"
    garbage.write_text("this is not a fastq file\n")
    with pytest.raises(FastqError, match="does not start with '@'"):
        align.fastq(ref, garbage)
    trunc = tmp_path / "trunc.fastq.gz"
    trunc.write_bytes(reads.single.read_bytes()[: reads.single.stat().st_size // 2])
    with pytest.raises(FastqError, match="truncated or corrupt gzip"):
        align.fastq(ref, trunc)
    # a mate with fewer reads: kallisto alone would silently quantify the shorter file
    short = tmp_path / "short_2.fastq"
    with open(reads.paired[1], "rb") as f:
        short.write_bytes(b"".join(f.readlines()[:4000]))
    with pytest.raises(FastqError, match="different numbers of reads"):
        align.fastq(ref, [reads.paired[0], short])
    # mates from different runs
    other = tmp_path / "other_2.fastq.gz"
    with gzip.open(reads.single) as src, gzip.open(other, "wb") as dst:
        dst.write(src.read().replace(b"@SIM.", b"@OTHER."))
    with pytest.raises(FastqError, match="mates do not match"):
        align.fastq(ref, [reads.paired[0], other])
    with pytest.raises(FileNotFoundError, match="no such FASTQ"):
        align.fastq(ref, tmp_path / "missing.fq")


def test_merge_with_archs4_dataset(ref, reads, gene_file):
    import archs4x

    ds = archs4x.open_dataset(gene_file)
    mine = align.fastq(ref, {"u1": reads.single, "u2": reads.paired})
    # pretend the ARCHS4 file uses the same gene ids for its first rows
    ids = ds.gene.values.copy()
    ids[: mine.sizes["gene"]] = mine.gene.values
    ds = ds.assign_coords(gene=ids)
    with raise_if_dask_computes():
        merged = align.merge(mine, ds)
    assert merged.sizes == {"gene": mine.sizes["gene"], "sample": ds.sizes["sample"] + 2}
    assert merged.source.values[-2:].tolist() == ["aligned", "aligned"]
    np.testing.assert_array_equal(
        merged.counts.sel(sample="u1").values, mine.counts.sel(sample="u1")
    )
    assert merged.symbol.values[0] == ds.symbol.values[0]  # the ARCHS4 file's annotation
    # per-sample fields of one side are missing (not made up) on the other side
    n_archs4 = ds.sizes["sample"]
    assert np.isnan(merged.n_processed.values[:n_archs4].astype(float)).all()
    assert (merged.n_processed.values[n_archs4:] > 0).all()
    assert merged.paired.values[0] is None and merged.title.values[-1] is None
    outer = align.merge(mine, ds, join="outer")
    assert outer.sizes["gene"] == ds.sizes["gene"] and outer.counts.dtype == np.uint32
    assert int(outer.counts.sel(sample="u1").isel(gene=-1)) == 0
    with pytest.raises(ValueError, match="present on both sides"):
        align.merge(mine.assign_coords(sample=ds.sample.values[:2]), ds)
    with pytest.raises(ValueError, match="share no gene"):
        align.merge(mine.assign_coords(gene=[f"ENSGX{i}" for i in range(mine.sizes["gene"])]), ds)


@pytest.mark.cluster
def test_runs_on_a_distributed_cluster(ref, reads, cluster):
    seen = []
    ds = align.fastq(
        ref, {"a": reads.single, "b": reads.paired}, progress=lambda n, r: seen.append(n)
    )
    local = align.fastq(ref, {"a": reads.single, "b": reads.paired}, compute=False)
    np.testing.assert_array_equal(ds.counts.values, local.compute(scheduler="sync").counts.values)
    assert sorted(seen) == ["a", "b"]
