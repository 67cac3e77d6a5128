"""Two-group differential expression, lazily and out of core.

* ``test="welch"``: Welch's t-test from streaming sufficient statistics: one pass over
  sample blocks gives each gene's count, mean and centred sum of squares in each group
  (merged exactly, :mod:`._stats`), then ``t``, Welch-Satterthwaite degrees of freedom
  and the two-sided p-value as :func:`scipy.stats.ttest_ind` (``equal_var=False``).
* ``test="mannwhitney"``: the Mann-Whitney U test, asymptotic with tie correction and
  continuity correction, as :func:`scipy.stats.mannwhitneyu` (``method="asymptotic"``):
  it ranks each gene across the samples of both groups, over gene bands.
* ``blocking=`` (Mann-Whitney only): van Elteren's stratified test (van Elteren 1960;
  Lehmann 1975, *Nonparametrics*, sec. 3.3): within each stratum (e.g. series) with
  samples of both groups, the rank sum of group a is compared with its expectation;
  strata are weighted by ``1/(n_s + 1)`` (locally most powerful); the variance has
  the tie correction of each stratum; z is referred to the normal distribution
  (two-sided, no continuity correction).  A series effect shifting both groups of a
  series alike cancels.  Strata holding only one group carry no information and are
  left out of the test (their samples still count in ``mean_a`` / ``mean_b``).

P-values of the tested genes are adjusted with Benjamini-Hochberg
(:func:`scipy.stats.false_discovery_control`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import dask.array as da
import numpy as np
import pandas as pd
import xarray as xr
from scipy import special

from ..compute.validate import counts_array
from ..dims import SAMPLE
from ._stats import bh_adjust, block_moments, rank_rows, reduce_states, welch, without_noise
from ._transform import (
    apply_transform,
    check_transform,
    gene_bands,
    is_log,
    labels_row,
    sample_blocks,
)

__all__ = ["diffexp"]

TESTS = ("welch", "mannwhitney")
#: Result variables, in order.
COLUMNS = ("mean_a", "mean_b", "log2_fold_change", "statistic", "pvalue", "padj")


# ------------------------------------------------------------------------------ groups


def _sample_ids(obj: Any) -> np.ndarray:
    if isinstance(obj, xr.Dataset | xr.DataArray):
        if SAMPLE not in obj.dims:
            raise ValueError("a group Dataset must have a 'sample' dimension")
        return np.asarray(obj[SAMPLE].values, dtype=object)
    raise TypeError(f"a group must be a Dataset or DataArray, got {type(obj).__name__}")


def per_sample(arr: xr.DataArray, values: Any, what: str) -> np.ndarray:
    """``values`` (one per sample) in the order of ``arr``'s samples.

    A DataArray on ``sample``, or a Series indexed by sample id, is matched to the
    counts by GSM id (it may come from another ordering of the samples, e.g. before a
    ``sortby``); a plain sequence (or a Series with a default ``RangeIndex``) is taken
    in the counts' order.
    """
    ids = np.asarray(arr[SAMPLE].values, dtype=object)
    labels = None
    if isinstance(values, xr.DataArray):
        if values.dims == (SAMPLE,) and SAMPLE in values.coords:
            labels = np.asarray(values[SAMPLE].values, dtype=object)
        values = values.values
    elif isinstance(values, pd.Series):
        if not isinstance(values.index, pd.RangeIndex):
            labels = np.asarray(values.index, dtype=object)
        values = values.to_numpy()
    values = np.asarray(values)
    if labels is None or np.array_equal(labels, ids):
        return values
    index = pd.Index(labels)
    if not index.is_unique:
        raise ValueError(
            f"{what} is labelled by sample ids that repeat and differ from the counts': "
            "pass one value per sample in the counts' order"
        )
    where = index.get_indexer(ids)
    if (where < 0).any():
        absent = ids[where < 0][:10].tolist()
        raise KeyError(
            f"{what} has no value for {int((where < 0).sum())} samples of the counts: {absent}"
        )
    return values[where]


def split_groups(
    arr: xr.DataArray, groups: Any, labels: Sequence[Any] | None = None
) -> tuple[np.ndarray, np.ndarray, tuple[str, str]]:
    """``(positions, in_a, names)``: the positions of the compared samples in ``arr``
    (file order), whether each is in group a, and the groups' names."""
    n = arr.sizes[SAMPLE]
    if (
        isinstance(groups, tuple | list)
        and len(groups) == 2
        and all(isinstance(g, xr.Dataset | xr.DataArray) for g in groups)
    ):
        index = pd.Index(np.asarray(arr[SAMPLE].values, dtype=object))
        pos = []
        for name, g in zip("ab", groups, strict=True):
            ids = _sample_ids(g)
            where = index.get_indexer(ids) if index.is_unique else None
            if where is None:
                raise ValueError("the counts' sample labels are not unique")
            if (where < 0).any():
                absent = ids[where < 0][:10].tolist()
                raise KeyError(
                    f"{int((where < 0).sum())} samples of group {name} are not in "
                    f"the counts: {absent}"
                )
            pos.append(np.unique(where))
        both = np.intersect1d(pos[0], pos[1])
        if both.size:
            shown = np.asarray(arr[SAMPLE].values)[both[:10]].tolist()
            raise ValueError(f"{both.size} samples are in both groups: {shown}")
        order = np.concatenate(pos)
        in_a = np.concatenate([np.ones(pos[0].size, bool), np.zeros(pos[1].size, bool)])
        sort = np.argsort(order, kind="stable")
        return order[sort], in_a[sort], ("a", "b")
    values = per_sample(arr, groups, "groups")
    if values.shape != (n,):
        raise ValueError(
            f"groups must be two Datasets, or one label (or boolean) per sample ({n}), "
            f"got shape {values.shape}"
        )
    if values.dtype == bool:
        return np.arange(n), values.copy(), ("True", "False")
    present = pd.Series(values).dropna()
    found = list(pd.unique(present))
    if labels is None:
        if len(found) != 2:
            raise ValueError(
                f"groups has {len(found)} distinct labels {found[:10]}: pass labels=(a, b) "
                "to choose the two groups"
            )
        labels = sorted(found, key=str)
    if len(labels) != 2:
        raise ValueError(f"labels must name two groups, got {labels!r}")
    a, b = labels
    is_a = pd.Series(values).eq(a).to_numpy()
    is_b = pd.Series(values).eq(b).to_numpy()
    compared = np.flatnonzero(is_a | is_b)
    return compared, is_a[compared], (str(a), str(b))


def _strata(arr: xr.DataArray, blocking: Any, positions: np.ndarray) -> np.ndarray:
    """Integer stratum codes of the compared samples."""
    if isinstance(blocking, str):
        if blocking not in arr.coords or arr.coords[blocking].dims != (SAMPLE,):
            raise KeyError(f"blocking={blocking!r} is not a sample coordinate of the counts")
        values = np.asarray(arr.coords[blocking].values)
    else:
        values = per_sample(arr, blocking, "blocking")
        if values.shape != (arr.sizes[SAMPLE],):
            raise ValueError("blocking must be a sample coordinate name or one label per sample")
    codes, _ = pd.factorize(pd.Series(values[positions]).astype(str))
    return codes.astype(np.int64)


# ------------------------------------------------------------------------------ welch


def _welch_state(block, masks, labels, kind):
    x = apply_transform(block, kind, labels[0])
    return block_moments(x, masks)


def _welch_result(state: np.ndarray, log: bool, min_expr: float | None) -> np.ndarray:
    na, ma, m2a = state[:, 0], state[:, 1], state[:, 2]
    nb, mb, m2b = state[:, 3], state[:, 4], state[:, 5]
    m2a, m2b = without_noise(na, ma, m2a), without_noise(nb, mb, m2b)
    t, p = welch(ma, m2a / (na - 1), na, mb, m2b / (nb - 1), nb)
    return _finish(ma, mb, t, p, log, min_expr)


def _finish(ma, mb, stat, p, log: bool, min_expr: float | None) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        lfc = ma - mb if log else np.log2(ma / mb)
    p = np.array(p, dtype=np.float64)
    if min_expr is not None:
        p[~(np.maximum(ma, mb) >= min_expr)] = np.nan
    return np.stack([ma, mb, lfc, stat, p], axis=1)


# ------------------------------------------------------------------------ mann-whitney


def _mwu_band(
    band: np.ndarray, in_a: np.ndarray, strata: np.ndarray | None, log: bool, min_expr: float | None
) -> np.ndarray:
    a, b = band[:, in_a], band[:, ~in_a]
    ma, mb = a.mean(axis=1), b.mean(axis=1)
    if strata is None:
        stat, p = _mwu(band, in_a)
    else:
        stat, p = _van_elteren(band, in_a, strata)
    return _finish(ma, mb, stat, p, log, min_expr)


def _mwu(x: np.ndarray, in_a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """scipy's asymptotic two-sided Mann-Whitney U (tie and continuity corrections)."""
    n1, n2 = float(in_a.sum()), float((~in_a).sum())
    n = n1 + n2
    ranks, ties = rank_rows(x)
    u1 = ranks[:, in_a].sum(axis=1) - n1 * (n1 + 1) / 2
    u = np.maximum(u1, n1 * n2 - u1)
    s = np.sqrt(n1 * n2 / 12 * ((n + 1) - ties / (n * (n - 1))))
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (u - n1 * n2 / 2 - 0.5) / s
    p = np.clip(2 * special.ndtr(-z), 0.0, 1.0)
    return u1, p


def _van_elteren(x: np.ndarray, in_a: np.ndarray, strata: np.ndarray):
    """van Elteren's stratified rank-sum z and two-sided normal p-value."""
    t = np.zeros(x.shape[0])
    e = np.zeros(x.shape[0])
    v = np.zeros(x.shape[0])
    for s in np.unique(strata):
        cols = strata == s
        sa = in_a[cols]
        n1, n2 = float(sa.sum()), float((~sa).sum())
        if n1 == 0 or n2 == 0:
            continue
        n = n1 + n2
        ranks, ties = rank_rows(x[:, cols])
        w = 1.0 / (n + 1)
        t += w * ranks[:, sa].sum(axis=1)
        e += w * n1 * (n + 1) / 2
        v += w * w * n1 * n2 / 12 * ((n + 1) - ties / (n * (n - 1)))
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (t - e) / np.sqrt(v)
    p = np.clip(2 * special.ndtr(-np.abs(z)), 0.0, 1.0)
    return z, p


# ---------------------------------------------------------------------------- diffexp


def _padj(result: np.ndarray) -> np.ndarray:
    return np.concatenate([result, bh_adjust(result[:, 4])[:, None]], axis=1)


def diffexp(
    counts: xr.DataArray | xr.Dataset,
    groups: Any,
    *,
    test: Literal["welch", "mannwhitney"] = "welch",
    transform: Literal["log_cpm", "log_quantile"] | None = "log_cpm",
    min_expr: float | None = 1.0,
    blocking: Any = None,
    labels: Sequence[Any] | None = None,
) -> xr.Dataset:
    """Compare two groups of samples, gene by gene, lazily.

    Parameters
    ----------
    counts : xarray.DataArray or xarray.Dataset
        (gene, sample) counts holding the samples of both groups.
    groups
        Either two Datasets (or DataArrays) whose samples are the groups, e.g.
        ``(ds.archs4.search("liver"), ds.archs4.search("kidney"))``; or one value per
        sample of ``counts``: booleans (True = group a, False = group b) or labels
        (exactly two distinct ones, a = the first in sorted order, or choose them with
        ``labels=(a, b)``; samples with other labels or missing values are left out).
        A DataArray on ``sample`` or a Series indexed by GSM id is matched to the
        counts' samples by id (it may come from another ordering, e.g. before a
        ``sortby``); a plain sequence is taken in the counts' order.
        A sample in both groups raises ``ValueError``.
    test : {"welch", "mannwhitney"}, default "welch"
        Welch's t-test (one streaming pass over sample blocks) or the Mann-Whitney U
        test (asymptotic, tie-corrected, over gene bands; time ~ genes x n log n).
    transform : {"log_cpm", "log_quantile", None}, default "log_cpm"
        The expression scale (log-quantile is computed over the compared samples).
    min_expr : float or None, default 1.0
        Test only genes whose mean in at least one group is >= ``min_expr`` (on the
        transformed scale: 1.0 is CPM >= 1 with log-CPM); other genes get NaN ``pvalue``
        and ``padj`` and are not counted in the BH family.  None tests every gene.
    blocking : str or array, optional
        A nuisance factor such as ``"series_id"`` (a sample coordinate, or one label per
        sample, matched by id as ``groups``): with ``test="mannwhitney"``, van Elteren's
        stratified test (see :mod:`archs4x.analysis.differential`); ``statistic`` is
        then its z.
    labels : (a, b), optional
        The two labels to compare when ``groups`` are labels.

    Returns
    -------
    xarray.Dataset
        One row per gene (with the gene coordinates), lazy: ``mean_a``, ``mean_b``
        (group means on the transformed scale), ``log2_fold_change`` (``mean_a -
        mean_b`` on a log scale, ``log2(mean_a / mean_b)`` for raw counts),
        ``statistic`` (Welch's t, Mann-Whitney's U of group a, or van Elteren's z),
        ``pvalue`` (two-sided) and ``padj`` (Benjamini-Hochberg); attrs name the groups
        and their sizes.

    Raises
    ------
    ValueError
        A group with fewer than 2 samples, groups overlapping, unusable labels.

    Examples
    --------
    >>> import archs4x
    >>> ds = archs4x.open_dataset(archs4x.datasets.example_file()).archs4.remove_single_cell()
    >>> res = archs4x.diffexp(ds, (ds.archs4.search("liver"), ds.archs4.search("kidney")))
    >>> table = res.compute().to_dataframe().sort_values("pvalue")
    >>> table.symbol.iloc[0], bool(table.log2_fold_change.iloc[0] > 3)
    ('APOA1', True)
    """
    if test not in TESTS:
        raise ValueError(f"test must be one of {TESTS}, got {test!r}")
    check_transform(transform)
    if blocking is not None and test != "mannwhitney":
        raise ValueError(
            "blocking is implemented with test='mannwhitney' (van Elteren's stratified "
            "test); pass test='mannwhitney'"
        )
    arr = counts_array(counts)
    positions, in_a, names = split_groups(arr, groups, labels)
    n_a, n_b = int(in_a.sum()), int((~in_a).sum())
    for name, size in ((names[0], n_a), (names[1], n_b)):
        if size < 2:
            raise ValueError(
                f"group {name!r} has {size} sample{'s' * (size != 1)}: diffexp needs at least "
                "2 samples in each group"
            )
    strata = None if blocking is None else _strata(arr, blocking, positions)
    if positions.size == arr.sizes[SAMPLE] and (positions == np.arange(positions.size)).all():
        sel = arr
    else:
        sel = arr.isel({SAMPLE: positions})
    log = is_log(transform)
    if test == "welch":
        sel, data, kind = sample_blocks(sel, transform)
        masks = da.from_array(np.stack([in_a, ~in_a]), chunks=(2, data.chunks[1]))
        row_labels = labels_row(sel, data)
        state = reduce_states(data, _welch_state, 6, masks, row_labels, kind, width=3)
        result = da.map_blocks(
            _welch_result, state, log, min_expr, dtype=np.float64, chunks=(state.chunks[0], (5,))
        )
    else:
        sel, bands = gene_bands(sel, transform)
        result = da.map_blocks(
            _mwu_band,
            bands,
            in_a,
            strata,
            log,
            min_expr,
            dtype=np.float64,
            chunks=(bands.chunks[0], (5,)),
        )
    full = result.rechunk((-1, 5)).map_blocks(
        _padj, dtype=np.float64, chunks=((sel.shape[0],), (6,))
    )
    fdim = sel.dims[0]
    coords = {k: v for k, v in sel.coords.items() if v.dims == (fdim,)}
    out = xr.Dataset({c: ((fdim,), full[:, i]) for i, c in enumerate(COLUMNS)}, coords=coords)
    out.attrs.update(
        group_a=names[0],
        group_b=names[1],
        n_a=n_a,
        n_b=n_b,
        test=test,
        transform=str(transform),
        blocking=str(blocking),
    )
    return out
