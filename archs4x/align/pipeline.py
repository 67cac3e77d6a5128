"""Quantify samples as a Dask graph and return labelled counts that line up with ARCHS4.

The graph: one task builds (or reuses) the reference's kallisto index; one task per sample
checks its FASTQ files and runs ``kallisto quant`` in its own temporary folder; cheap tasks
turn each sample's estimates into a column (gene counts, transcript counts or TPM).  It
runs on the current Dask scheduler (threads by default: kallisto runs outside the GIL, so
samples run in parallel; or any ``distributed`` cluster whose workers see the files).

Gene counts follow ARCHS4: the sum of a gene's transcript estimated counts (kallisto's
``est_counts``), rounded to the nearest integer, ``uint32``.  Transcript counts are the
rounded estimates (with the exact ``est_counts`` alongside).  ``identifier="symbol"`` sums
the genes that share a symbol, exactly as :func:`archs4x.genes.aggregate_duplicate_genes`
does to an ARCHS4 file (so :func:`merge` applies it to the ARCHS4 side too).
"""

from __future__ import annotations

import concurrent.futures
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import dask
import dask.array as da
import numpy as np
import pandas as pd
import xarray as xr

from ..dims import COUNTS, GENE, SAMPLE, TRANSCRIPT, feature_dim
from .fastq import FastqError, Sample, check_head, check_pair, count_records, find_samples
from .fastq import split_name as _split_name
from .kallisto import KallistoError, quant
from .options import QuantOptions
from .reference import Reference, reference

__all__ = ["fastq", "fastq_samples", "folder", "merge", "quantify", "run_quantification"]

ReturnType = Literal["gene", "transcript", "tpm"]
Identifier = Literal["ensembl", "symbol"]
_UINT32_MAX = np.iinfo(np.uint32).max


# ---------------------------------------------------------------------------- tasks
def _quant_sample(
    index: str,
    files: tuple[str, ...],
    targets: np.ndarray,
    opts: QuantOptions,
) -> dict:
    """Check one sample's reads, run kallisto, return its estimates in reference order."""
    check = opts.check
    if check:
        if len(files) == 2:
            check_pair(files[0], files[1])
        else:
            check_head(files[0])
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        counting = [pool.submit(count_records, f) for f in files] if check == "full" else []
        q = quant(
            index,
            list(files),
            fragment_length=opts.fragment_length,
            sd=opts.sd,
            threads=opts.threads,
            extra_args=opts.extra_args,
            kallisto=opts.kallisto,
            tmp_dir=opts.tmp_dir,
        )
        records = [c.result() for c in counting]
    if records:
        if len(set(records)) > 1:
            raise FastqError(
                f"mates have different numbers of reads: {dict(zip(files, records, strict=True))}"
            )
        if records[0] != q.n_processed:
            raise FastqError(
                f"{files[0]} holds {records[0]} reads but kallisto processed {q.n_processed}"
            )
    ab = q.abundance.set_index("target_id")
    if len(ab) != len(targets) or not ab.index.equals(pd.Index(targets)):
        missing = pd.Index(targets).difference(ab.index)
        if len(ab) != len(targets) or len(missing):
            raise KallistoError(
                f"kallisto's targets do not match the reference ({len(ab)} vs {len(targets)}"
                f" transcripts; e.g. missing {list(missing[:3])}): was the index built from "
                "other FASTA files?"
            )
        ab = ab.loc[targets]
    return {
        "est_counts": ab["est_counts"].to_numpy(np.float64),
        "tpm": ab["tpm"].to_numpy(np.float64),
        "n_processed": q.n_processed,
        "n_pseudoaligned": q.n_pseudoaligned,
        "kallisto_seconds": q.seconds,
    }


def _to_uint32(x: np.ndarray, what: str) -> np.ndarray:
    r = np.rint(x)
    if r.size and r.max() > _UINT32_MAX:
        raise OverflowError(f"{what} exceed the uint32 range of ARCHS4 counts")
    return r.astype(np.uint32)


def _gene_counts(res: dict, codes: np.ndarray, n_genes: int) -> np.ndarray:
    sums = np.bincount(codes, weights=res["est_counts"], minlength=n_genes)
    return _to_uint32(sums, "gene counts")


def _transcript_counts(res: dict) -> np.ndarray:
    return _to_uint32(res["est_counts"], "transcript counts")


def _get(res: dict, name: str):
    return res[name]


def _one(res: dict, name: str, dtype) -> np.ndarray:
    return np.array([res[name]], dtype=dtype)


# ---------------------------------------------------------------------------- graph
def _as_reference(species_or_reference, release: int, cache_dir) -> Reference:
    if isinstance(species_or_reference, Reference):
        return species_or_reference
    return reference(species_or_reference, release, cache_dir=cache_dir)


def _quant_options(options: QuantOptions | None, kwargs: Mapping[str, Any]) -> QuantOptions:
    if options is None:
        return QuantOptions.from_kwargs(kwargs)
    if kwargs:
        raise TypeError(f"give options= or option keywords, not both (got {sorted(kwargs)})")
    if not isinstance(options, QuantOptions):
        raise TypeError(f"options must be a QuantOptions, not {type(options).__name__}")
    return options


def _column(task, shape, dtype):
    return da.from_delayed(task, shape=shape, dtype=dtype)


def quantify(
    ref: Reference,
    samples: Sequence[Sample],
    *,
    return_type: ReturnType = "gene",
    identifier: Identifier = "ensembl",
    options: QuantOptions | None = None,
    **option_kwargs: Any,
) -> xr.Dataset:
    """The lazy Dataset of ``samples`` quantified against ``ref`` (nothing runs yet).

    :func:`fastq` and :func:`folder` call this and compute the result; use it directly to
    combine the graph with others (:func:`run_quantification` computes it with per-sample
    progress).  Parameters are those of :func:`fastq`; kallisto's per-sample options come
    as ``options=QuantOptions(...)`` or as its keywords (``threads=2``), not both.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from archs4x.align import reference
    >>> from archs4x.align.fastq import Sample
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "t.fa").write_text(">ENST01.2 cdna x gene:ENSG07.5\\n" + "ACGT" * 30 + "\\n")
    >>> ds = quantify(reference(None, cdna=d / "t.fa", cache_dir=d), [Sample("s1", (d / "s1.fq",))])
    >>> ds.counts.dims, ds.counts.dtype, ds.sample.values.tolist()
    (('gene', 'sample'), dtype('uint32'), ['s1'])
    """
    if return_type not in ("gene", "transcript", "tpm"):
        raise ValueError(f"return_type must be 'gene', 'transcript' or 'tpm', not {return_type!r}")
    if identifier not in ("ensembl", "symbol"):
        raise ValueError(f"identifier must be 'ensembl' or 'symbol', not {identifier!r}")
    if identifier == "symbol" and return_type != "gene":
        raise ValueError("identifier='symbol' applies to gene counts (return_type='gene')")
    opts = _quant_options(options, option_kwargs)
    samples = list(samples)
    if not samples:
        raise ValueError("no samples to quantify")
    names = [s.name for s in samples]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"sample names repeat: {dup}")
    index = ref.index_task(opts.kallisto)
    table = ref.table
    targets = dask.delayed(table["target"].to_numpy(dtype=object), pure=True)
    n_tx = len(table)
    genes = ref.genes
    codes = dask.delayed(ref.gene_codes(), pure=True)
    results = []
    for s in samples:
        files = tuple(os.path.abspath(os.path.expanduser(f)) for f in s.files)
        tok = dask.base.tokenize(index.key, files, opts)
        results.append(
            dask.delayed(_quant_sample, pure=True)(
                index, files, targets, opts, dask_key_name=f"kallisto-quant-{s.name}-{tok}"
            )
        )

    def stack(fn, shape, dtype, *args):
        cols = [_column(dask.delayed(fn, pure=True)(r, *args), shape, dtype) for r in results]
        return da.stack(cols, axis=1)

    def per_sample(name, dtype):
        cols = [
            _column(dask.delayed(_one, pure=True)(r, name, dtype), (1,), dtype) for r in results
        ]
        return da.concatenate(cols)

    sample_coords = {
        SAMPLE: names,
        "paired": (SAMPLE, np.array([s.paired for s in samples])),
        "files": (SAMPLE, np.array([";".join(map(str, s.files)) for s in samples], dtype=object)),
        "n_processed": (SAMPLE, per_sample("n_processed", np.int64)),
        "n_pseudoaligned": (SAMPLE, per_sample("n_pseudoaligned", np.int64)),
        "kallisto_seconds": (SAMPLE, per_sample("kallisto_seconds", np.float64)),
    }
    attrs = {
        "level": return_type,
        "identifier": identifier,
        "reference_sha256": ref.key,
        "species": ref.species or "",
        "ensembl_release": ref.release if ref.release is not None else -1,
        "kallisto_single_end": f"--single -l {opts.fragment_length:g} -s {opts.sd:g}",
    }
    if return_type == "gene":
        counts = stack(_gene_counts, (len(genes),), np.uint32, codes, len(genes))
        ds = xr.Dataset(
            {COUNTS: ((GENE, SAMPLE), counts)},
            coords={
                GENE: genes.index.to_numpy(dtype=object),
                "symbol": (GENE, genes["symbol"].to_numpy(dtype=object)),
                "biotype": (GENE, genes["biotype"].to_numpy(dtype=object)),
                **sample_coords,
            },
            attrs=attrs,
        )
        if identifier == "symbol":
            from ..compute.genes import aggregate_duplicate_genes

            agg = aggregate_duplicate_genes(ds[COUNTS])
            ds = agg.to_dataset(name=COUNTS).assign_attrs(attrs)
        return ds
    tx_coords = {
        TRANSCRIPT: table.index.to_numpy(dtype=object),
        "ensembl_gene": (TRANSCRIPT, table["gene"].to_numpy(dtype=object)),
        "symbol": (TRANSCRIPT, table["symbol"].to_numpy(dtype=object)),
        "biotype": (TRANSCRIPT, table["transcript_biotype"].to_numpy(dtype=object)),
        "gene_biotype": (TRANSCRIPT, table["gene_biotype"].to_numpy(dtype=object)),
    }
    if return_type == "tpm":
        data = {"tpm": ((TRANSCRIPT, SAMPLE), stack(_get, (n_tx,), np.float64, "tpm"))}
    else:
        data = {
            COUNTS: ((TRANSCRIPT, SAMPLE), stack(_transcript_counts, (n_tx,), np.uint32)),
            "est_counts": ((TRANSCRIPT, SAMPLE), stack(_get, (n_tx,), np.float64, "est_counts")),
        }
    return xr.Dataset(data, coords={**tx_coords, **sample_coords}, attrs=attrs)


# ---------------------------------------------------------------------------- compute
def _report(name: str, res: dict, done: int, total: int, out) -> None:
    pct = 100.0 * res["n_pseudoaligned"] / max(1, res["n_processed"])
    print(
        f"[{done}/{total}] {name}: {res['n_processed']:,} reads, {pct:.1f}% pseudoaligned, "
        f"kallisto {res['kallisto_seconds']:.1f} s",
        file=out,
        flush=True,
    )


def run_quantification(
    ds: xr.Dataset, progress: bool | Callable[[str, dict], None] = False
) -> xr.Dataset:
    """Compute a :func:`quantify` Dataset, reporting each sample as kallisto finishes it.

    Parameters
    ----------
    ds : xarray.Dataset
        The lazy result of :func:`quantify`.
    progress : bool or callable
        True prints one line per finished sample to stderr; a callable gets
        ``(sample_name, result_dict)``.  Works on the threaded scheduler and on a
        ``distributed`` client.

    Examples
    --------
    >>> import xarray as xr
    >>> run_quantification(xr.Dataset({"x": ("sample", [1, 2])})).x.values.tolist()
    [1, 2]
    """
    if not progress:
        return ds.compute()
    report = progress if callable(progress) else None
    prefix = "kallisto-quant-"
    names = {
        k: k[len(prefix) :].rsplit("-", 1)[0]
        for k in dict(ds.__dask_graph__())
        if isinstance(k, str) and k.startswith(prefix)
    }
    total = len(names)
    count = [0]

    def emit(key, res):
        count[0] += 1
        if report is not None:
            report(names[key], res)
        else:
            _report(names[key], res, count[0], total, sys.stderr)

    from ..progress import current_client

    client = current_client()
    if client is not None and dask.config.get("scheduler", None) in (None, "dask.distributed"):
        from dask.delayed import Delayed
        from distributed import as_completed

        graph = ds.__dask_graph__()
        futs = client.compute([Delayed(k, graph) for k in names])
        persisted = ds.persist()
        for fut in as_completed(futs):
            emit(fut.key, fut.result())
        out = persisted.compute()
        del futs
        return out
    from dask.callbacks import Callback

    class _SampleProgress(Callback):
        def _posttask(self, key, result, dsk, state, worker_id):
            if key in names:
                emit(key, result)

    with _SampleProgress():
        return ds.compute()


def _run(ds: xr.Dataset, compute: bool, progress) -> xr.Dataset:
    return run_quantification(ds, progress) if compute else ds


def fastq_samples(
    files: str | os.PathLike | Sequence[str | os.PathLike] | Mapping[str, Any],
    name: str | None = None,
) -> list[Sample]:
    """The samples :func:`fastq` would quantify, with absolute paths, every file checked.

    Examples
    --------
    >>> fastq_samples("/no/such.fq")
    Traceback (most recent call last):
    ...
    FileNotFoundError: no such FASTQ file: /no/such.fq
    """
    if isinstance(files, Mapping):
        if name is not None:
            raise ValueError("name= cannot be combined with a mapping of samples")
        samples = [
            Sample(str(n), tuple(_absolute(f) for f in
                                 ([v] if isinstance(v, str | os.PathLike) else v)))
            for n, v in files.items()
        ]  # fmt: skip
        for s in samples:
            _check_files(s.files)
        return samples
    paths = [files] if isinstance(files, str | os.PathLike) else list(files)
    if len(paths) not in (1, 2):
        raise ValueError(
            f"fastq() takes one sample: one (single-end) or two (paired-end) files, got "
            f"{len(paths)}; use folder() or a {{name: files}} mapping for several samples"
        )
    absolute = [_absolute(p) for p in paths]
    _check_files(absolute, paths)
    return [Sample(name or _split_name(absolute[0])[0], tuple(absolute))]


def _absolute(path: str | os.PathLike) -> Path:
    """``path`` against the caller's working directory: kallisto runs in a temporary
    folder, and tasks may run in other processes."""
    return Path(path).expanduser().absolute()


def _check_files(paths: Sequence[Path], given: Sequence[Any] | None = None) -> None:
    for i, p in enumerate(paths):
        if not p.is_file():
            shown = given[i] if given is not None else p
            raise FileNotFoundError(f"no such FASTQ file: {shown}")


def fastq(
    species_or_reference: str | Reference,
    files: str | os.PathLike | Sequence[str | os.PathLike] | Mapping[str, Any],
    *,
    name: str | None = None,
    return_type: ReturnType = "gene",
    identifier: Identifier = "ensembl",
    release: int = 107,
    cache_dir: str | os.PathLike | None = None,
    compute: bool = True,
    progress: bool | Callable[[str, dict], None] = False,
    options: QuantOptions | None = None,
    **option_kwargs: Any,
) -> xr.Dataset:
    """Quantify one sample's FASTQ files (or a ``{name: files}`` mapping) with kallisto.

    Parameters
    ----------
    species_or_reference : "human", "mouse" or Reference
        A species downloads Ensembl ``release`` (see :func:`archs4x.align.reference`).
    files : path, [path], [mate1, mate2] or mapping
        One file is single-end, two are the mates of a paired-end sample; a mapping
        ``{sample name: file or (mate1, mate2)}`` quantifies several samples in parallel.
    name : str, optional
        Sample name (default: the file name without mate suffix and extension).
    return_type : {"gene", "transcript", "tpm"}
        Gene counts (ARCHS4's gene files), transcript counts (``counts`` rounded, uint32,
        and ``est_counts`` exact), or transcript TPM (variable ``tpm``).
    identifier : {"ensembl", "symbol"}
        Index genes by versionless Ensembl id (with ``symbol``/``biotype`` coordinates,
        like :func:`archs4x.open_dataset`), or by symbol with duplicated symbols summed
        (:func:`archs4x.genes.aggregate_duplicate_genes`; uint64).
    cache_dir : path-like, optional
        Reference and index cache.
    compute : bool, default True
        False returns the lazy Dataset (compute it yourself, e.g. on a cluster).
    progress : bool or callable
        True prints one line per finished sample to stderr; a callable gets
        ``(sample_name, result_dict)``.
    options : QuantOptions, optional
        kallisto's per-sample options (:class:`archs4x.align.QuantOptions`).

    Other Parameters
    ----------------
    **option_kwargs
        The fields of :class:`~archs4x.align.QuantOptions` as keywords instead of
        ``options``: ``fragment_length``, ``sd``, ``threads``, ``extra_args``, ``check``,
        ``kallisto``, ``tmp_dir``.

    Returns
    -------
    xarray.Dataset
        ``counts`` (gene|transcript, sample), ``sample`` coordinate of sample names,
        per-sample ``paired``, ``files``, ``n_processed``, ``n_pseudoaligned``,
        ``kallisto_seconds``.

    Raises
    ------
    FileNotFoundError
        A FASTQ file or the kallisto binary is missing.
    archs4x.align.FastqError
        Malformed, truncated or mismatched FASTQ files.
    archs4x.align.KallistoError
        kallisto exited with an error (its stderr is in the message).

    Examples
    --------
    >>> from archs4x import align
    >>> align.fastq("human", ["a_1.fq", "b_1.fq", "c_1.fq"])
    Traceback (most recent call last):
    ...
    ValueError: fastq() takes one sample: one (single-end) or two (paired-end) files, got 3; ...
    """
    samples = fastq_samples(files, name)
    opts = _quant_options(options, option_kwargs)  # before any download
    ref = _as_reference(species_or_reference, release, cache_dir)
    ds = quantify(ref, samples, return_type=return_type, identifier=identifier, options=opts)
    return _run(ds, compute, progress)


def folder(
    species_or_reference: str | Reference,
    path: str | os.PathLike,
    *,
    return_type: ReturnType = "gene",
    identifier: Identifier = "ensembl",
    release: int = 107,
    compute: bool = True,
    progress: bool | Callable[[str, dict], None] = False,
    cache_dir: str | os.PathLike | None = None,
    options: QuantOptions | None = None,
    **option_kwargs: Any,
) -> xr.Dataset:
    """Quantify every sample in a folder of FASTQ files, in parallel.

    Files are grouped into samples by name (:func:`archs4x.align.fastq.pair_files`:
    ``_1/_2``, ``_R1/_R2``, ``.1/.2``; the ``--split-3`` orphan file is ignored).
    Other parameters are those of :func:`fastq`.

    Examples
    --------
    >>> from archs4x import align
    >>> align.folder("human", "/no/such/folder")
    Traceback (most recent call last):
    ...
    FileNotFoundError: no such folder: /no/such/folder
    """
    samples = find_samples(path)
    opts = _quant_options(options, option_kwargs)
    ref = _as_reference(species_or_reference, release, cache_dir)
    ds = quantify(ref, samples, return_type=return_type, identifier=identifier, options=opts)
    return _run(ds, compute, progress)


# ---------------------------------------------------------------------------- merge
def _filler(like: xr.DataArray, n: int):
    """``n`` missing values for a coordinate like ``like``: NaN for numbers (integers are
    promoted to float, as xarray does for missing data), None for text and flags; never a
    made-up value such as 0 reads.  Dask-backed if ``like`` is."""
    kind = like.dtype.kind
    if kind == "f":
        arr = np.full(n, np.nan, dtype=like.dtype)
    elif kind in "iu":
        arr = np.full(n, np.nan, dtype=np.float64)
    else:  # text, bools, objects
        arr = np.full(n, None, dtype=object)
    return da.from_array(arr, chunks=-1) if isinstance(like.data, da.Array) else arr


def merge(
    result: xr.Dataset,
    archs4_ds: xr.Dataset,
    *,
    join: Literal["inner", "outer", "left", "right"] = "inner",
    fill_value: Any = 0,
) -> xr.Dataset:
    """Put aligned samples next to ARCHS4 samples along ``sample``.

    Parameters
    ----------
    result : xarray.Dataset
        From :func:`fastq` / :func:`folder` (gene or transcript counts, or TPM).
    archs4_ds : xarray.Dataset
        From :func:`archs4x.open_dataset` (lazy; nothing is read here).
    join : {"inner", "outer", "left", "right"}, default "inner"
        Which features to keep: those in both (inner), in either (outer), in the ARCHS4
        file (left) or in the result (right).  Features missing on one side get
        ``fill_value`` (0 keeps the counts' integer type; pass ``np.nan`` for floats).
    fill_value : scalar, default 0

    Returns
    -------
    xarray.Dataset
        ``counts`` (feature, sample): the ARCHS4 samples first, then the result's; a
        ``source`` coordinate says which (``"archs4"`` / ``"aligned"``); sample
        coordinates of either side are kept (NaN / None on the other side); feature
        coordinates come from the ARCHS4 file where it has the feature.  A result indexed
        by symbol is merged with the ARCHS4 file aggregated by symbol the same way.

    Raises
    ------
    ValueError
        Gene vs transcript level mismatch, sample names that clash, or no shared features.

    Examples
    --------
    >>> import numpy as np, xarray as xr, archs4x
    >>> ds = archs4x.open_dataset(archs4x.datasets.example_file())
    >>> mine = xr.Dataset({"counts": (("gene", "sample"), np.ones((3, 1), "uint32"))},
    ...                   coords={"gene": ds.gene.values[:3], "sample": ["my_sample"]})
    >>> m = merge(mine, ds)
    >>> m.counts.shape, m.source.values[-1], m.counts.dtype
    ((3, 401), 'aligned', dtype('uint32'))
    """
    fdim = feature_dim(result)
    if feature_dim(archs4_ds) != fdim:
        raise ValueError(
            f"cannot merge {fdim}-level results with a {feature_dim(archs4_ds)}-level ARCHS4 file"
        )
    var = COUNTS if COUNTS in result else "tpm"
    if var not in result:
        raise ValueError("result has neither 'counts' nor 'tpm'")
    theirs = archs4_ds[COUNTS] if isinstance(archs4_ds, xr.Dataset) else archs4_ds
    mine = result[var]
    if result.attrs.get("identifier") == "symbol":
        from ..compute.genes import aggregate_duplicate_genes

        theirs = aggregate_duplicate_genes(theirs)
    clash = np.intersect1d(mine[SAMPLE].values.astype(str), theirs[SAMPLE].values.astype(str))
    if clash.size:
        raise ValueError(f"sample names present on both sides: {clash[:5].tolist()}")
    a_feat = theirs.coords.to_dataset().drop_dims(SAMPLE, errors="ignore").reset_coords()
    b_feat = mine.coords.to_dataset().drop_dims(SAMPLE, errors="ignore").reset_coords()
    feat_coords = a_feat.combine_first(b_feat)
    theirs = theirs.drop_vars([c for c in theirs.coords if c != fdim and fdim in theirs[c].dims])
    mine = mine.drop_vars([c for c in mine.coords if c != fdim and fdim in mine[c].dims])
    theirs, mine = xr.align(theirs, mine, join=join, fill_value=fill_value, exclude=[SAMPLE])
    if theirs.sizes[fdim] == 0:
        raise ValueError(f"the result and the ARCHS4 file share no {fdim} ids")
    sample_coords: dict[Any, xr.DataArray] = {}
    for side in (theirs, mine):
        for c, v in side.coords.items():
            if c != SAMPLE and v.dims == (SAMPLE,):
                sample_coords.setdefault(c, v)
    parts = []
    for side, label in ((theirs, "archs4"), (mine, "aligned")):
        n = side.sizes[SAMPLE]
        extra = {"source": (SAMPLE, np.full(n, label, dtype=object))}
        for c, v in sample_coords.items():
            if c not in side.coords:
                extra[c] = (SAMPLE, _filler(v, n))
        parts.append(side.assign_coords(extra))
    merged = xr.concat(parts, dim=SAMPLE, join="exact", coords="minimal", compat="override")
    merged = merged.assign_coords(
        {c: (fdim, feat_coords[c].sel({fdim: merged[fdim].values}).values)
         for c in feat_coords.data_vars}
    )  # fmt: skip
    return merged.to_dataset(name=COUNTS)
