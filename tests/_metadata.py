"""The metadata reference for filter and facet tests: h5py's fields plus the planted truth."""

from __future__ import annotations

from collections.abc import Sequence

import h5py
import numpy as np
import pandas as pd

from archs4x.datasets.synthetic import planted_characteristics


def metadata_frame(path, keys: Sequence[str]) -> pd.DataFrame:
    """Stored sample fields decoded by h5py, and the planted characteristics ``keys``."""
    with h5py.File(path, "r") as f:
        data = {}
        for name, d in f["meta/samples"].items():
            v = d[()]
            data[name] = [x.decode() for x in v] if v.dtype == object else np.asarray(v)
    df = pd.DataFrame(data)
    truth = planted_characteristics(tour=True)
    for key in keys:
        df[key] = [truth[g].get(key) for g in df["geo_accession"]]
    return df
