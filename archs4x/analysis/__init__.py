"""Analysis: co-expression, differential expression, sample QC and gene-set scores.

Plain functions on a counts DataArray or Dataset (also ``ds.archs4.<name>``) returning
lazy Dask-backed results that run out of core on any scheduler, without computing inside
tasks.  :mod:`._transform` describes the expression scale (``transform=``) and the two
layouts streamed over (sample blocks, gene bands); :mod:`._stats` the exact streaming
moments.  One idea a module: :mod:`.correlate` (``coexpression``, ``correlation``),
:mod:`.differential` (``diffexp``), :mod:`.quality` (``qc``, ``qc_filter``),
:mod:`.genesets` (``score_genesets``).
"""

from .correlate import coexpression, correlation
from .differential import diffexp
from .genesets import score_genesets
from .quality import qc, qc_filter

__all__ = ["coexpression", "correlation", "diffexp", "qc", "qc_filter", "score_genesets"]
