"""Hand archs4x data to the rest of the PyData ecosystem: pandas and AnnData.

ARCHS4 counts are genes x samples; AnnData (scanpy's container) is observations x
variables, i.e. samples x genes.  :func:`to_anndata` transposes, puts the sample
metadata in ``obs`` and the gene metadata in ``var``; :func:`from_anndata` goes back.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from ..dims import COUNTS, SAMPLE, feature_dim

__all__ = ["from_anndata", "sample_table", "to_anndata", "to_pandas"]


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


def to_pandas(obj: xr.Dataset | xr.DataArray, *, index: str | None = None) -> pd.DataFrame:
    """Counts (or any gene x sample array) as a genes x samples DataFrame.

    Parameters
    ----------
    obj : Dataset or DataArray
        A Dataset's ``counts`` is used; computed (load only what you selected).
    index : str, optional
        A feature coordinate to use as row labels (e.g. ``"symbol"``, as archs4py
        does); by default the feature index (Ensembl id).

    Examples
    --------
    >>> import archs4x
    >>> ds = archs4x.open_dataset(archs4x.datasets.example_file())
    >>> df = to_pandas(ds.isel(sample=[0, 1]), index="symbol")
    >>> df.shape, df.index[0], df.columns[1]
    ((4500, 2), 'ACTB', 'GSM1000003')
    """
    da = obj[COUNTS] if isinstance(obj, xr.Dataset) else obj
    fdim = feature_dim(da)
    da = da.transpose(fdim, SAMPLE).compute()
    rows = da[index].values if index else da[fdim].values
    return pd.DataFrame(
        np.asarray(da.values),
        index=pd.Index(rows, name=index or fdim),
        columns=pd.Index(da[SAMPLE].values, name=SAMPLE),
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
