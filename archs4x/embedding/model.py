"""The :class:`Embedding`: gene means, loadings, every sample's coordinates, and provenance.

An embedding is lazy until computed (:func:`archs4x.embedding.fit`), then holds NumPy
arrays.  It is saved as a Zarr store (:meth:`Embedding.save`, :func:`load`) with its
parameters, the identity of the file it was fitted on (path, size, times, inode: the
file's ``cache_key``; its release and level) and the selection (how many samples and
genes, digests of their positions and ids).  Its :attr:`Embedding.fingerprint` is a digest
of all of it, computed from the arrays themselves: a nearest-neighbour index saved with
the embedding is used only by the embedding it was built for.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from ..backends.positions import sample_positions
from ..dims import COUNTS, GENE, SAMPLE
from .svd import FitPlan, log_cpm, run_plan

__all__ = [
    "COMPONENT",
    "Embedding",
    "EmbeddingMismatchError",
    "GeneMismatchError",
    "load",
]

#: The embedding's dimension.
COMPONENT = "component"
#: Format version of saved embeddings.
FORMAT = 1
_ATTR = "archs4x_embedding"
_ENSEMBL_VERSION = re.compile(r"^(ENS[A-Z]*G\d+)\.\d+$")


class EmbeddingMismatchError(ValueError):
    """The embedding was fitted on another file or release than the Dataset it is used with."""


class GeneMismatchError(ValueError):
    """Counts to project lack genes of the embedding (matched by Ensembl id)."""


def _digest(arrays: list[np.ndarray], meta: Any) -> str:
    h = hashlib.blake2b(digest_size=16)
    h.update(json.dumps(meta, sort_keys=True, default=str).encode())
    for a in arrays:
        a = np.asarray(a)
        if a.dtype.kind in "OUS":
            h.update("\x00".join(map(str, a.tolist())).encode("utf-8", "surrogatepass"))
        else:
            h.update(str(a.dtype).encode() + str(a.shape).encode())
            h.update(np.ascontiguousarray(a).tobytes())
        h.update(b"\x1f")
    return h.hexdigest()


class Embedding:
    """Samples embedded by a truncated SVD of their log-CPM (see :func:`archs4x.embedding.fit`).

    Attributes are computed on first use (and kept): ``coordinates`` (sample x component),
    ``loadings`` (component x gene), ``gene_mean``, ``singular_values``,
    ``explained_variance_ratio`` as labelled DataArrays; ``params``, ``source`` (the file's
    identity), ``selection``, ``dropped`` (samples left out for empty libraries),
    ``fingerprint``.

    Examples
    --------
    >>> import archs4x
    >>> ds = archs4x.open_dataset(archs4x.datasets.example_file()).archs4.remove_single_cell()
    >>> emb = archs4x.embedding.fit(ds, n_components=5, n_genes=300).compute()
    >>> emb
    <archs4x Embedding: 338 samples x 5 components, 300 genes, log_cpm, v2.5 gene file>
    >>> back = emb.transform(ds.counts.isel(sample=[0, 1]))
    >>> bool(abs(back.values - emb.coordinates.values[:2]).max() < 1e-8)
    True
    """

    def __init__(self, *, plan: FitPlan | None = None, data: xr.Dataset | None = None,
                 path: str | None = None) -> None:  # fmt: skip
        if (plan is None) == (data is None):
            raise TypeError("an Embedding is made by archs4x.embedding.fit or .load")
        self._plan = plan
        self._data = data
        self._path = path
        self._indexes: dict[tuple, Any] = {}

    # -- lazy / computed ---------------------------------------------------------------
    @property
    def lazy(self) -> bool:
        """Whether the embedding is still to be computed."""
        return self._data is None

    def compute(self) -> Embedding:
        """Run the fit's passes on the current Dask scheduler (once) and return ``self``.

        Use ``with dask.config.set(scheduler=...)`` or a ``distributed.Client`` to choose
        where it runs; memory stays bounded by a few blocks of samples whatever the scheduler.
        """
        if self._data is None:
            assert self._plan is not None
            self._data = _as_dataset(self._plan, run_plan(self._plan))
            self._plan = None
        return self

    @property
    def data(self) -> xr.Dataset:
        """Every array of the embedding as one Dataset (computes a lazy embedding)."""
        return self.compute()._data  # type: ignore[return-value]

    def _meta(self) -> dict[str, Any]:
        if self._plan is not None:
            return {"params": self._plan.params, "source": self._plan.source,
                    "selection": self._plan.selection}  # fmt: skip
        return json.loads(self.data.attrs[_ATTR])

    @property
    def params(self) -> dict[str, Any]:
        """The fit's parameters."""
        return dict(self._meta()["params"])

    @property
    def source(self) -> dict[str, Any]:
        """The identity of the file the samples came from (``kind``: ``"file"``/``"memory"``)."""
        return dict(self._meta()["source"])

    @property
    def selection(self) -> dict[str, Any]:
        """What was fitted: sample and gene counts, digests of their positions and ids."""
        return dict(self._meta()["selection"])

    @property
    def coordinates(self) -> xr.DataArray:
        """(sample, component) coordinates of every fitted sample."""
        return self.data["coordinates"]

    @property
    def loadings(self) -> xr.DataArray:
        """(component, gene) loadings (right singular vectors) on the highly variable genes."""
        return self.data["loadings"]

    @property
    def gene_mean(self) -> xr.DataArray:
        """Mean log-CPM of each highly variable gene over the fitted samples."""
        return self.data["gene_mean"]

    @property
    def singular_values(self) -> xr.DataArray:
        return self.data["singular_values"]

    @property
    def explained_variance_ratio(self) -> xr.DataArray:
        """Share of the genes' total log-CPM variance each component explains."""
        return self.data["explained_variance_ratio"]

    @property
    def samples(self) -> np.ndarray:
        """Ids (GSM) of the fitted samples, in the order of ``coordinates``."""
        return np.asarray(self.data[SAMPLE].values).astype(str)

    @property
    def genes(self) -> np.ndarray:
        """Ensembl ids of the highly variable genes, in the order of ``loadings``."""
        return np.asarray(self.data[GENE].values).astype(str)

    @property
    def dropped(self) -> list[str]:
        """Samples left out of the fit because they have no reads."""
        return list(json.loads(self.data.attrs[_ATTR])["dropped"])

    @property
    def passes(self) -> int:
        """Reads of the counts the fit made."""
        return int(json.loads(self.data.attrs[_ATTR])["passes"])

    @property
    def fingerprint(self) -> str:
        """Digest of the arrays, parameters and provenance: changes whenever the embedding does."""
        d = self.data
        meta = json.loads(d.attrs[_ATTR])
        meta.pop("fingerprint", None)
        arrays = [d[n].values for n in ("coordinates", "loadings", "gene_mean",
                                         "singular_values", "library_gene")]  # fmt: skip
        arrays += [d[SAMPLE].values, d[GENE].values]
        return _digest(arrays, meta)

    def __repr__(self) -> str:
        if self.lazy:
            assert self._plan is not None
            n = self._plan.counts.sizes[SAMPLE]
            return (f"<archs4x Embedding (lazy): {n} samples, "
                    f"{self.params['n_components']} components>")  # fmt: skip
        src = self.source
        where = f"v{src['release']} {src['level']} file" if src.get("kind") == "file" else "memory"
        return (f"<archs4x Embedding: {self.coordinates.shape[0]} samples x "
                f"{self.coordinates.shape[1]} components, {self.genes.size} genes, "
                f"{self.params['transform']}, {where}>")  # fmt: skip

    # -- projecting new samples ---------------------------------------------------------
    def transform(self, counts: xr.DataArray | xr.Dataset | pd.DataFrame) -> xr.DataArray:
        """Coordinates of samples in this embedding (log-CPM, centred, on the loadings).

        Parameters
        ----------
        counts : xarray.DataArray, xarray.Dataset or pandas.DataFrame
            (gene, sample) counts with genes labelled by Ensembl id: an ARCHS4 selection,
            the result of :func:`archs4x.align.folder` / :func:`archs4x.align.fastq`, or a
            frame with genes as rows (index) and samples as columns.  Versioned ids
            (``ENSG00000141510.17``) match their versionless form.  Library sizes are the
            sums over the genes the fitted file has (all of them for aligned samples).

        Returns
        -------
        xarray.DataArray
            (sample, component), float64; lazy if ``counts`` is.

        Raises
        ------
        GeneMismatchError
            ``counts`` lacks genes of the embedding; the message lists them.
        """
        arr = as_gene_counts(counts)
        genes = self.genes
        index = pd.Index(arr[GENE].values.astype(str))
        missing = genes[~np.isin(genes, index)]
        if missing.size:
            raise GeneMismatchError(
                f"the counts lack {missing.size} of the embedding's {genes.size} genes "
                f"(matched by Ensembl gene id): {', '.join(missing[:10])}"
                f"{', ...' if missing.size > 10 else ''}; the embedding needs every gene it "
                f"was fitted on: quantify against the annotation of the ARCHS4 file "
                f"(Ensembl release 107 for ARCHS4 v2)"
            )
        universe = np.asarray(self.data["library_gene"].values).astype(str)
        in_universe = np.flatnonzero(np.isin(index, universe))
        data = arr.data
        lib = data[in_universe].sum(axis=0, dtype=np.float64)
        rows = index.get_indexer(genes)
        y = log_cpm(data[rows].astype(np.float64), lib[None, :],
                    float(json.loads(self.data.attrs[_ATTR])["mean_library"]),
                    self.params["prior_count"])  # fmt: skip
        y = y - self.gene_mean.values[:, None]
        out = y.T @ self.loadings.values.T
        return xr.DataArray(
            out,
            dims=(SAMPLE, COMPONENT),
            coords={SAMPLE: arr[SAMPLE].values, COMPONENT: self.coordinates[COMPONENT].values},
            name="coordinates",
        )

    # -- persistence --------------------------------------------------------------------
    def save(self, path: str | os.PathLike, *, overwrite: bool = True) -> Path:
        """Write the embedding (computing it first if lazy) to a Zarr store at ``path``.

        Nearest-neighbour graphs built for this embedding are saved in it too (group
        ``neighbours``), and used by :meth:`neighbours` after :func:`load` as long as the
        embedding's fingerprint is the one they were built for.
        """
        path = Path(path).expanduser()
        if path.exists():
            if not overwrite:
                raise FileExistsError(f"{path} exists; pass overwrite=True to replace it")
            if not (path / "zarr.json").exists() and not (path / ".zgroup").exists():
                raise FileExistsError(f"{path} exists and is not a Zarr store: not replaced")
            shutil.rmtree(path)
        d = self.data
        d.to_zarr(path, mode="w", consolidated=False)
        self._path = str(path)
        for index in self._indexes.values():
            index.save(path, self.fingerprint)
        return path

    def neighbours(self, metric: str = "euclidean", **options: Any) -> Any:
        """The nearest-neighbour index of the coordinates (built, or loaded, once).

        See :class:`archs4x.embedding.neighbours.NeighbourIndex` for ``options``.  An index
        saved with the embedding is used when it was built for this fingerprint and these
        options; otherwise one is built (and saved with the embedding if it has a path).
        """
        from .neighbours import NeighbourIndex, _check_metric

        checked = _check_metric(metric)
        key = (checked, tuple(sorted(options.items())))
        if key not in self._indexes:
            vectors = self.coordinates.values
            fingerprint = self.fingerprint
            index = NeighbourIndex.open(self._path, fingerprint, vectors, checked, **options)
            if index is None:
                index = NeighbourIndex(vectors, metric=checked, **options)
                if self._path is not None:
                    try:
                        index.save(self._path, fingerprint)
                    except OSError:  # a read-only store: keep it in memory
                        pass
            self._indexes[key] = index
        return self._indexes[key]

    def check_dataset(self, ds: xr.Dataset) -> None:
        """Raise :class:`EmbeddingMismatchError` if ``ds`` is not from the fitted file.

        Same file identity (path, size, times, inode): fine.  Otherwise the release and
        level must match and every fitted sample present in ``ds`` must sit at the same
        position in its file (a copy of the same file passes; another release does not).
        """
        src = self.source
        if src.get("kind") != "file":
            return
        found = sample_positions(ds) if SAMPLE in ds.dims else None
        if found is not None and str(getattr(found[1], "cache_key", "")) == src["cache_key"]:
            return
        release, level = str(ds.attrs.get("version", "")), str(ds.attrs.get("archs4_level", ""))
        what = f"ARCHS4 v{src['release']} {src['level']} file {src['name']!r}"
        if (release, level) != (src["release"], src["level"]):
            name = ds.attrs.get("archs4_source", "(a Dataset)")
            raise EmbeddingMismatchError(
                f"this embedding was fitted on {what}; the Dataset is a v{release or '?'} "
                f"{level or '?'} file ({name}): another release. Fit an embedding on this "
                f"file (archs4x.embedding.fit) or open the file it was fitted on"
            )
        pos = self.data["position"].values if "position" in self.data else None
        ids = self.samples
        if found is not None and pos is not None:
            here = pd.Index(np.asarray(ds[SAMPLE].values).astype(str))
            loc = here.get_indexer(ids)
            present = loc >= 0
            moved = present & (found[0][np.maximum(loc, 0)] != pos)
            if moved.any():
                raise EmbeddingMismatchError(
                    f"this embedding was fitted on {what}; the Dataset's file has "
                    f"{int(moved.sum())} of its samples at other positions (e.g. "
                    f"{ids[moved][0]}): another file. Fit an embedding on this file"
                )
        probe = json.loads(self.data.attrs[_ATTR]).get("probe", {})
        here_ids = set(np.asarray(ds[SAMPLE].values).astype(str))
        probe = {g: v for g, v in probe.items() if g in here_ids}
        if probe:  # a few samples' library sizes, read from this file
            sub = ds.sel({SAMPLE: list(probe)})
            libs = np.asarray(sub[COUNTS].sum(GENE, dtype=np.float64).values)
            differ = [g for g, v in zip(probe, libs, strict=True) if v != probe[g]]
            if differ:
                raise EmbeddingMismatchError(
                    f"this embedding was fitted on {what}; the Dataset's file has other "
                    f"counts for its samples (library size of {differ[0]}: "
                    f"{probe[differ[0]]:,.0f} when fitted, "
                    f"{libs[list(probe).index(differ[0])]:,.0f} here): another file. Fit an "
                    f"embedding on this file"
                )


def as_gene_counts(counts: xr.DataArray | xr.Dataset | pd.DataFrame) -> xr.DataArray:
    """(gene, sample) counts as a DataArray with versionless Ensembl gene ids."""
    if isinstance(counts, pd.DataFrame):
        frame = counts
        arr = xr.DataArray(
            frame.to_numpy(),
            dims=(GENE, SAMPLE),
            coords={GENE: frame.index.astype(str).to_numpy(),
                    SAMPLE: frame.columns.astype(str).to_numpy()},
        )  # fmt: skip
    elif isinstance(counts, xr.Dataset):
        if COUNTS not in counts:
            raise KeyError(f"the Dataset has no {COUNTS!r} variable")
        arr = counts[COUNTS]
    elif isinstance(counts, xr.DataArray):
        arr = counts
    else:
        raise TypeError(
            "counts must be an xarray DataArray/Dataset or a pandas DataFrame (genes x "
            f"samples), not {type(counts).__name__}"
        )
    if set(arr.dims) != {GENE, SAMPLE}:
        raise ValueError(f"counts must have dimensions (gene, sample), got {arr.dims}")
    arr = arr.transpose(GENE, SAMPLE)
    ids = arr[GENE].values.astype(str)
    bare = np.array([m.group(1) if (m := _ENSEMBL_VERSION.match(g)) else g for g in ids])
    if (bare != ids).any():
        arr = arr.assign_coords({GENE: bare})
    return arr


def _as_dataset(plan: FitPlan, out: dict[str, Any]) -> xr.Dataset:
    k = out["coordinates"].shape[1]
    coords: dict[str, Any] = {
        SAMPLE: out["samples"].astype(object),
        GENE: out["genes"].astype(object),
        COMPONENT: np.arange(1, k + 1),
        "library_gene": out["library_genes"].astype(object),
    }
    if out["positions"] is not None:
        coords["position"] = (SAMPLE, out["positions"])
    if out["symbols"] is not None:
        coords["symbol"] = (GENE, np.asarray(out["symbols"]).astype(str).astype(object))
    d = xr.Dataset(
        {
            "coordinates": ((SAMPLE, COMPONENT), out["coordinates"]),
            "loadings": ((COMPONENT, GENE), out["loadings"]),
            "gene_mean": ((GENE,), out["gene_mean"]),
            "gene_variance": ((GENE,), out["gene_variance"]),
            "singular_values": ((COMPONENT,), out["singular_values"]),
            "explained_variance_ratio": ((COMPONENT,), out["explained_variance_ratio"]),
        },
        coords=coords,
    )
    meta = {
        "format": FORMAT,
        "params": plan.params,
        "source": plan.source,
        "selection": plan.selection,
        "mean_library": out["mean_library"],
        "dropped": out["dropped"],
        "passes": out["passes"],
        "probe": out["probe"],
    }
    d.attrs[_ATTR] = json.dumps(meta, sort_keys=True)
    return d


def load(path: str | os.PathLike) -> Embedding:
    """An embedding saved by :meth:`Embedding.save` (read into memory).

    Raises
    ------
    FileNotFoundError
        Nothing at ``path``.
    ValueError
        ``path`` is not an archs4x embedding.

    Examples
    --------
    >>> import tempfile, archs4x
    >>> ds = archs4x.open_dataset(archs4x.datasets.example_file())
    >>> emb = archs4x.embedding.fit(ds, n_components=4, n_genes=200)
    >>> with tempfile.TemporaryDirectory() as d:
    ...     _ = emb.save(d + "/emb.zarr")
    ...     back = archs4x.embedding.load(d + "/emb.zarr")
    >>> back.fingerprint == emb.fingerprint
    True
    """
    p = Path(path).expanduser()
    if not p.exists():
        raise FileNotFoundError(f"no embedding at {str(path)!r}")
    with xr.open_zarr(p, consolidated=False) as stored:
        d = stored.load()
    if _ATTR not in d.attrs:
        raise ValueError(f"{str(path)!r} is a Zarr store but not an archs4x embedding")
    meta = json.loads(d.attrs[_ATTR])
    if meta.get("format") != FORMAT:
        raise ValueError(f"{str(path)!r}: embedding format {meta.get('format')!r}, "
                         f"this archs4x reads format {FORMAT}")  # fmt: skip
    d = d.set_coords([n for n in ("symbol", "position") if n in d.data_vars])
    text = {name: (d[name].dims, np.array([str(v) for v in d[name].values], dtype=object))
            for name in (SAMPLE, GENE, "library_gene", "symbol") if name in d.coords}  # fmt: skip
    d = d.assign_coords(text)
    return Embedding(data=d, path=str(p))
