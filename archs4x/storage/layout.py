"""What an ARCHS4 file is: where the counts and each metadata field live.

The layout changed across releases (``gene_symbol`` in v2.1.2, ``ensembl_gene_id`` in
v2.2, ``ensembl_gene`` from v2.5; optional read-count fields; transcript files keep
their row ids under ``meta/transcripts``).  :func:`detect_layout` reads the group
structure of an open file once and returns a :class:`Layout` that the rest of the
library uses, so no other module hard-codes a path.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import h5py

from ..dims import GENE, TRANSCRIPT
from ..errors import NotArchs4Error

__all__ = ["EXPRESSION", "SAMPLE_ID_FIELD", "Layout", "detect_layout"]

EXPRESSION = "data/expression"
SAMPLES_GROUP = "meta/samples"
GENES_GROUP = "meta/genes"
TRANSCRIPTS_GROUP = "meta/transcripts"
INFO_GROUP = "meta/info"
SAMPLE_ID_FIELD = "geo_accession"

# Candidates in order of preference; the first present wins.
GENE_ID_FIELDS = ("ensembl_gene", "ensembl_gene_id")
GENE_SYMBOL_FIELDS = ("symbol", "gene_symbol")
TRANSCRIPT_ID_FIELDS = ("ensembl_id", "ensembl_transcript", "ensembl_transcript_id")


@dataclass(frozen=True)
class Layout:
    """Paths of an ARCHS4 file, as found in that file.

    Attributes
    ----------
    level : str
        ``"gene"`` or ``"transcript"``: also the name of the feature dimension.
    shape : tuple of int
        ``(n_features, n_samples)`` of ``data/expression``.
    feature_group : str
        ``meta/genes`` or ``meta/transcripts``.
    feature_index : str or None
        Name of the unique feature id field (Ensembl gene or transcript id), or None
        when the file has none (the dimension is then positional).
    feature_fields : tuple of str
        Every dataset in ``feature_group`` whose length is ``n_features``.
    symbol_field : str or None
        The gene symbol field, renamed to ``symbol`` in Datasets.
    sample_fields : tuple of str
        Every dataset in ``meta/samples`` whose length is ``n_samples``.
    info_fields : tuple of str
        Scalars in ``meta/info``.
    skipped : tuple of str
        Paths of metadata datasets left out because their length matches neither
        dimension (callers warn about them).
    """

    level: str
    shape: tuple[int, int]
    feature_group: str
    feature_index: str | None
    feature_fields: tuple[str, ...]
    symbol_field: str | None
    sample_fields: tuple[str, ...]
    info_fields: tuple[str, ...] = field(default=())
    skipped: tuple[str, ...] = field(default=())

    @property
    def n_features(self) -> int:
        return self.shape[0]

    @property
    def n_samples(self) -> int:
        return self.shape[1]

    def sample_path(self, name: str) -> str:
        return f"{SAMPLES_GROUP}/{name}"

    def feature_path(self, name: str) -> str:
        return f"{self.feature_group}/{name}"

    def info_path(self, name: str) -> str:
        return f"{INFO_GROUP}/{name}"


def _datasets_of_length(group: h5py.Group, n: int) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Names of the 1-D datasets of length ``n`` in ``group``, and paths of the others."""
    out, other = [], []
    for name, obj in group.items():
        if isinstance(obj, h5py.Dataset):
            if obj.ndim == 1 and obj.shape[0] == n:
                out.append(name)
            else:
                other.append(f"{group.name.strip('/')}/{name} (shape {obj.shape}, expected ({n},))")
    return tuple(sorted(out)), tuple(sorted(other))


def detect_layout(f: h5py.File) -> Layout:
    """Inspect an open HDF5 file and return its :class:`Layout`.

    Raises
    ------
    NotArchs4Error
        If anything the ARCHS4 layout requires is missing, saying what.

    Examples
    --------
    >>> import h5py
    >>> from archs4x.datasets import example_file
    >>> with h5py.File(example_file(), "r") as f:
    ...     lay = detect_layout(f)
    >>> lay.level, lay.feature_index, lay.symbol_field
    ('gene', 'ensembl_gene', 'symbol')
    """
    name = getattr(f, "filename", "<file>")
    missing = [p for p in (EXPRESSION, SAMPLES_GROUP) if p not in f]
    if missing:
        raise NotArchs4Error(
            f"{name} is HDF5 but not an ARCHS4 file: missing {', '.join(missing)} "
            f"(found top-level entries {sorted(f.keys())})"
        )
    expr = f[EXPRESSION]
    if not isinstance(expr, h5py.Dataset) or expr.ndim != 2:
        raise NotArchs4Error(f"{name}: {EXPRESSION} must be a 2-D dataset (features x samples)")
    if expr.dtype.kind not in "uif":
        raise NotArchs4Error(f"{name}: {EXPRESSION} has non-numeric dtype {expr.dtype}")
    n_features, n_samples = (int(s) for s in expr.shape)
    samples = f[SAMPLES_GROUP]
    if SAMPLE_ID_FIELD not in samples:
        raise NotArchs4Error(f"{name}: missing {SAMPLES_GROUP}/{SAMPLE_ID_FIELD}")
    if samples[SAMPLE_ID_FIELD].shape != (n_samples,):
        raise NotArchs4Error(
            f"{name}: {SAMPLES_GROUP}/{SAMPLE_ID_FIELD} has shape "
            f"{samples[SAMPLE_ID_FIELD].shape}, expected ({n_samples},) to match {EXPRESSION}"
        )
    sample_fields, skipped_samples = _datasets_of_length(samples, n_samples)

    if TRANSCRIPTS_GROUP in f and any(k in f[TRANSCRIPTS_GROUP] for k in TRANSCRIPT_ID_FIELDS):
        level, group = TRANSCRIPT, TRANSCRIPTS_GROUP
        id_candidates: tuple[str, ...] = TRANSCRIPT_ID_FIELDS
    elif GENES_GROUP in f:
        level, group = GENE, GENES_GROUP
        id_candidates = GENE_ID_FIELDS
    else:
        raise NotArchs4Error(
            f"{name}: neither {GENES_GROUP} nor {TRANSCRIPTS_GROUP} with transcript ids found"
        )
    feature_fields, skipped_features = _datasets_of_length(f[group], n_features)
    if not feature_fields:
        raise NotArchs4Error(f"{name}: {group} has no field of length {n_features}")
    for k in id_candidates:
        if k in f[group] and k not in feature_fields:
            raise NotArchs4Error(
                f"{name}: {group}/{k} has shape {f[group][k].shape}, but {EXPRESSION} has "
                f"{n_features} rows: the feature ids do not match the counts"
            )
    index = next((k for k in id_candidates if k in feature_fields), None)
    symbol = next((k for k in GENE_SYMBOL_FIELDS if k in feature_fields), None)
    info = ()
    if INFO_GROUP in f:
        info = tuple(sorted(k for k, v in f[INFO_GROUP].items() if isinstance(v, h5py.Dataset)))
    return Layout(
        level=level,
        shape=(n_features, n_samples),
        feature_group=group,
        feature_index=index,
        feature_fields=feature_fields,
        symbol_field=symbol,
        sample_fields=sample_fields,
        info_fields=info,
        skipped=skipped_samples + skipped_features,
    )
