"""The ``sample`` index: GEO accessions that remember their column in the source.

:class:`SamplePositionIndex` is an xarray index (a :class:`~xarray.indexes.PandasIndex`
of the GSM ids) that also holds each sample's column in the file or store the Dataset
was opened from, and that source.  Index objects travel with their coordinate through
every selection: ``isel``/``sel``, ``sortby``, ``where(drop=True)``, the ``ds.archs4``
queries and ``xr.concat`` of selections of one source compose the positions, so queries
read each sample's own metadata row by position, without computing anything (also when
xarray has turned the metadata coordinates into Dask arrays).

Whatever the index cannot vouch for drops the positions: relabelling the samples
(``assign_coords(sample=...)`` installs a plain pandas index), joins and reindexing with
other labels, concatenating different sources.  Queries then read the metadata from the
Dataset's own coordinates instead: slower, never wrong.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import xarray as xr
from xarray.indexes import PandasIndex

__all__ = ["SamplePositionIndex", "sample_positions"]


class SamplePositionIndex(PandasIndex):
    """A pandas index of sample labels plus each sample's column in ``source``.

    Parameters
    ----------
    array, dim, coord_dtype, fastpath
        As :class:`~xarray.indexes.PandasIndex`.
    positions : int array, optional
        Each label's column in ``source``; None when unknown.
    source : optional
        The file or store those columns belong to.

    Examples
    --------
    >>> import archs4x
    >>> ds = archs4x.open_dataset(archs4x.datasets.example_file())
    >>> sub = ds.isel(sample=[9, 2]).sortby("singlecellprobability")
    >>> sample_positions(sub)[0].tolist() == sorted([9, 2], key=lambda i: float(
    ...     ds.singlecellprobability[i]))
    True
    """

    __slots__ = ("positions", "source")

    def __init__(
        self,
        array: Any,
        dim: Any,
        coord_dtype: Any = None,
        *,
        fastpath: bool = False,
        positions: np.ndarray | None = None,
        source: Any = None,
    ) -> None:
        super().__init__(array, dim, coord_dtype, fastpath=fastpath)
        if positions is not None:
            positions = np.asarray(positions, dtype=np.int64)
            if positions.shape != (len(self.index),):
                raise ValueError(f"{positions.shape[0]} positions for {len(self.index)} samples")
        self.positions = positions
        self.source = source

    def _with(self, plain: PandasIndex | None, positions: np.ndarray | None):
        if plain is None:
            return None
        return type(self)(plain.index, plain.dim, plain.coord_dtype, fastpath=True,
                          positions=positions, source=self.source)  # fmt: skip

    def isel(self, indexers):  # type: ignore[override]
        plain = super().isel(indexers)
        if plain is None or plain is self:
            return plain
        key = indexers[self.dim]
        if isinstance(key, xr.Variable):
            key = key.data
        positions = None if self.positions is None else self.positions[key]
        return self._with(plain, positions)

    def rename(self, name_dict, dims_dict):  # type: ignore[override]
        plain = super().rename(name_dict, dims_dict)
        return plain if plain is self else self._with(plain, self.positions)

    def _copy(self, deep: bool = True, memo: dict | None = None):  # type: ignore[override]
        # Index._copy is the hook Index.copy, copy.copy and Dataset.copy go through
        plain = super()._copy(deep=deep, memo=memo)
        positions = self.positions
        if deep and positions is not None:
            positions = positions.copy()
        return self._with(plain, positions)

    @classmethod
    def concat(  # type: ignore[override]
        cls,
        indexes: Sequence[SamplePositionIndex],
        dim: Any,
        positions: Iterable[Iterable[int]] | None = None,
    ) -> PandasIndex:
        plain = PandasIndex.concat(list(indexes), dim, positions)
        known = all(getattr(i, "positions", None) is not None and getattr(i, "source", None)
                    is not None for i in indexes)  # fmt: skip
        sources = {i.source for i in indexes} if known else set()
        if positions is not None or not known or len(sources) != 1:
            # different sources (or an order xarray chose): positions no longer vouched for
            return PandasIndex(plain.index, plain.dim, plain.coord_dtype, fastpath=True)
        merged = np.concatenate([i.positions for i in indexes])
        return cls(plain.index, plain.dim, plain.coord_dtype, fastpath=True,
                   positions=merged, source=indexes[0].source)  # fmt: skip

    def _repr_inline_(self, max_width: int) -> str:
        return "SamplePositionIndex"


def sample_positions(ds: xr.Dataset | xr.DataArray) -> tuple[np.ndarray, Any] | None:
    """``(positions, source)`` of ``ds``'s samples, or None when they are not known.

    Examples
    --------
    >>> import archs4x
    >>> ds = archs4x.open_dataset(archs4x.datasets.example_file())
    >>> sample_positions(ds.isel(sample=[3, 1]))[0].tolist()
    [3, 1]
    >>> sample_positions(ds.assign_coords(sample=ds.sample.values[::-1])) is None
    True
    """
    index = ds.xindexes.get("sample")
    if isinstance(index, SamplePositionIndex) and index.positions is not None:
        if index.source is not None and len(index.positions) == ds.sizes["sample"]:
            return index.positions, index.source
    return None
