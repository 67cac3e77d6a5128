"""Backends: ARCHS4 files (and archs4x Zarr stores) as lazy, labelled xarray Datasets.

* :func:`open_dataset` - the Dataset with Dask-backed, position-composing ``counts``;
* :class:`Archs4BackendEntrypoint` - the ``archs4`` xarray engine;
* :class:`Archs4Array` - the Dask array of counts whose selections read exactly;
* :class:`SamplePositionIndex` - the ``sample`` index that remembers file positions.
"""

from .counts import Archs4Array
from .entrypoint import Archs4BackendEntrypoint
from .open import open_dataset
from .positions import SamplePositionIndex, sample_positions

__all__ = [
    "Archs4Array",
    "Archs4BackendEntrypoint",
    "SamplePositionIndex",
    "open_dataset",
    "sample_positions",
]
