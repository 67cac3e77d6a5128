"""``archs4x embed`` and ``archs4x similar`` (GSM ids and a counts table)."""

from __future__ import annotations

import numpy as np
import pandas as pd

import archs4x
from archs4x.cli import main


def test_embed_then_similar(tmp_path, capsys):
    path = archs4x.datasets.example_file()
    store = tmp_path / "emb.zarr"
    assert main(["embed", str(path), "-o", str(store), "--remove-sc", "-k", "20",
                 "--genes", "700"]) == 0  # fmt: skip
    err = capsys.readouterr().err
    assert "embedding 338 samples (all samples, single-cell removed)" in err
    emb = archs4x.embedding.load(store)
    assert emb.coordinates.shape == (338, 20)
    assert emb.selection["description"] == "all samples, single-cell removed"
    # GSM queries print a table
    assert main(["similar", str(path), str(store), "GSM1482938", "-k", "5"]) == 0
    out = capsys.readouterr().out
    table = pd.read_csv(pd.io.common.StringIO(out), sep="\t")
    assert table.columns.tolist()[:4] == ["query", "rank", "gsm", "distance"]
    assert len(table) == 5 and "GSM1482938" not in table["gsm"].tolist()
    # a counts table as `archs4x align` writes it (genes x samples), written to a file
    ds = archs4x.open_dataset(path)
    counts = ds.archs4.samples(["GSM1482938"]).counts.to_pandas()
    counts.index.name = "gene"
    tsv = tmp_path / "mine.tsv"
    counts.to_csv(tsv, sep="\t")
    out_csv = tmp_path / "hits.csv"
    assert main(["similar", str(path), str(store), str(tsv), "-k", "3", "-o", str(out_csv)]) == 0
    hits = pd.read_csv(out_csv)
    assert hits["gsm"].iloc[0] == "GSM1482938" and np.isclose(hits["distance"].iloc[0], 0)


def test_similar_errors_are_one_line(tmp_path, capsys):
    path = archs4x.datasets.example_file()
    store = tmp_path / "emb.zarr"
    assert main(["embed", str(path), "-o", str(store), "-k", "5", "--genes", "200",
                 "--samples", "liver"]) == 0  # fmt: skip
    capsys.readouterr()
    n = archs4x.embedding.load(store).coordinates.shape[0]
    assert main(["similar", str(path), str(store), "GSM1482938", "-k", "500"]) == 1
    assert f"k=500 is larger than the {n - 1} samples" in capsys.readouterr().err
    assert main(["similar", str(path), str(store), "GSM1482938", "x.tsv", "a.fq"]) == 1
    assert "not a mix" in capsys.readouterr().err
    assert main(["embed", str(path), "-o", str(tmp_path / "e.h5")]) == 1
    assert "use a .zarr path" in capsys.readouterr().err
