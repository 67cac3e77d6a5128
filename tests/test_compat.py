"""archs4x.compat against archs4py's own outputs, where archs4py is correct.

archs4py's ``data`` functions start a 16-process pool per call, so they are compared a
few times on the small file only.
"""
# ruff: noqa: F811  (pytest fixtures imported from tests._align_data)

from __future__ import annotations

import random
import re

import archs4py  # required (the test extra pins it): these tests never skip
import h5py
import numpy as np
import pandas as pd
import pytest

import archs4x.compat as a4
from archs4x.query import MissingIdsWarning

from ._align_data import fasta, kallisto_bin, reads, transcriptome  # noqa: F401
from .test_tmm import edger_tmm


@pytest.fixture(scope="module")
def ids(gene_file):
    with h5py.File(gene_file, "r") as f:
        return [x.decode() for x in f["meta/samples/geo_accession"][()]]


@pytest.fixture(scope="module")
def series_ids(gene_file):
    with h5py.File(gene_file, "r") as f:
        return [x.decode() for x in f["meta/samples/series_id"][()]]


# -- meta ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("term", "kw"),
    [("myoblast", {}), ("liver|kidney", {"remove_sc": True}),
     ("rep1", {"meta_fields": ["title", "source_name_ch1"]})],
)  # fmt: skip
def test_meta_meta_equals_archs4py(gene_file, term, kw):
    theirs = archs4py.meta.meta(str(gene_file), term, silent=True, **kw)
    ours = a4.meta.meta(gene_file, term, silent=True, **kw)
    assert len(ours) > 0
    pd.testing.assert_frame_equal(ours, theirs)


def test_meta_samples_and_series(gene_file, ids, series_ids):
    wanted = [ids[i] for i in (3, 10, 42)]
    theirs = archs4py.meta.samples(str(gene_file), wanted, silent=True)
    ours = a4.meta.samples(gene_file, wanted[::-1])
    assert ours.index.tolist() == wanted[::-1]  # request order kept
    pd.testing.assert_frame_equal(ours.loc[theirs.index], theirs)
    single = next(s for s in series_ids if "," not in s and not any(
        s in t.split(",") for t in series_ids if "," in t))  # fmt: skip
    pd.testing.assert_frame_equal(
        a4.meta.series(gene_file, single), archs4py.meta.series(str(gene_file), single)
    )
    multi = next(s for s in series_ids if "," in s).split(",")[1]
    theirs = archs4py.meta.series(str(gene_file), multi)
    ours = a4.meta.series(gene_file, multi)
    assert set(theirs.index) < set(ours.index)  # archs4py misses multi-series samples
    assert all(multi in s.split(",") for s in ours["series_id"])


@pytest.mark.parametrize("name", ["geo_accession", "title", "singlecellprobability",
                                  "symbol", "biotype", "ensembl_gene"])  # fmt: skip
def test_meta_field_equals_archs4py(gene_file, name):
    assert a4.meta.field(gene_file, name) == archs4py.meta.field(str(gene_file), name)


def test_meta_errors(gene_file):
    with pytest.raises(KeyError, match="available"):
        a4.meta.field(gene_file, "no_such_field")
    with pytest.raises(ValueError, match="invalid regular expression"):
        a4.meta.meta(gene_file, "muscle (")
    with pytest.raises(re.error):  # what archs4py does
        archs4py.meta.meta(str(gene_file), "muscle (", silent=True)


# -- data (few archs4py calls: each starts 16 processes) -------------------------------
def test_data_index_and_rand_equal_archs4py(small_file):
    theirs = archs4py.data.index(str(small_file), [2, 7, 30], gene_idx=[1, 4, 9], silent=True)
    ours = a4.data.index(small_file, [2, 7, 30], gene_idx=[1, 4, 9], silent=True)
    pd.testing.assert_frame_equal(ours, theirs)
    assert a4.data.index(small_file, [30, 2], silent=True).columns.tolist() == (
        theirs.columns[[2, 0]].tolist()
    )  # request order kept
    random.seed(99)
    state = random.getstate()
    ours = a4.data.rand(small_file, 4, seed=5, silent=True)
    assert random.getstate() == state  # no global RNG
    theirs = archs4py.data.rand(str(small_file), 4, seed=5, silent=True)
    pd.testing.assert_frame_equal(ours, theirs)
    assert ours.dtypes.unique().tolist() == [np.uint32]


def test_data_samples_equal_archs4py(small_file):
    with h5py.File(small_file, "r") as f:
        gsm = [x.decode() for x in f["meta/samples/geo_accession"][[4, 11, 50]]]
    theirs = archs4py.data.samples(str(small_file), gsm, silent=True)
    ours = a4.data.samples(small_file, gsm, silent=True)
    pd.testing.assert_frame_equal(ours, theirs)


def test_data_meta_and_series_are_the_selected_counts(gene_file, ids, series_ids):
    hits = a4.meta.meta(gene_file, "myoblast", meta_fields=a4.data.META_FIELDS)
    counts = a4.data.meta(gene_file, "myoblast", silent=True)
    pd.testing.assert_frame_equal(
        counts, a4.data.index(gene_file, [ids.index(g) for g in hits.index], silent=True)
    )
    gse = series_ids[0]
    cols = a4.data.series(gene_file, gse, silent=True).columns.tolist()
    assert cols == [g for g, s in zip(ids, series_ids, strict=True) if gse in s.split(",")]


def test_data_differences(gene_file):
    with pytest.warns(MissingIdsWarning, match="GSM0"):
        empty = a4.data.samples(gene_file, ["GSM0"], silent=True)
    assert empty.shape == (4500, 0)  # archs4py returns None
    with pytest.raises(IndexError):
        a4.data.index(gene_file, [10_000], silent=True)
    with pytest.raises(ValueError, match="cannot draw"):
        a4.data.rand(gene_file, 10_000, silent=True)


# -- utils -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def frame(gene_file):
    return a4.data.index(gene_file, list(range(0, 400, 7)), silent=True)


@pytest.mark.parametrize("method", ["quantile", "log_quantile", "cpm"])
def test_normalize_equals_archs4py(frame, method):
    frame = frame.loc[:, frame.sum() > 0]  # archs4py gives NaN for empty libraries
    pd.testing.assert_frame_equal(
        a4.normalize(frame, method), archs4py.utils.normalize(frame, method), rtol=1e-5
    )


def _tmm_reference(frame: pd.DataFrame, sum_trim: float = 0.05) -> np.ndarray:
    """edgeR TMM-scaled CPM: counts * 1e6 / (library size x TMM factor), with the factors
    of tests/test_tmm.py's line-by-line transcription of edgeR's calcNormFactors."""
    x = frame.to_numpy(dtype=float)
    lib = x.sum(axis=0)
    return x * 1e6 / (lib * edger_tmm(x, sum_trim=sum_trim))


@pytest.mark.parametrize("tmm_outlier", [0.05, 0.1])
def test_normalize_tmm_equals_edger_and_empty_library(frame, tmm_outlier):
    frame = frame.loc[:, frame.sum() > 0]
    out = a4.normalize(frame, "tmm", tmm_outlier=tmm_outlier)
    assert out.index.equals(frame.index) and out.columns.equals(frame.columns)
    assert out.dtypes.unique().tolist() == [np.float32]
    np.testing.assert_allclose(out.to_numpy(), _tmm_reference(frame, tmm_outlier), rtol=1e-5)
    empty = frame.copy()
    empty.iloc[:, 0] = 0
    for method in ("cpm", "tmm"):
        with pytest.raises(ValueError, match=rf"sample '{empty.columns[0]}' .* empty library"
                           r".* pass empty='nan'"):  # fmt: skip
            a4.normalize(empty, method)


def test_normalize_empty_nan_as_archs4py(frame):
    """``empty="nan"`` (what the EmptyLibraryError message suggests) works for cpm and
    tmm: NaN for the empty sample, the others as if it were absent."""
    frame = frame.loc[:, frame.sum() > 0].copy()
    frame.iloc[:, 2] = 0
    cpm = a4.normalize(frame, "cpm", empty="nan")
    pd.testing.assert_frame_equal(cpm, archs4py.utils.normalize(frame, "cpm"), rtol=1e-5)
    tmm = a4.normalize(frame, "tmm", empty="nan")
    assert tmm.iloc[:, 2].isna().all() and not tmm.drop(columns=frame.columns[2]).isna().any().any()
    rest = frame.drop(columns=frame.columns[2])
    np.testing.assert_allclose(tmm[rest.columns].to_numpy(), _tmm_reference(rest), rtol=1e-5)


def test_filter_genes_on_a_frame_without_samples(frame):
    none = frame.iloc[:, :0]
    for aggregate in (True, False):
        ours = a4.utils.filter_genes(none, aggregate=aggregate)
        theirs = archs4py.utils.filter_genes(none, aggregate=aggregate)
        pd.testing.assert_frame_equal(ours, theirs, check_dtype=False)
        assert ours.shape == (len(set(frame.index)) if aggregate else len(frame), 0)
    pd.testing.assert_frame_equal(a4.utils.aggregate_duplicate_genes(none),
                                  archs4py.utils.aggregate_duplicate_genes(none),
                                  check_dtype=False)  # fmt: skip


def test_gene_utils_equal_archs4py(frame):
    pd.testing.assert_frame_equal(
        a4.utils.aggregate_duplicate_genes(frame),
        archs4py.utils.aggregate_duplicate_genes(frame),
        check_dtype=False,  # archs4x sums in uint64: no overflow
    )
    for aggregate in (True, False):
        pd.testing.assert_frame_equal(
            a4.utils.filter_genes(frame, readThreshold=10, sampleThreshold=0.1,
                                  aggregate=aggregate),
            archs4py.utils.filter_genes(frame, readThreshold=10, sampleThreshold=0.1,
                                        aggregate=aggregate),
            check_dtype=False,
        )  # fmt: skip


def test_ls_prints(gene_file, capsys):
    a4.ls(gene_file)
    out = capsys.readouterr().out
    assert "expression" in out and "geo_accession" in out


def test_versions_equal_archs4py():
    assert a4.versions() == list(archs4py.versions())


# -- archs4py's other modules: download, align, meta.get_meta* ------------------------
_SAME_SHAPE = [
    ("download.counts", a4.download.counts, archs4py.download.counts),
    ("align.fastq", a4.align.fastq, archs4py.align.fastq),
    ("align.folder", a4.align.folder, archs4py.align.folder),
    ("align.load", a4.align.load, archs4py.align.load),
    ("meta.get_meta", a4.meta.get_meta, archs4py.meta.get_meta),
    ("meta.get_meta_sample_field", a4.meta.get_meta_sample_field,
     archs4py.meta.get_meta_sample_field),
    ("meta.get_meta_gene_field", a4.meta.get_meta_gene_field, archs4py.meta.get_meta_gene_field),
    ("utils.normalize", a4.utils.normalize, archs4py.utils.normalize),
    ("utils.filter_genes", a4.utils.filter_genes, archs4py.utils.filter_genes),
]  # fmt: skip


@pytest.mark.parametrize(("name", "ours", "theirs"), _SAME_SHAPE, ids=[n for n, *_ in _SAME_SHAPE])
def test_signatures_are_archs4pys(name, ours, theirs):
    """Same parameter names, order, kinds and defaults as archs4py 1.0.4 (archs4x may add
    parameters after them, with defaults)."""
    import inspect

    mine = list(inspect.signature(ours).parameters.values())
    real = list(inspect.signature(theirs).parameters.values())
    shape = [(p.name, p.kind, p.default) for p in real]
    assert [(p.name, p.kind, p.default) for p in mine[: len(real)]] == shape, name
    assert all(p.default is not inspect.Parameter.empty for p in mine[len(real) :]), name


def test_get_meta_helpers_equal_archs4py(gene_file):
    ours, theirs = a4.meta.get_meta(gene_file), archs4py.meta.get_meta(str(gene_file))
    assert sorted(ours) == sorted(theirs) and "sample" in ours
    for field, values in theirs.items():
        assert ours[field] == values, field
    for field in ("series_id", "singlecellprobability", "geo_accession"):
        assert a4.meta.get_meta_sample_field(gene_file, field) == (
            archs4py.meta.get_meta_sample_field(str(gene_file), field))  # fmt: skip
    for field in ("symbol", "ensembl_gene", "biotype"):
        assert a4.meta.get_meta_gene_field(gene_file, field) == (
            archs4py.meta.get_meta_gene_field(str(gene_file), field))  # fmt: skip
    with pytest.raises(KeyError, match="available: .*symbol"):
        a4.meta.get_meta_gene_field(gene_file, "title")
    with pytest.raises(KeyError, match="available: .*geo_accession"):
        a4.meta.get_meta_sample_field(gene_file, "no_such_field")


def test_download_counts_returns_the_verified_path(tmp_path, monkeypatch, capsys, gene_file):
    """archs4py's ``download.counts`` shape on archs4x's verified downloader: a local
    server holds a release the session's catalog knows (size and SHA1 included)."""
    import hashlib
    import shutil

    from archs4x import catalog

    from ._http import FileServer

    www = tmp_path / "www"
    www.mkdir()
    shutil.copy(gene_file, www / "human_gene_v9.9.h5")
    data = (www / "human_gene_v9.9.h5").read_bytes()
    monkeypatch.setenv("ARCHS4X_VERSIONFILE_URL", "http://127.0.0.1:9/versionfile")  # offline
    with FileServer(www) as srv:
        rel = catalog.Release("human", "gene", "9.9", "human_gene_v9.9.h5",
                              srv.url("human_gene_v9.9.h5"), "", len(data),
                              hashlib.sha1(data).hexdigest(), 400)  # fmt: skip
        monkeypatch.setattr(catalog, "_refreshed", {("human", "gene", "9.9"): rel})
        out = a4.download.counts("human", path=str(tmp_path / "dl"), version="9.9")
        assert out == str(tmp_path / "dl" / "human_gene_v9.9.h5")
        assert (tmp_path / "dl" / "human_gene_v9.9.h5").read_bytes() == data
        assert "file downloaded to" in capsys.readouterr().out
        monkeypatch.chdir(tmp_path)
        with pytest.warns(RuntimeWarning, match="bundled catalog"):  # the site is offline
            latest = a4.download.counts("human")  # path="": here; "latest": 9.9
        assert latest == "human_gene_v9.9.h5" and (tmp_path / latest).read_bytes() == data
    with pytest.raises(ValueError, match="unknown type 'EXON_COUNTS'"):
        a4.download.counts("human", type="EXON_COUNTS")


def test_align_in_archs4py_shapes(fasta, reads, kallisto_bin, tmp_path):
    """``align.fastq`` / ``align.folder`` with archs4py's arguments: Ensembl 107 from the
    cache (no network), archs4py's return shapes, values from archs4x.align's kallisto run
    (itself checked against the simulated truth in test_align_quant.py)."""
    import shutil

    import archs4x
    from archs4x import align
    from archs4x.align.reference import ensembl_urls

    cache = tmp_path / "cache"
    ensembl = cache / "align" / "ensembl" / "release-107" / "human"
    ensembl.mkdir(parents=True)
    for src, url in zip(fasta, ensembl_urls("human", 107), strict=True):
        shutil.copy(src, ensembl / url.rsplit("/", 1)[1])  # what reference() would download
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(reads.paired[0], run / "p_1.fastq.gz")
    shutil.copy(reads.paired[1], run / "p_2.fq")
    shutil.copy(reads.single, run / "s.fq.gz")
    with archs4x.set_options(cache_dir=cache):
        ref = align.reference("human", 107)
        tx = a4.align.fastq("human", [str(p) for p in reads.paired], t=2)  # "transcript"
        direct = align.fastq(ref, list(reads.paired), return_type="transcript")
        assert isinstance(tx, pd.Series) and tx.name == "reads"
        assert tx.index.tolist() == direct.transcript.values.tolist()  # versionless ids
        np.testing.assert_array_equal(tx.to_numpy(), direct.est_counts.values[:, 0])
        genes = a4.align.fastq("human", str(reads.single), return_type="gene")
        by_id = align.fastq(ref, reads.single)  # gene counts by Ensembl id
        want = pd.Series(by_id.counts.values[:, 0].astype(np.uint64),
                         index=by_id.symbol.values).groupby(level=0).sum()  # fmt: skip
        assert genes.dtype == np.uint64 and genes.index.is_unique
        pd.testing.assert_series_equal(genes.sort_index(), want, check_names=False)
        ensembl_ids = a4.align.fastq("human", str(reads.single), return_type="gene",
                                     identifier="ensembl")  # fmt: skip
        assert ensembl_ids.index.tolist() == by_id.gene.values.tolist()
        table = a4.align.folder("human", str(run))  # transcript counts, features x samples
        assert table.columns.tolist() == ["p", "s"]
        assert table.index.tolist() == direct.transcript.values.tolist()
        np.testing.assert_array_equal(table["p"].to_numpy(), direct.counts.values[:, 0])
        gene_table = a4.align.folder("human", str(run), return_type="gene")
        assert gene_table.dtypes.unique().tolist() == [np.uint64]
        assert gene_table["s"].sort_index().tolist() == want.tolist()
    with pytest.raises(ValueError, match="unknown release"):
        a4.align.fastq("human", str(reads.single), release="v9")


def test_one_gsm_id_as_a_string_is_one_sample():
    """archs4py splits a single string into characters and matches nothing; compat takes it
    as the one id it is (data.samples and meta.samples)."""
    import h5py

    from archs4x.datasets import example_file

    path = example_file()
    one = a4.data.samples(path, "GSM1000013", silent=True)
    with h5py.File(path) as f:
        ids = f["meta/samples/geo_accession"].asstr()[:].tolist()
        want = f["data/expression"][:, ids.index("GSM1000013")]
    assert one.columns.tolist() == ["GSM1000013"]
    assert (one.iloc[:, 0].to_numpy() == want).all()
    assert a4.meta.samples(path, "GSM1000013").index.tolist() == ["GSM1000013"]
