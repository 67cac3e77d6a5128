"""The xarray engine ``"archs4"``: ``xr.open_dataset(path, engine="archs4")``.

Registered under the ``xarray.backends`` entry point.  It returns the Dataset of
:func:`archs4x.backends.schema.build_dataset` with ``counts`` as a lazily indexed
backend array, as xarray expects of a backend: with ``chunks=None`` (xarray's default)
every selection composes lazily and reads exactly what it selects; with ``chunks=...``
xarray makes the Dask arrays itself.  :func:`archs4x.open_dataset` is the same Dataset
with ``counts`` as an :class:`~archs4x.backends.counts.Archs4Array`, whose chained Dask
selections also read only what they select.
"""

from __future__ import annotations

import os
from typing import Any

import xarray as xr
from xarray.backends import BackendEntrypoint

from ..storage.layout import EXPRESSION
from ..storage.sources import is_url, open_source
from .schema import build_dataset

__all__ = ["Archs4BackendEntrypoint"]


class Archs4BackendEntrypoint(BackendEntrypoint):
    """Open ARCHS4 HDF5 files with ``xr.open_dataset(path, engine="archs4")``.

    Examples
    --------
    >>> import xarray as xr
    >>> from archs4x.datasets import example_file
    >>> ds = xr.open_dataset(example_file(), engine="archs4")
    >>> ds.counts.dims, ds.counts.dtype, ds.isel(sample=[3, 1]).counts.shape
    (('gene', 'sample'), dtype('uint32'), (4500, 2))
    """

    description = "Lazy, labelled access to ARCHS4 gene/transcript count files (HDF5)"
    url = "https://github.com/archs4x/archs4x"
    open_dataset_parameters = ("filename_or_obj", "drop_variables", "repair_text",
                               "storage_options")  # fmt: skip

    def open_dataset(  # type: ignore[override]
        self,
        filename_or_obj: Any,
        *,
        drop_variables: Any = None,
        repair_text: bool = False,
        storage_options: dict | None = None,
    ) -> xr.Dataset:
        source = open_source(filename_or_obj, storage_options)
        return build_dataset(source, repair_text=repair_text, drop_variables=drop_variables,
                             counts="lazy")  # fmt: skip

    def guess_can_open(self, filename_or_obj: Any) -> bool:
        try:
            path = os.fspath(filename_or_obj)
        except TypeError:
            return False
        if not str(path).lower().endswith((".h5", ".hdf5")):
            return False
        if is_url(path):
            return True
        try:
            f = open_source(path).h5()
            return EXPRESSION in f and "meta/samples" in f
        except (OSError, ValueError):
            return False
