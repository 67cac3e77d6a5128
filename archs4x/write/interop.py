"""Hand archs4x data to the rest of the PyData ecosystem: pandas and AnnData.

ARCHS4 counts are genes x samples; AnnData (scanpy's container) is observations x
variables, i.e. samples x genes.  :func:`to_anndata` transposes, puts the sample
metadata in ``obs`` and the gene metadata in ``var``; :func:`from_anndata` goes back.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import xarray as xr

from ..dims import COUNTS, SAMPLE, feature_dim
from ..progress import compute

__all__ = ["from_anndata", "sample_table", "to_anndata", "to_pandas", "to_pydeseq2"]


def _coords_on(ds: xr.Dataset, dim: str) -> dict[str, Any]:
    names: list[Any] = [n for n, c in ds.coords.items() if c.dims == (dim,) and n != dim]
    if not names:
        return {}
    loaded = xr.Dataset(coords={n: ds.coords[n] for n in names}).compute()
    return {n: loaded[n].values for n in names}


def sample_table(ds: xr.Dataset) -> pd.DataFrame:
    """Every sample metadata coordinate of ``ds`` as a DataFrame indexed by GSM id.

    Examples
    --------
    >>> import archs4x
    >>> ds = archs4x.open_dataset(archs4x.datasets.example_file()).isel(sample=[0, 1])
    >>> sample_table(ds).loc["GSM1000000", "series_id"]
    'GSE10000'
    """
    return pd.DataFrame(_coords_on(ds, SAMPLE), index=pd.Index(ds[SAMPLE].values, name=SAMPLE))


def to_pandas(
    obj: xr.Dataset | xr.DataArray,
    *,
    index: str | None = None,
    dtype: npt.DTypeLike | None = None,
    progress: bool = False,
) -> pd.DataFrame:
    """Counts (or any gene x sample array) as a genes x samples DataFrame.

    The one counts-to-frame conversion of archs4x: :mod:`archs4x.compat` builds archs4py's
    frames with it.

    Parameters
    ----------
    obj : Dataset or DataArray
        A Dataset's ``counts`` is used; computed (load only what you selected).
    index : str, optional
        A feature coordinate to use as row labels (e.g. ``"symbol"``, as archs4py
        does); by default the feature index (Ensembl id).
    dtype : dtype, optional
        Cast the values (e.g. ``np.uint64``); by default they keep their dtype.
    progress : bool, default False
        Show a progress bar while the counts are read.

    Examples
    --------
    >>> import archs4x
    >>> ds = archs4x.open_dataset(archs4x.datasets.example_file())
    >>> df = to_pandas(ds.isel(sample=[0, 1]), index="symbol")
    >>> df.shape, df.index[0], df.columns[1], df.dtypes.iloc[0]
    ((4500, 2), 'ACTB', 'GSM1000003', dtype('uint32'))
    """
    arr = obj[COUNTS] if isinstance(obj, xr.Dataset) else obj
    fdim = feature_dim(arr)
    arr = arr.transpose(fdim, SAMPLE)
    (values,) = compute(arr.data, progress=progress)
    values = np.asarray(values) if dtype is None else np.asarray(values, dtype=dtype)
    rows = arr[index].values if index else arr[fdim].values
    return pd.DataFrame(
        values,
        index=pd.Index(np.asarray(rows, dtype=object), name=index or fdim),
        columns=pd.Index(np.asarray(arr[SAMPLE].values, dtype=object), name=SAMPLE),
    )


def to_anndata(ds: xr.Dataset, *, lazy: bool = False):
    """Convert a Dataset (or a selection of it) to :class:`anndata.AnnData`, samples x genes.

    Parameters
    ----------
    ds : Dataset
        With ``counts`` (feature x sample).
    lazy : bool, default False
        Keep ``X`` as a Dask array (AnnData supports it) instead of computing it.

    Notes
    -----
    Requires the optional dependency ``anndata`` (``pip install "archs4x[anndata]"``).

    Examples
    --------
    >>> import archs4x
    >>> ds = archs4x.open_dataset(archs4x.datasets.example_file())
    >>> ad = to_anndata(ds.isel(sample=slice(0, 5)))
    >>> ad.shape, ad.obs_names[0], list(ad.var.columns)
    ((5, 4500), 'GSM1000000', ['biotype', 'symbol'])
    """
    try:
        import anndata
    except ImportError as exc:  # pragma: no cover - exercised without the extra
        raise ImportError(
            "to_anndata needs the optional dependency anndata: pip install 'archs4x[anndata]'"
        ) from exc
    fdim = feature_dim(ds)
    counts = ds[COUNTS].transpose(SAMPLE, fdim)
    x = counts.data if lazy else np.asarray(counts.values)
    obs = sample_table(ds)
    obs.index = obs.index.astype(str)
    var = pd.DataFrame(_coords_on(ds, fdim), index=pd.Index(ds[fdim].values.astype(str), name=fdim))
    return anndata.AnnData(X=x, obs=obs, var=var, uns={"archs4": dict(ds.attrs)})


def from_anndata(adata, *, feature: str = "gene") -> xr.Dataset:
    """The inverse of :func:`to_anndata`: a Dataset with ``counts`` (feature x sample).

    Examples
    --------
    >>> import archs4x
    >>> ds = archs4x.open_dataset(archs4x.datasets.example_file()).isel(sample=[3, 1])
    >>> back = from_anndata(to_anndata(ds))
    >>> bool((back.counts.values == ds.counts.values).all())
    True
    """
    x = adata.X
    x = x.toarray() if hasattr(x, "toarray") else np.asarray(x)
    coords: dict[str, Any] = {
        SAMPLE: (SAMPLE, adata.obs_names.to_numpy(dtype=object)),
        feature: (feature, adata.var_names.to_numpy(dtype=object)),
    }
    for name, col in adata.obs.items():
        coords[name] = (SAMPLE, col.to_numpy())
    for name, col in adata.var.items():
        coords[name] = (feature, col.to_numpy())
    attrs = dict(adata.uns.get("archs4", {}))
    return xr.Dataset({COUNTS: ((feature, SAMPLE), x.T)}, coords=coords, attrs=attrs)


#: Samples above which :func:`to_pydeseq2` refuses (DESeq2 fits every gene in memory).
PYDESEQ2_MAX_SAMPLES = 5_000


def to_pydeseq2(
    ds: xr.Dataset,
    design: str = "~condition",
    *,
    metadata: pd.DataFrame | None = None,
    max_samples: int = PYDESEQ2_MAX_SAMPLES,
    **options: Any,
):
    """A :class:`pydeseq2.dds.DeseqDataSet` of a small study: counts and metadata in the
    shapes pydeseq2 expects.

    Counts become a samples x genes integer DataFrame (columns: Ensembl ids), metadata
    a DataFrame indexed by the same GSM ids: every sample coordinate of ``ds`` (add your
    own factor with ``ds.assign_coords(condition=("sample", labels))``) joined with
    ``metadata``.  The counts are read here (one read of the selection).

    Parameters
    ----------
    ds : xarray.Dataset
        A selection of a file (e.g. ``ds.archs4.series("GSE64016")``).
    design : str, default "~condition"
        pydeseq2's design formula over the metadata columns.
    metadata : pandas.DataFrame, optional
        More columns, indexed by GSM id (they win over coordinates of the same name).
    max_samples : int, default 5,000
        Refuse larger selections (``ValueError``): DESeq2 is for studies, not the
        compendium; use :func:`archs4x.diffexp` there.
    **options
        Passed to ``DeseqDataSet`` (``refit_cooks``, ``n_cpus``, ``quiet``, ...).

    Notes
    -----
    Requires the optional dependency ``pydeseq2`` (``pip install "archs4x[analysis]"``).

    Examples
    --------
    >>> import archs4x
    >>> ds = archs4x.open_dataset(archs4x.datasets.example_file())
    >>> study = ds.archs4.series("GSE64016")
    >>> phase = ["sync" if str(t).startswith("H1") else "phase" for t in study.title.values]
    >>> dds = to_pydeseq2(study.assign_coords(condition=("sample", phase)), quiet=True)
    >>> dds.shape, dds.obs["condition"].value_counts().to_dict()
    ((12, 4500), {'phase': 9, 'sync': 3})
    """
    try:
        from pydeseq2.dds import DeseqDataSet
    except ImportError as exc:  # pragma: no cover - exercised without the extra
        raise ImportError(
            "to_pydeseq2 needs the optional dependency pydeseq2: pip install 'archs4x[analysis]'"
        ) from exc
    n = ds.sizes[SAMPLE]
    if n > max_samples:
        raise ValueError(
            f"{n} samples: DESeq2 fits every gene of every sample in memory; select a study "
            f"(at most max_samples={max_samples}) or use archs4x.diffexp"
        )
    counts = to_pandas(ds).T
    if counts.columns.has_duplicates:
        raise ValueError("gene labels are not unique")
    counts = counts.astype(np.int64)
    counts.index = counts.index.astype(str)
    counts.columns = counts.columns.astype(str)
    obs = sample_table(ds)
    obs.index = obs.index.astype(str)
    if metadata is not None:
        extra = metadata.copy()
        extra.index = extra.index.astype(str)
        obs = obs.drop(columns=[c for c in extra.columns if c in obs.columns]).join(extra)
    obs = obs.loc[counts.index]
    return DeseqDataSet(counts=counts, metadata=obs, design=design, **options)
