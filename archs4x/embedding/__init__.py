"""Embed samples and find similar ones: out-of-core SVD of log-CPM, nearest neighbours.

* :func:`fit` - a lazy :class:`Embedding` of a file or selection: highly variable genes by
  log-CPM variance, a randomised truncated SVD (:func:`dask.array.linalg.svd_compressed`)
  of the centred matrix, every sample's coordinates; bounded memory, any scheduler.
* :func:`load` - an embedding saved with :meth:`Embedding.save` (a Zarr store).
* :func:`similar` - ``ds.archs4.similar``: nearest samples of GSM ids or of your own
  counts (:func:`archs4x.align.folder`), with their metadata.

Examples
--------
>>> import archs4x
>>> ds = archs4x.open_dataset(archs4x.datasets.example_file())
>>> emb = archs4x.embedding.fit(ds, n_components=8, n_genes=400)
>>> ds.archs4.similar("GSM1482938", k=3, embedding=emb).shape[0]
3
"""

from __future__ import annotations

from .fit import fit
from .model import Embedding, EmbeddingMismatchError, GeneMismatchError, load
from .neighbours import NeighbourIndex, exact_search
from .similar import similar

__all__ = [
    "Embedding",
    "EmbeddingMismatchError",
    "GeneMismatchError",
    "NeighbourIndex",
    "exact_search",
    "fit",
    "load",
    "similar",
]
