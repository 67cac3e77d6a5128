"""An archs4py-compatible eager API, for code migrating from archs4py.

``import archs4x.compat as a4`` then ``a4.data.rand(file, 100)``, ``a4.meta.meta(file,
"myoblast")``, ``a4.normalize(counts)``, ``a4.utils.filter_genes(counts)``, ``a4.ls(file)``,
``a4.versions()``, ``a4.download.counts("human")`` and ``a4.align.fastq("human", files)``
work as in archs4py, with archs4py's signatures, defaults and
return shapes (pandas DataFrames), on top of archs4x's lazy reader.  Where archs4py is
wrong archs4x is right; the differences are listed in the README.

Examples
--------
>>> import archs4x.compat as a4
>>> from archs4x.datasets import example_file
>>> a4.data.samples(example_file(), ["GSM1000000"], silent=True).shape
(4500, 1)
"""

from __future__ import annotations

from . import align, data, download, meta, utils
from .utils import ls, normalize, versions

__all__ = ["align", "data", "download", "ls", "meta", "normalize", "utils", "versions"]
